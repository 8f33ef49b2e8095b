//! One run of `netassay agent probe`: in a pod over kube exec, or as a process on this machine
//! (the outside vantage). One batch line in; result lines out, each with the moment it arrived,
//! so that probe starts can be placed on this process's clock.

use crate::runner::Probed;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, AttachedProcess};
use kube::Api;
use netassay_core::probe::{AgentLine, ProbeBatch, ProbeResult};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Status = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Once an exec's status has settled, how long the output already sent may take to be read.
const STREAM_DRAIN: Duration = Duration::from_millis(500);

/// What keeps the agent alive while it runs (dropping it ends the run).
enum Keep {
    Exec(#[allow(dead_code)] AttachedProcess),
    Local(tokio::process::Child),
    /// Tests: streams made by hand, nothing to keep alive.
    #[cfg(test)]
    Nothing,
}

/// An agent started and waiting for its batch.
pub struct AgentRun {
    /// `in x/a`, `outside the cluster`: for messages.
    place: String,
    stdin: Box<dyn AsyncWrite + Send + Unpin>,
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: JoinHandle<String>,
    /// The exec's final status message, when the agent ends without its summary.
    status: Option<Status>,
    keep: Keep,
}

/// What one agent run answered, and when: the batch went out at `sent`, each result arrived at
/// its instant.
pub struct Ran {
    pub sent: Instant,
    pub results: Vec<(ProbeResult, Instant)>,
    /// `None` when the agent reached its summary; else why the run ended early (the exec stream
    /// broke, the agent died): the results are only those that came.
    pub cut: Option<String>,
}

fn read_side(mut stderr: impl AsyncRead + Send + Unpin + 'static) -> JoinHandle<String> {
    // stderr is read on the side (its pipe is small) and only consulted on failure.
    tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    })
}

impl AgentRun {
    /// `netassay agent probe` in pod `name` of real namespace `namespace`.
    pub async fn exec(
        client: kube::Client,
        namespace: &str,
        name: &str,
        place: String,
    ) -> Result<Self, String> {
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let ap = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(true);
        let mut proc = api
            .exec(name, ["netassay", "agent", "probe"], &ap)
            .await
            .map_err(|e| format!("exec {place}: {e}"))?;
        let stdin = proc.stdin().ok_or("exec gave no stdin")?;
        let stdout = proc.stdout().ok_or("exec gave no stdout")?;
        let stderr = proc.stderr().ok_or("exec gave no stderr")?;
        let status: Option<Status> = proc
            .take_status()
            .map(|s| -> Status { Box::pin(async move { s.await.and_then(|st| st.message) }) });
        Ok(AgentRun {
            place,
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: read_side(stderr),
            status,
            keep: Keep::Exec(proc),
        })
    }

    /// `argv + ["agent", "probe"]` as a local process.
    pub fn local(argv: &[String], place: String) -> Result<Self, String> {
        let (program, rest) = argv.split_first().ok_or("empty outside command")?;
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .args(["agent", "probe"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the prober {place} ({}): {e}", argv.join(" ")))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        Ok(AgentRun {
            place,
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: read_side(stderr),
            status: None,
            keep: Keep::Local(child),
        })
    }

