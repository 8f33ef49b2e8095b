//! pods/exec over the v4/v5 websocket channel protocols, running `Dataplane::exec` processes.
//
// Protocol as kube-rs and kubectl speak it: the client writes stdin frames (channel 0) and, on v5,
// `[255, 0]` to close stdin. The server writes stdout (1) and stderr (2) frames, and once the
// process has exited and its output is drained, one JSON `Status` on channel 3, then closes.
// kube-rs stops reading at the status frame, so all output must precede it.

use super::extract::{AppState, Params};
use super::status::ApiError;
use crate::dataplane::Dataplane;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, Uri};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
pub(crate) const V5: &str = "v5.channel.k8s.io";
pub(crate) const V4: &str = "v4.channel.k8s.io";
/// After the process exits, how long its pipes may stay open (a background grandchild can hold
/// them) before the status is sent anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Which standard streams the client attached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Lets a websocket upgrade arrive as POST (some kubectl versions) by presenting it as the GET
/// the websocket extractor requires; a POST without a websocket upgrade (SPDY) is left alone and
/// refused by the handler.
pub(crate) async fn post_upgrade_as_get(mut req: Request) -> Request {
    let is_websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if req.method() == Method::POST && is_websocket {
        *req.method_mut() = Method::GET;
    }
    req
}

pub(crate) async fn exec(
    State(s): AppState,
    Path((namespace, name)): Path<(String, String)>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let params = Params::from_uri(&uri)?;
    let command = params.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let streams = Streams {
        stdin: params.flag("stdin"),
        stdout: params.flag("stdout"),
        stderr: params.flag("stderr"),
    };
    if !(streams.stdin || streams.stdout || streams.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let pod = s.store().get::<Pod>(&namespace, &name)?;
    if let Some(container) = params.get("container") {
        let known = pod
            .spec
            .iter()
            .flat_map(|spec| spec.containers.iter())
            .any(|c| c.name == container);
        if !known {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|st| st.phase.as_deref())
        .unwrap_or("Pending");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running (phase {phase})"
        )));
    }
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "pods/exec needs a websocket upgrade offering {V5} or {V4} ({e}); SPDY is not supported"
        ))
    })?;
    let upgrade = upgrade.protocols([V5, V4]);
    let v5 = match upgrade.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(V5) => true,
        Some(_) => false,
        None => {
            return Err(ApiError::bad_request(format!(
                "pods/exec supports the websocket subprotocols {V5} and {V4} only"
            )))
        }
    };
    let dataplane = Arc::clone(&s.dataplane);
    // The exec-resets fault: this stream is cut after some lines of output.
    let reset_after = s.options.faults.draw_exec_reset();
    Ok(upgrade.on_upgrade(move |socket| async move {
        session(
            socket,
            dataplane,
            namespace,
            name,
            command,
            streams,
            v5,
            reset_after,
        )
        .await;
    }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// One exec session. `reset_after`: the `exec-resets` fault cuts the stream, with no status and
/// no close frame, once that many lines of output went out (and kills the process).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn session(
    socket: WebSocket,
    dataplane: Arc<dyn Dataplane>,
    namespace: String,
    name: String,
    command: Vec<String>,
    streams: Streams,
    v5: bool,
    reset_after: Option<usize>,
) {
    let (sink, incoming) = socket.split();
    let (out, out_rx) = mpsc::channel::<Message>(32);
    let abrupt = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_frames(sink, out_rx, Arc::clone(&abrupt)));
    let started = {
        let command = command.clone();
        tokio::task::spawn_blocking(move || dataplane.exec(&namespace, &name, &command)).await
    };
    let status = match started {
        Ok(Ok(child)) => {
            run(
                child,
                incoming,
                out.clone(),
                streams,
                v5,
                &command,
                reset_after,
            )
            .await
        }
        Ok(Err(e)) => Some(
            ApiError::internal(format!("error executing command in container: {e}")).to_status(),
        ),
        Err(e) => Some(
            ApiError::internal(format!("error executing command in container: {e}")).to_status(),
        ),
    };
    match status {
        Some(status) => {
            let status = serde_json::to_vec(&status).unwrap_or_default();
            let _ = out.send(frame(STATUS, &status)).await;
        }
        None => abrupt.store(true, Ordering::SeqCst),
    }
    drop(out);
    let _ = writer.await;
}

