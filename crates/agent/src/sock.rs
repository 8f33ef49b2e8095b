//! Socket setup the standard library does not offer: SCTP sockets and ICMP error reporting;
//! and the accept-loop pieces every listener of the agent shares.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// IPPROTO_SCTP.
pub(crate) const IPPROTO_SCTP: i32 = 132;

/// Waits until the stop flag is raised (or its sender is gone).
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Says an accept error (e.g. EMFILE) on stderr and pauses, so a persistent one does not spin.
pub(crate) async fn accept_backoff(err: io::Error, speaker: &str, what: &str) {
    eprintln!("{speaker}: accept on {what} failed: {err}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// A one-to-one (SOCK_STREAM) SCTP socket; fails with EPROTONOSUPPORT where the kernel lacks it.
pub(crate) fn sctp_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM, Some(Protocol::from(IPPROTO_SCTP)))
}

/// A non-blocking UDP socket bound to `local` with `SO_REUSEADDR`, so that probes towards
/// different destinations can share a source port (each connects to its own peer and gets only
/// that peer's datagrams).
pub(crate) fn shared_udp_socket(local: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(domain_of(local), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&local.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Whether `err` says the protocol does not exist here (rather than that something failed).
pub(crate) fn is_protocol_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT)
    )
}

/// The socket domain of an address.
pub(crate) fn domain_of(addr: SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

/// Asks the kernel to report every ICMP error on a connected datagram socket, not only port
/// unreachable: host unreachable and administratively prohibited then surface as EHOSTUNREACH.
pub(crate) fn report_icmp_errors(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let one: libc::c_int = 1;
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: the fd is a valid open socket owned by the caller; the option value is a c_int
    // that outlives the call, and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft limit on open files to the hard limit, so high concurrency does not run out
/// of descriptors; returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the rlimit struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Ok(raised.rlim_cur);
            }
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_absence_is_recognised_by_errno() {
        assert!(is_protocol_unsupported(&io::Error::from_raw_os_error(
            libc::EPROTONOSUPPORT
        )));
        assert!(!is_protocol_unsupported(&io::Error::from_raw_os_error(
            libc::EADDRINUSE
        )));
    }

    #[test]
    fn sctp_sockets_either_open_or_are_reported_unsupported() {
        match sctp_socket(Domain::IPV4) {
            Ok(_) => {}
            Err(e) => assert!(is_protocol_unsupported(&e), "unexpected error {e}"),
        }
    }
}