    /// Sends `batch` and reads every result up to the summary. `started` is set to true when a
    /// series says that its clock started (and dropped, unset, when the agent never says so). An agent that ends without its summary is an error unless it
    /// gave results (those are kept; the missing ones become errors upstream).
    pub async fn run(
        mut self,
        batch: &ProbeBatch,
        started: Option<watch::Sender<bool>>,
    ) -> Result<Ran, String> {
        let line = batch.to_json_line();
        let sent = Instant::now();
        // stdin stays open: the agent does not wait for EOF, and closing it races with the end
        // of an exec session (kube-rs then never ends stdout), so the end is the summary line.
        let stdin = &mut self.stdin;
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        let mut results = Vec::new();
        let mut status = self.status.take();
        let mut ended_early = None;
        let reading = async {
            let reading = read_results(&mut self.stdout, started, &mut results);
            match status.as_mut() {
                None => reading.await,
                Some(st) => {
                    // An exec stream that breaks (reset, no status) leaves kube-rs's stdout open
                    // for ever: the exec's status settling is the sign to stop reading, once
                    // what was already sent has been read.
                    tokio::pin!(reading);
                    tokio::select! {
                        finished = &mut reading => finished,
                        why = st => {
                            ended_early = Some(why);
                            tokio::time::timeout(STREAM_DRAIN, reading).await.unwrap_or(false)
                        }
                    }
                }
            }
        };
        let (w, finished) = tokio::join!(write, reading);
        if let Err(e) = &w {
            if results.is_empty() {
                return Err(format!("writing the batch {}: {e}", self.place));
            }
        }
        if finished {
            return Ok(Ran {
                sent,
                results,
                cut: None,
            });
        }
        // No summary: the agent died or could not start. Say why, from its status and stderr.
        if let Keep::Local(child) = &mut self.keep {
            let _ = child.kill().await;
        }
        let why = match (ended_early, status) {
            (Some(why), _) => why,
            (None, Some(s)) => tokio::time::timeout(Duration::from_secs(1), s)
                .await
                .ok()
                .flatten(),
            (None, None) => None,
        };
        let err = tokio::time::timeout(Duration::from_millis(500), self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let why = format!(
            "agent probe {} ended early: {} {}",
            self.place,
            why.unwrap_or_else(|| "the exec stream ended without a status".into()),
            err.trim()
        );
        if results.is_empty() {
            return Err(why.trim_end().to_string());
        }
        Ok(Ran {
            sent,
            results,
            cut: Some(why.trim_end().to_string()),
        })
    }
}

/// Reads an agent's lines, each result with when it arrived, up to its summary; `true` when the
/// summary came.
async fn read_results(
    stdout: &mut (dyn AsyncRead + Send + Unpin),
    mut started: Option<watch::Sender<bool>>,
    results: &mut Vec<(ProbeResult, Instant)>,
) -> bool {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        match AgentLine::parse(&l) {
            Ok(AgentLine::Result(r)) => results.push((r, Instant::now())),
            Ok(AgentLine::Started { .. }) => {
                if let Some(tx) = started.take() {
                    let _ = tx.send(true);
                }
            }
            Ok(AgentLine::Summary { .. }) => return true,
            Err(_) => {}
        }
    }
    false
}

