//! fred's errors as [`StoreError`]s, and the error codes of the server's replies.

use crate::store::{StoreError, StoreErrorKind};
use fred::error::{Error as FredError, ErrorKind};

/// `error` as a [`StoreError`] of the kind the cache acts on, keeping it as the source.
pub(crate) fn store_error(error: FredError) -> StoreError {
    let kind = match error.kind() {
        ErrorKind::Timeout => StoreErrorKind::Timeout,
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Backpressure => {
            StoreErrorKind::Unavailable
        }
        #[cfg(feature = "tls")]
        ErrorKind::Tls => StoreErrorKind::Unavailable,
        ErrorKind::Config | ErrorKind::Url => StoreErrorKind::Config,
        _ if error.is_moved() || error.is_ask() => StoreErrorKind::Busy,
        _ => match ErrorCode::of(&error) {
            Some(code) if code.is_transient() => StoreErrorKind::Busy,
            _ => StoreErrorKind::Rejected,
        },
    };
    let message = format!("{:?}: {}", error.kind(), error.details());
    StoreError::new(kind, message).with_source(error)
}

/// The code of an error reply, the word it opens with (the RESP protocol's error prefix), for
/// the codes the store acts on that fred does not name itself (it has `is_moved` and `is_ask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// The script is not in the node's script cache: send it whole.
    NoScript,
    /// The keys of a multi-key command are split between two nodes while their slot migrates.
    TryAgain,
    /// The cluster cannot serve the slot now (a failover under way).
    ClusterDown,
    /// A write reached a replica (the node was demoted by a failover).
    ReadOnly,
    /// The master lost its link to its own master (`replica-serve-stale-data no`) or is a
    /// replica without a master.
    MasterDown,
    /// The server is loading its dataset.
    Loading,
    /// The server is running a script past its time limit.
    Busy,
    /// A blocked command (a `WAIT`) was let go because the node changed role (a master
    /// demoted by a failover).
    Unblocked,
}

impl ErrorCode {
    /// The code of the error reply behind `error` (a [`store_error`]), if it has one of these.
    pub(crate) fn of_store_error(error: &StoreError) -> Option<Self> {
        let source = std::error::Error::source(error)?;
        Self::of(source.downcast_ref::<FredError>()?)
    }

    /// Whether the condition passes by itself (a migration, a failover, a load, a script).
    fn is_transient(self) -> bool {
        !matches!(self, Self::NoScript)
    }

    /// The code of `error`, if it is an error reply with one of these codes.
    pub(crate) fn of(error: &FredError) -> Option<Self> {
        match error.details().split_ascii_whitespace().next()? {
            "NOSCRIPT" => Some(Self::NoScript),
            "TRYAGAIN" => Some(Self::TryAgain),
            "CLUSTERDOWN" => Some(Self::ClusterDown),
            "READONLY" => Some(Self::ReadOnly),
            "MASTERDOWN" => Some(Self::MasterDown),
            "LOADING" => Some(Self::Loading),
            "BUSY" => Some(Self::Busy),
            "UNBLOCKED" => Some(Self::Unblocked),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_are_the_first_word() {
        let reply = |details: &'static str| FredError::new(ErrorKind::Unknown, details);
        let code = |details| ErrorCode::of(&reply(details));
        assert_eq!(
            code("NOSCRIPT No matching script."),
            Some(ErrorCode::NoScript)
        );
        assert_eq!(code("MOVED 3999 127.0.0.1:6381"), None, "fred names it");
        assert_eq!(
            code("TRYAGAIN Multiple keys request during rehashing of slot"),
            Some(ErrorCode::TryAgain)
        );
        assert_eq!(code("ERR NOSCRIPT is not the code"), None);
        assert_eq!(code(""), None);
    }

    #[test]
    fn transient_replies_are_busy_and_retryable() {
        for details in [
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
        ] {
            let kind = if details.starts_with("MOVED") || details.starts_with("ASK") {
                ErrorKind::Cluster
            } else {
                ErrorKind::Unknown
            };
            let error = store_error(FredError::new(kind, details));
            assert_eq!(error.kind(), StoreErrorKind::Busy, "{details}");
            assert!(error.is_retryable(), "{details}");
        }
        let wrong = store_error(FredError::new(ErrorKind::InvalidArgument, "WRONGTYPE"));
        assert_eq!(wrong.kind(), StoreErrorKind::Rejected);
        assert!(!wrong.is_retryable());
    }

    #[test]
    fn the_fred_error_is_the_source() {
        use std::error::Error;
        let error = store_error(FredError::new(ErrorKind::IO, "connection reset"));
        assert_eq!(error.kind(), StoreErrorKind::Unavailable);
        let source = error.source().expect("a source");
        let fred = source.downcast_ref::<FredError>().expect("fred's error");
        assert_eq!(fred.kind(), &ErrorKind::IO);
        let noscript = FredError::new(ErrorKind::Unknown, "NOSCRIPT No matching script.");
        assert_eq!(
            ErrorCode::of_store_error(&store_error(noscript)),
            Some(ErrorCode::NoScript)
        );
        assert_eq!(ErrorCode::of_store_error(&error), None);
    }
}
