//! The settings every client of a store shares: timeouts, socket options and the reconnect
//! policy, applied to a fred builder.

use super::durability::Durability;
use fred::types::{
    config::{Config, ReconnectPolicy},
    Builder,
};
use socket2::TcpKeepalive;
use std::time::Duration;

/// What [`RedisStoreBuilder`](crate::RedisStoreBuilder) sets besides the URL.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    #[cfg(feature = "tls")]
    pub(crate) tls: super::tls::TlsFiles,
    pub(crate) command_timeout: Duration,
    pub(crate) connection_timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) durability: Durability,
    pub(crate) durability_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            #[cfg(feature = "tls")]
            tls: Default::default(),
            command_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(2),
            pool_size: 1,
            durability: Durability::default(),
            durability_timeout: Duration::from_millis(500),
        }
    }
}

impl Settings {
    /// A fred builder for `config` with the store's timeouts, socket options and reconnect
    /// policy.
    pub(crate) fn fred_builder(&self, config: Config) -> Builder {
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = self.connection_timeout;
                c.internal_command_timeout = self.connection_timeout;
                c.max_command_attempts = 2;
                c.tcp.nodelay = Some(true);
                // Dead peers are found by the kernel, at no cost per command. (fred's own
                // unresponsive check would do it too, but arms a new timer on every turn of
                // its router loop: a timer per command under load.)
                let keepalive = TcpKeepalive::new()
                    .with_time(Duration::from_secs(10))
                    .with_interval(Duration::from_secs(2));
                #[cfg(not(windows))]
                let keepalive = keepalive.with_retries(3);
                c.tcp.keepalive = Some(keepalive);
                // fred offers TCP_USER_TIMEOUT where the OS has it.
                #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
                {
                    c.tcp.user_timeout =
                        Some(self.command_timeout.max(Duration::from_millis(500)) * 2);
                }
            })
            .with_performance_config(|p| p.default_command_timeout = self.command_timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        builder
    }
}
