//! Connection security against real `redis-server` processes: a password and an ACL user from
//! the URL, TLS with a private CA (and client certificates), and credentials that never show up
//! in `Debug` output, errors or logs. Each test that reaches Redis runs on a standalone server
//! and on a three-master cluster; every failing connect must fail within its connection
//! timeout, never hang.
//!
//! - [`password`]: a password from the URL, percent-decoded; wrong or missing.
//! - [`acl`]: an ACL user from the URL, confined to its keys; a wrong secret; a user created
//!   after the store.
//! - [`tls`]: TLS with the private CA, system roots, a wrong CA, client certificates, ports
//!   that do not mix, bad certificate files.
//! - [`credentials`]: secrets never in `Debug`, connect errors, the wire or the logs.
//! - [`fixture`]: the secrets, the store builder, the checks and the round trip they share.

mod acl;
mod credentials;
mod fixture;
mod password;
mod tls;
