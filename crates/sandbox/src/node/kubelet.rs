//! The kubelet's HTTPS endpoint on 127.0.0.1: what kube-apiserver proxies `pods/exec` to.
//!
//! TLS with the node's serving certificate; only clients whose certificate chains to the
//! cluster's CA are served (kube-apiserver presents its kubelet-client certificate). Served:
//! `/exec/{namespace}/{pod}[/{uid}]/{container}` over WebSocket (`v5.channel.k8s.io`, and
//! `v4.channel.k8s.io`) with the kubelet's query (`command` repeated, `input`, `output`,
//! `error`, `tty`): the Node declares `ExtendWebSocketsToKubelet`, so kube-apiserver passes the
//! client's WebSocket through instead of translating it to SPDY; and `/healthz`. The exec
//! session itself is the emulator's ([`crate::api::exec`]): one implementation of the
//! channel protocol.

use crate::api::exec::{session, Streams, V4, V5};
use crate::control_fault::ControlPlaneFaults;
use crate::dataplane::Dataplane;
use crate::reference::KubeletTls;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KubeletServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A pod's output so far (its container's log), by namespace and name.
pub type PodLogs = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Why a pod's container has not started (`ErrImagePull`, `ContainerCreating`), by namespace,
/// pod and container; `None` once it runs.
pub type ContainerWaiting = Arc<dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync>;

#[derive(Clone)]
struct Shared {
    dataplane: Arc<dyn Dataplane>,
    logs: PodLogs,
    waiting: ContainerWaiting,
    /// `exec-resets` cuts exec streams here, between the kubelet and the API server.
    faults: ControlPlaneFaults,
}

