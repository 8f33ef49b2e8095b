//! Turning socket errors into outcomes: decided by errno, and never a guess.
//!
//! Only the errors that mean "the network refused" become `rejected`, only a timeout becomes
//! `dropped`; every other error is `error` with its detail, so a broken probe can never pass for
//! a policy decision.

use netassay_core::probe::Outcome;
use std::io;

/// The outcome and detail for an error while reaching the peer (connect, send, receive on a
/// connected datagram socket).
pub(crate) fn reach_error(err: &io::Error) -> (Outcome, String) {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => (
            Outcome::Rejected,
            "refused: ECONNREFUSED (TCP RST or ICMP port unreachable)".into(),
        ),
        Some(libc::EHOSTUNREACH) => (
            Outcome::Rejected,
            "refused: EHOSTUNREACH (ICMP host unreachable or administratively prohibited)".into(),
        ),
        Some(libc::ENETUNREACH) => (
            Outcome::Rejected,
            "refused: ENETUNREACH (ICMP or route: network unreachable)".into(),
        ),
        Some(libc::ETIMEDOUT) => (
            Outcome::Dropped,
            "no answer: the kernel gave up (ETIMEDOUT)".into(),
        ),
        Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT) => (
            Outcome::Unsupported,
            format!("protocol not available here: {err}"),
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => (
            Outcome::Error,
            format!("{err} (a firewall in the source's own namespace refused to send?)"),
        ),
        _ => (Outcome::Error, describe(err)),
    }
}

/// An I/O error with its errno name when it has one, for details.
pub(crate) fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{err} (errno {code})"),
        None => format!("{err} ({:?})", err.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of(errno: i32) -> Outcome {
        reach_error(&io::Error::from_raw_os_error(errno)).0
    }

    #[test]
    fn refusals_by_rst_or_icmp_are_rejected() {
        assert_eq!(outcome_of(libc::ECONNREFUSED), Outcome::Rejected);
        assert_eq!(outcome_of(libc::EHOSTUNREACH), Outcome::Rejected);
        assert_eq!(outcome_of(libc::ENETUNREACH), Outcome::Rejected);
    }

    #[test]
    fn a_kernel_timeout_is_dropped() {
        assert_eq!(outcome_of(libc::ETIMEDOUT), Outcome::Dropped);
    }

    #[test]
    fn a_missing_protocol_is_unsupported() {
        assert_eq!(outcome_of(libc::EPROTONOSUPPORT), Outcome::Unsupported);
        assert_eq!(outcome_of(libc::ESOCKTNOSUPPORT), Outcome::Unsupported);
    }

    #[test]
    fn every_other_error_is_an_error_never_a_verdict() {
        for errno in [
            libc::EPERM,
            libc::EACCES,
            libc::EMFILE,
            libc::EADDRNOTAVAIL,
            libc::ECONNRESET,
            libc::EINVAL,
            libc::ENOBUFS,
        ] {
            assert_eq!(outcome_of(errno), Outcome::Error, "errno {errno}");
        }
        let custom = io::Error::other("something odd");
        assert_eq!(reach_error(&custom).0, Outcome::Error);
        assert!(reach_error(&custom).1.contains("something odd"));
    }
}
