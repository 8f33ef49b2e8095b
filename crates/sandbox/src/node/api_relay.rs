//! The API server as the node's own processes see it: a TCP relay listening inside the node's
//! network namespace (`127.0.0.1:6443` there) that forwards each connection to the reference
//! cluster's kube-apiserver on the host's loopback. Third-party node components (kube-proxy,
//! NetworkPolicy enforcers) run in the node's namespace and reach the API through it, as
//! kubeadm nodes reach a local API endpoint. TLS passes through untouched.

use std::net::{Ipv4Addr, SocketAddr};
use tokio::task::JoinHandle;

pub use crate::reference::NODE_API_PORT;

pub struct ApiRelay {
    task: JoinHandle<()>,
    addr: SocketAddr,
}

/// Binds a TCP listener inside network namespace `netns`.
fn listen_in(netns: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    crate::netns_socket::in_netns(netns, || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
}

impl ApiRelay {
    /// Listens on 127.0.0.1:[`NODE_API_PORT`] in `netns` and relays to `upstream`.
    pub fn start(netns: &str, upstream: SocketAddr) -> std::io::Result<ApiRelay> {
        let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), NODE_API_PORT);
        let listener = tokio::net::TcpListener::from_std(listen_in(netns, addr)?)?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(ApiRelay { task, addr })
    }

    /// The address inside the node's namespace.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for ApiRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