impl Ran {
    /// The results with their start times on this process's clock. The agent counts `start_ms`
    /// from its own start, which is no later than the earliest "arrival - elapsed - start_ms" of
    /// any result; starts are placed there, so they are upper bounds (late by at most the
    /// transit time of the fastest answer). Older agents give no `start_ms`: their probes
    /// started by "arrival - elapsed".
    pub fn timed(self) -> Vec<Probed> {
        let origin = self
            .results
            .iter()
            .filter_map(|(r, at)| {
                let back = Duration::from_millis(r.elapsed_ms + r.start_ms?);
                at.checked_sub(back)
            })
            .min()
            .map(|o| o.max(self.sent));
        self.results
            .into_iter()
            .map(|(result, at)| {
                let started = match (origin, result.start_ms) {
                    (Some(origin), Some(ms)) => origin + Duration::from_millis(ms),
                    _ => at
                        .checked_sub(Duration::from_millis(result.elapsed_ms))
                        .unwrap_or(at)
                        .max(self.sent),
                };
                Probed { result, started }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netassay_core::probe::Outcome;
    use tokio::io::{AsyncWriteExt, DuplexStream};

    /// An exec-like run over hand-made streams: what the test writes to the returned end is the
    /// agent's stdout, which stays open as long as that end lives (as kube-rs leaves it when a
    /// websocket breaks); `status` is the exec's status channel.
    fn exec_like(status: Status) -> (AgentRun, DuplexStream) {
        let (agent_side, ours) = tokio::io::duplex(64 * 1024);
        let run = AgentRun {
            place: "in x/a".into(),
            stdin: Box::new(tokio::io::sink()),
            stdout: Box::new(agent_side),
            stderr: tokio::spawn(async { String::new() }),
            status: Some(status),
            keep: Keep::Nothing,
        };
        (run, ours)
    }

    fn batch() -> ProbeBatch {
        serde_json::from_str(r#"{"schema":"netassay.probe/v1","probes":[]}"#).expect("batch")
    }

    fn line(r: &ProbeResult) -> String {
        format!("{}\n", AgentLine::Result(r.clone()).to_json_line())
    }

    // Issue 15, found under exec-resets: kube-rs never ends an exec's stdout when the websocket
    // breaks without a status. The status settling must end the read, keeping what came and
    // saying why the run was cut, instead of hanging until the batch's budget.
    #[tokio::test]
    async fn a_settled_status_ends_a_read_whose_stdout_never_closes() {
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<String>>();
        let (run, mut stdout) = exec_like(Box::pin(async move { rx.await.ok().flatten() }));
        stdout
            .write_all(line(&result(Some(0), 3)).as_bytes())
            .await
            .expect("write");
        let b = batch();
        let running = tokio::spawn(async move { run.run(&b, None).await });
        // Give the reader the line, then break the "websocket": a status, stdout left open.
        tokio::task::yield_now().await;
        tx.send(Some("connection reset by peer".into()))
            .expect("send");
        let ran = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the read must end once the status settles, not hang")
            .expect("join")
            .expect("results came, so the run is kept");
        assert_eq!(ran.results.len(), 1);
        let cut = ran.cut.expect("a cut run says so");
        assert!(cut.contains("connection reset by peer"), "{cut}");
        drop(stdout);
    }

    #[tokio::test]
    async fn a_run_that_reached_its_summary_is_whole_and_one_with_nothing_is_an_error() {
        let (run, mut stdout) = exec_like(Box::pin(std::future::pending()));
        let summary = AgentLine::Summary {
            summary: netassay_core::probe::BatchSummary::of([Outcome::Connected], 3),
        };
        let text = format!("{}{}\n", line(&result(Some(0), 3)), summary.to_json_line());
        stdout.write_all(text.as_bytes()).await.expect("write");
        let ran = run.run(&batch(), None).await.expect("whole run");
        assert!(ran.cut.is_none());
        assert_eq!(ran.results.len(), 1);

        let (run, stdout) = exec_like(Box::pin(async { Some("pod restarted".into()) }));
        let err = match tokio::time::timeout(Duration::from_secs(10), run.run(&batch(), None))
            .await
            .expect("ends")
        {
            Ok(_) => panic!("a run with no result and no summary is an error"),
            Err(e) => e,
        };
        assert!(
            err.contains("ended early") && err.contains("pod restarted"),
            "{err}"
        );
        drop(stdout);
    }

    fn result(start_ms: Option<u64>, elapsed_ms: u64) -> ProbeResult {
        ProbeResult {
            id: "1".into(),
            outcome: Outcome::Connected,
            detail: String::new(),
            elapsed_ms,
            peer_identity: None,
            addresses: Vec::new(),
            start_ms,
            seq: None,
        }
    }

    // The agent's clock is placed as late as its answers allow: the tightest result wins.
    #[test]
    fn starts_are_placed_by_the_tightest_answer() {
        let sent = Instant::now();
        let ms = Duration::from_millis;
        let ran = Ran {
            sent,
            cut: None,
            results: vec![
                // Arrived 130 ms after sending: started at 20 on the agent's clock, took 10.
                (result(Some(20), 10), sent + ms(130)),
                // Arrived 300 ms after sending, started at 150, took 50: origin <= sent + 100.
                (result(Some(150), 50), sent + ms(300)),
            ],
        };
        let t = ran.timed();
        assert_eq!(t[0].started, sent + ms(120));
        assert_eq!(t[1].started, sent + ms(250));
        let old = Ran {
            sent,
            cut: None,
            results: vec![(result(None, 10), sent + ms(40))],
        };
        assert_eq!(old.timed()[0].started, sent + ms(30));
    }
}
