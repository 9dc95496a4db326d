//! TLS settings for `rediss://` connections: a private CA and client certificates.

use crate::config_error::ConfigError;
use fred::types::config::TlsConfig;
use rustls::{crypto::ring, ClientConfig, RootCertStore};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::{path::PathBuf, sync::Arc};

/// Files that configure TLS beyond the system's trust store.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFiles {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_auth: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    pub(crate) fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_auth.is_none()
    }

    /// A rustls configuration trusting the CA file (or the system roots) and presenting the
    /// client certificate, if given. Errors name the file, never its contents.
    pub(crate) fn to_tls_config(&self) -> Result<TlsConfig, ConfigError> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| tls_error(path, e))? {
                    roots
                        .add(cert.map_err(|e| tls_error(path, e))?)
                        .map_err(|e| tls_error(path, e))?;
                }
                if roots.is_empty() {
                    return Err(tls_error(path, "no certificate in the file"));
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new(format!("TLS: {e}")).caused_by(e))?
            .with_root_certificates(roots);
        let config = match &self.client_auth {
            Some((cert_path, key_path)) => {
                let certs = CertificateDer::pem_file_iter(cert_path)
                    .map_err(|e| tls_error(cert_path, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_error(cert_path, e))?;
                let key =
                    PrivateKeyDer::from_pem_file(key_path).map_err(|e| tls_error(key_path, e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| tls_error(cert_path, e))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConfig::from(config))
    }
}

fn tls_error(path: &std::path::Path, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(format!("TLS file {}: {error}", path.display()))
}