/// Sends queued frames, then a normal close (none when `abrupt` is set by then: the connection
/// just ends). If the client is gone, keeps draining the queue so that producers never block.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    abrupt: Arc<AtomicBool>,
) {
    while let Some(message) = queue.recv().await {
        if sink.send(message).await.is_err() {
            while queue.recv().await.is_some() {}
            return;
        }
    }
    if abrupt.load(Ordering::SeqCst) {
        return;
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
}

/// Copies one output pipe into frames of `channel`; output of an unattached stream is drained
/// and dropped, so the process never blocks on a full pipe. With `cut`, stops after that many
/// lines went out (the rest of the chunk is dropped) and says so.
async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    channel: u8,
    mut out: Option<mpsc::Sender<Message>>,
    mut cut: Option<(usize, oneshot::Sender<()>)>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut lines = 0;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut chunk = &buf[..n];
                let mut cutting = false;
                if let Some((after, _)) = &cut {
                    for (i, b) in chunk.iter().enumerate() {
                        if *b == b'\n' {
                            lines += 1;
                            if lines >= *after {
                                chunk = &chunk[..=i];
                                cutting = true;
                                break;
                            }
                        }
                    }
                }
                if let Some(tx) = &out {
                    if tx.send(frame(channel, chunk)).await.is_err() {
                        out = None;
                    }
                }
                if cutting {
                    if let Some((_, tx)) = cut.take() {
                        let _ = tx.send(());
                    }
                    return;
                }
            }
        }
    }
}

/// Feeds stdin frames to the process until the client closes stdin or the connection. Signals
/// `gone` only when the connection dropped without a close frame (the client vanished).
async fn read_frames(
    mut incoming: SplitStream<WebSocket>,
    mut stdin: Option<ChildStdin>,
    v5: bool,
    gone: oneshot::Sender<()>,
) {
    while let Some(message) = incoming.next().await {
        match message {
            Ok(Message::Binary(data)) => match data.first() {
                Some(&STDIN) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&data[1..]).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                    // Dropping the pipe is the process's EOF.
                    stdin = None;
                }
                // Resize (4) and anything else: no tty here.
                _ => {}
            },
            // v4 clients close the whole connection to end stdin: the process gets EOF and runs on.
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = gone.send(());
}

/// Runs the attached process to its end; returns the Status for channel 3, or `None` when the
/// stream was cut (`reset_after`): the process is killed and the session ends without a status.
async fn run(
    mut child: Child,
    incoming: SplitStream<WebSocket>,
    out: mpsc::Sender<Message>,
    streams: Streams,
    v5: bool,
    command: &[String],
    reset_after: Option<usize>,
) -> Option<Value> {
    let mut pumps = Vec::new();
    let (cut_tx, cut_rx) = oneshot::channel();
    let cut = reset_after.filter(|_| streams.stdout).map(|n| (n, cut_tx));
    if let Some(pipe) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            pipe,
            STDOUT,
            streams.stdout.then(|| out.clone()),
            cut,
        )));
    }
    if let Some(pipe) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            pipe,
            STDERR,
            streams.stderr.then(|| out.clone()),
            None,
        )));
    }
    let cut = async {
        if cut_rx.await.is_err() {
            // Never cut: never resolve.
            std::future::pending::<()>().await;
        }
    };
    let stdin = child.stdin.take().filter(|_| streams.stdin);
    let (gone_tx, gone_rx) = oneshot::channel();
    let reader = tokio::spawn(read_frames(incoming, stdin, v5, gone_tx));
    let vanished = async {
        if gone_rx.await.is_err() {
            // The reader ended normally: never resolve.
            std::future::pending::<()>().await;
        }
    };
    let exited = tokio::select! {
        exited = child.wait() => exited,
        () = vanished => {
            // Nobody is listening any more: do not leave the process behind.
            let _ = child.start_kill();
            child.wait().await
        }
        () = cut => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            pumps.iter().for_each(|p| p.abort());
            reader.abort();
            return None;
        }
    };
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        for p in &mut pumps {
            let _ = p.await;
        }
    })
    .await;
    if drained.is_err() {
        pumps.iter().for_each(|p| p.abort());
    }
    reader.abort();
    Some(match exited {
        Ok(status) => exit_status(status, command),
        Err(e) => ApiError::internal(format!("waiting for the command: {e}")).to_status(),
    })
}

/// Success, or Failure/NonZeroExitCode with the code as the ExitCode cause (what kubectl and
/// kube-rs read). A signal death reports 128+signal, as shells and container runtimes do.
fn exit_status(status: ExitStatus, command: &[String]) -> Value {
    let code = status
        .code()
        .or_else(|| status.signal().map(|sig| 128 + sig))
        .unwrap_or(1);
    if code == 0 {
        return json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: command {command:?} exited with {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_exit_reports_the_code_as_an_exit_code_cause() {
        let status = exit_status(ExitStatus::from_raw(3 << 8), &["sh".to_string()]);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn signal_death_reports_128_plus_the_signal() {
        let status = exit_status(ExitStatus::from_raw(9), &[]);
        assert_eq!(status["details"]["causes"][0]["message"], "137");
    }

    #[test]
    fn zero_exit_is_success() {
        assert_eq!(
            exit_status(ExitStatus::from_raw(0), &[])["status"],
            "Success"
        );
    }
}
