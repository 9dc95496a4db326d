//! Test certificates and TLS-enabled [`RedisServer`]s.
//!
//! [`TestPki::generate`] writes, with rcgen, into a temporary directory: a private CA, a server
//! certificate for `127.0.0.1` and `localhost` signed by it, a client certificate signed by it,
//! and an unrelated "wrong" CA. [`TlsRedis::start`] runs a standalone server or a three-master
//! cluster with a TLS port per node using them (a cluster's bus is on TLS too); the plain ports
//! stay open (loopback only) so the harness can wait for readiness and inspect the servers with
//! its plain-TCP RESP client.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::cluster::RedisCluster;
use super::server::{ephemeral_port, percent_encode, RedisServer, TempDir};
use super::topology::{self, userinfo, Redis, Topology};

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

/// A deployment (standalone or cluster) with a TLS port per node (certificates from a
/// [`TestPki`]) besides its plain ports.
pub struct TlsRedis {
    /// The deployment; its plain ports and RESP helpers work as usual.
    pub redis: Redis,
    tls_ports: Vec<u16>,
}

impl TlsRedis {
    /// Starts a standalone server with `--tls-port` and the PKI's server certificate, trusting
    /// the PKI's CA for client certificates; `auth_clients` sets `--tls-auth-clients yes|no`;
    /// `password` sets `--requirepass`.
    pub fn start(pki: &TestPki, auth_clients: bool, password: Option<&str>) -> TlsRedis {
        TlsRedis::start_on(Topology::Standalone, pki, auth_clients, password)
    }

    /// Like [`start`](Self::start), on `topology`. A cluster's nodes speak TLS on their bus
    /// too, presenting the PKI's client certificate to each other (the nodes ask for one when
    /// `auth_clients`).
    pub fn start_on(
        topology: Topology,
        pki: &TestPki,
        auth_clients: bool,
        password: Option<&str>,
    ) -> TlsRedis {
        let path = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_owned();
        let mut args = vec![
            "--tls-cert-file".to_owned(),
            path(pki.server_cert()),
            "--tls-key-file".to_owned(),
            path(pki.server_key()),
            "--tls-ca-cert-file".to_owned(),
            path(pki.ca()),
            "--tls-auth-clients".to_owned(),
            if auth_clients { "yes" } else { "no" }.to_owned(),
        ];
        match topology {
            Topology::Standalone => {
                let tls_port = ephemeral_port();
                let mut builder = RedisServer::builder()
                    .args(["--tls-port".to_owned(), tls_port.to_string()])
                    .args(args);
                if let Some(password) = password {
                    builder = builder.password(password);
                }
                TlsRedis {
                    redis: Redis::Standalone(builder.start()),
                    tls_ports: vec![tls_port],
                }
            }
            Topology::Cluster => {
                args.extend([
                    "--tls-client-cert-file".to_owned(),
                    path(pki.client_cert()),
                    "--tls-client-key-file".to_owned(),
                    path(pki.client_key()),
                ]);
                let mut builder = RedisCluster::builder().tls(args);
                if let Some(password) = password {
                    builder = builder.password(password);
                }
                let cluster = builder.start();
                TlsRedis {
                    tls_ports: cluster.tls_ports().to_vec(),
                    redis: Redis::Cluster(cluster),
                }
            }
        }
    }

    /// The TLS port of the first node (the one a URL names first).
    pub fn tls_port(&self) -> u16 {
        self.tls_ports[0]
    }

    /// The TLS ports, in node order.
    pub fn tls_ports(&self) -> &[u16] {
        &self.tls_ports
    }

    /// `rediss://127.0.0.1:TLS_PORT` (`rediss-cluster://…` on a cluster), with the password
    /// if the deployment has one.
    pub fn url(&self) -> String {
        let password = self.password();
        self.url_with("", password.as_deref().unwrap_or(""))
    }

    /// Like [`url`](Self::url) with `user` and `password` instead (both empty: none).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        let auth = userinfo(user, password);
        topology::url(self.redis.topology(), true, &auth, &self.tls_ports)
    }

    /// A plain-TCP URL (`redis://`, `redis-cluster://`) naming the TLS ports, no password.
    pub fn plain_url_to_tls_ports(&self) -> String {
        topology::url(self.redis.topology(), false, "", &self.tls_ports)
    }

    /// A TLS URL (`rediss://`, `rediss-cluster://`) naming the plain ports, no password.
    pub fn tls_url_to_plain_ports(&self) -> String {
        topology::url(self.redis.topology(), true, "", &self.redis.ports())
    }

    fn password(&self) -> Option<String> {
        self.redis.nodes()[0].password().map(str::to_owned)
    }
}