/// The TLS configuration: our serving certificate, client certificates required.
fn tls_config(tls: &KubeletTls) -> std::io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(tls.client_ca_der.clone().into())
        .map_err(std::io::Error::other)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .map_err(std::io::Error::other)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(tls.serving.key_der.clone())
        .map_err(std::io::Error::other)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![tls.serving.cert_der.clone().into()], key)
        .map_err(std::io::Error::other)?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TCP connections and hands on those that complete a TLS handshake.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                // A client without a valid certificate, or a stalled handshake: drop it.
                _ => continue,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl KubeletServer {
    pub async fn start(
        tls: &KubeletTls,
        dataplane: Arc<dyn Dataplane>,
        logs: PodLogs,
        waiting: ContainerWaiting,
        faults: ControlPlaneFaults,
    ) -> std::io::Result<KubeletServer> {
        let config = tls_config(tls)?;
        let tcp = TcpListener::bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).await?;
        let addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let exec_route = |r: axum::routing::MethodRouter<Shared>| {
            r.layer(axum::middleware::map_request(
                crate::api::exec::post_upgrade_as_get,
            ))
        };
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/exec/{namespace}/{pod}/{container}",
                exec_route(get(exec_without_uid).post(exec_without_uid)),
            )
            .route(
                "/exec/{namespace}/{pod}/{uid}/{container}",
                exec_route(get(exec_with_uid).post(exec_with_uid)),
            )
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(container_logs),
            )
            .with_state(Shared {
                dataplane,
                logs,
                waiting,
                faults,
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serving.await {
                eprintln!("netassay node agent: the kubelet endpoint failed: {e}");
            }
        });
        Ok(KubeletServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // Open exec sessions end with the pods; do not wait for them.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for KubeletServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The kubelet's exec query: `command` repeated; `input`, `output`, `error` as 1/true.
fn streams_and_command(uri: &Uri) -> Result<(Streams, Vec<String>), String> {
    let mut command = Vec::new();
    let mut streams = Streams {
        stdin: false,
        stdout: false,
        stderr: false,
    };
    let query = uri.query().unwrap_or("");
    for (k, v) in url_pairs(query) {
        let on = v == "1" || v.eq_ignore_ascii_case("true");
        match k.as_str() {
            "command" => command.push(v),
            "input" | "stdin" => streams.stdin = on,
            "output" | "stdout" => streams.stdout = on,
            "error" | "stderr" => streams.stderr = on,
            "tty" if on => {
                return Err("tty is not supported by the sandbox node".into());
            }
            _ => {}
        }
    }
    if command.is_empty() {
        return Err("you must specify at least 1 command".into());
    }
    Ok((streams, command))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

/// `kubectl logs`: the pod's output (`tailLines` honoured; `follow` is not served).
async fn container_logs(
    State(shared): State<Shared>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    // As a kubelet answers for a container that never started (the API server passes a 400's
    // text on as a BadRequest Status).
    if let Some(reason) = (shared.waiting)(&namespace, &pod, &container) {
        return bad_request(&format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
        ));
    }
    let logs = shared.logs.clone();
    let (ns, name) = (namespace.clone(), pod.clone());
    let text = tokio::task::spawn_blocking(move || logs(&ns, &name))
        .await
        .ok()
        .flatten();
    let Some(text) = text else {
        return (
            StatusCode::NOT_FOUND,
            format!("no log for pod {namespace}/{pod} on this node"),
        )
            .into_response();
    };
    let tail = url_pairs(uri.query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "tailLines")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let text = match tail {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
        None => text,
    };
    text.into_response()
}

async fn exec_without_uid(
    State(shared): State<Shared>,
    Path((namespace, pod, _container)): Path<(String, String, String)>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    exec(&shared, namespace, pod, uri, upgrade)
}

async fn exec_with_uid(
    State(shared): State<Shared>,
    Path((namespace, pod, _uid, _container)): Path<(String, String, String, String)>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    exec(&shared, namespace, pod, uri, upgrade)
}

fn exec(
    shared: &Shared,
    namespace: String,
    pod: String,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (streams, command) = match streams_and_command(&uri) {
        Ok(x) => x,
        Err(message) => return bad_request(&message),
    };
    let upgrade = match upgrade {
        Ok(u) => u.protocols([V5, V4]),
        Err(e) => {
            return bad_request(&format!(
                "exec needs a WebSocket upgrade offering {V5} or {V4} ({e}); this node does not speak SPDY"
            ))
        }
    };
    let v5 = match upgrade.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(V5) => true,
        Some(_) => false,
        None => {
            return bad_request(&format!(
                "exec supports the WebSocket subprotocols {V5} and {V4} only"
            ))
        }
    };
    let dataplane = shared.dataplane.clone();
    // The exec-resets fault: this stream is cut after some lines of output, with no status, and
    // the API server relays the cut as it relays a kubelet's.
    let reset_after = shared.faults.draw_exec_reset();
    upgrade.on_upgrade(move |socket| async move {
        session(
            socket,
            dataplane,
            namespace,
            pod,
            command,
            streams,
            v5,
            reset_after,
        )
        .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_query_names_command_and_streams() {
        let uri: Uri =
            "/exec/ns/pod/c?command=netassay&command=agent&command=probe&input=1&output=1&error=1"
                .parse()
                .unwrap();
        let (streams, command) = streams_and_command(&uri).unwrap();
        assert_eq!(command, ["netassay", "agent", "probe"]);
        assert!(streams.stdin && streams.stdout && streams.stderr);
        let uri: Uri = "/exec/ns/pod/c?command=sh%20-c&output=1".parse().unwrap();
        let (streams, command) = streams_and_command(&uri).unwrap();
        assert_eq!(command, ["sh -c"]);
        assert!(!streams.stdin && streams.stdout && !streams.stderr);
        let uri: Uri = "/exec/ns/pod/c?output=1".parse().unwrap();
        assert!(streams_and_command(&uri).is_err());
        let uri: Uri = "/exec/ns/pod/c?command=x&tty=1".parse().unwrap();
        assert!(streams_and_command(&uri).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%"), "a/b c%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
