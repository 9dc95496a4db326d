//! Test certificates and TLS-enabled [`RedisServer`]s.
//!
//! [`TestPki::generate`] writes, with rcgen, into a temporary directory: a private CA, a server
//! certificate for `127.0.0.1` and `localhost` signed by it, a client certificate signed by it,
//! and an unrelated "wrong" CA. [`TlsRedis::start`] runs `redis-server` with a TLS port using
//! them; the plain port stays open (loopback only) so the harness can wait for readiness and
//! inspect the server with its plain-TCP RESP client.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::server::{ephemeral_port, percent_encode, RedisServer, TempDir};

/// PEM files of a private CA, a server and a client certificate, plus an unrelated CA.
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Generates every certificate and key into a fresh temporary directory.
    pub fn generate() -> TestPki {
        let dir = TempDir::new("pki");
        let (ca_pem, ca) = new_ca("tower-redis-cache test CA");
        let (wrong_ca_pem, _) = new_ca("tower-redis-cache unrelated CA");
        let server = leaf(
            &ca,
            "redis test server",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &ca,
            "redis test client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, pem: &str| {
            fs::write(dir.path().join(name), pem)
                .unwrap_or_else(|e| panic!("writing {name} into {}: {e}", dir.path().display()))
        };
        write("ca.pem", &ca_pem);
        write("wrong-ca.pem", &wrong_ca_pem);
        write("server.pem", &server.0);
        write("server.key", &server.1);
        write("client.pem", &client.0);
        write("client.key", &client.1);
        TestPki { dir }
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A CA that signed nothing used here.
    pub fn wrong_ca(&self) -> PathBuf {
        self.file("wrong-ca.pem")
    }

    /// The server certificate (SAN `127.0.0.1`, `localhost`).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// The server certificate's private key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client certificate's private key.
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A self-signed CA: its certificate PEM and the issuer to sign leaves with.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signing the CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf certificate signed by `ca`: (certificate PEM, private key PEM).
fn leaf(
    ca: &Issuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("signing the leaf");
    (cert.pem(), key.serialize_pem())
}

/// A `redis-server` with a TLS port (certificates from a [`TestPki`]) besides its plain port.
pub struct TlsRedis {
    /// The server; its plain port and RESP helpers work as usual.
    pub server: RedisServer,
    tls_port: u16,
}

impl TlsRedis {
    /// Starts a server with `--tls-port` and the PKI's server certificate, trusting the PKI's CA
    /// for client certificates; `auth_clients` sets `--tls-auth-clients yes|no`; `password`
    /// sets `--requirepass`.
    pub fn start(pki: &TestPki, auth_clients: bool, password: Option<&str>) -> TlsRedis {
        let path = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_owned();
        let tls_port = ephemeral_port();
        let mut builder = RedisServer::builder().args([
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(pki.server_cert()),
            "--tls-key-file".to_owned(),
            path(pki.server_key()),
            "--tls-ca-cert-file".to_owned(),
            path(pki.ca()),
            "--tls-auth-clients".to_owned(),
            if auth_clients { "yes" } else { "no" }.to_owned(),
        ]);
        if let Some(password) = password {
            builder = builder.password(password);
        }
        TlsRedis {
            server: builder.start(),
            tls_port,
        }
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// `rediss://127.0.0.1:TLS_PORT`, with the server's password if it has one.
    pub fn url(&self) -> String {
        match self.server.password() {
            Some(pw) => format!(
                "rediss://:{}@127.0.0.1:{}",
                percent_encode(pw),
                self.tls_port
            ),
            None => format!("rediss://127.0.0.1:{}", self.tls_port),
        }
    }
}
