//! Sockets made inside another network namespace: a thread enters it, makes the socket and
//! exits; the socket stays where it was made. The node's relays use it (the API inside the
//! node, the kubelet's endpoint from the host).

use std::os::fd::AsRawFd;

/// Runs `make` on a short-lived thread that entered network namespace `netns` (by its
/// `/run/netns` name): a socket it makes stays in that namespace when the thread exits.
pub(crate) fn in_netns<T: Send>(
    netns: &str,
    make: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{netns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let target = std::fs::File::open(&path)?;
                // SAFETY: setns on this (scoped, short-lived) thread only; the fd is valid.
                if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                make()
            })
            .join()
            .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })
}
