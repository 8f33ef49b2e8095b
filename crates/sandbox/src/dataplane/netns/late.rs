//! The `late` fault at run time: each ruleset is applied a fixed delay after its sync, in order,
//! on a background thread. When several are due at once only the newest is applied (it replaces
//! the whole table, so the older ones would be overwritten at once anyway).

use std::collections::VecDeque;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send>;

struct Pending {
    due: Instant,
    script: String,
}

pub struct LateApplier {
    delay: Duration,
    sender: Mutex<Option<Sender<Pending>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// The most recent background failure, not yet reported.
    failure: Arc<Mutex<Option<String>>>,
}

impl LateApplier {
    pub fn start(delay: Duration, apply: Apply) -> LateApplier {
        let (sender, receiver) = channel::<Pending>();
        let failure = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&failure);
        let worker = std::thread::Builder::new()
            .name("netassay-late-sync".into())
            .spawn(move || {
                let mut queue: VecDeque<Pending> = VecDeque::new();
                loop {
                    let wait = match queue.front() {
                        Some(first) => first.due.saturating_duration_since(Instant::now()),
                        None => Duration::from_secs(3600),
                    };
                    if !wait.is_zero() {
                        match receiver.recv_timeout(wait) {
                            Ok(next) => {
                                queue.push_back(next);
                                continue;
                            }
                            Err(RecvTimeoutError::Timeout) => {}
                            // Shut down: what is still pending is never applied.
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    // What was submitted meanwhile (e.g. while the last application ran) may be
                    // due as well: queue it, so that only the newest due state is applied.
                    while let Ok(next) = receiver.try_recv() {
                        queue.push_back(next);
                    }
                    let now = Instant::now();
                    let mut newest_due = None;
                    while queue.front().is_some_and(|p| p.due <= now) {
                        newest_due = queue.pop_front();
                    }
                    if let Some(pending) = newest_due {
                        if let Err(e) = apply(&pending.script) {
                            *failed.lock().unwrap() = Some(e);
                        }
                    }
                }
            })
            .expect("spawning the late-sync thread");
        LateApplier {
            delay,
            sender: Mutex::new(Some(sender)),
            worker: Mutex::new(Some(worker)),
            failure,
        }
    }

    /// Queues `script` for application after the delay. Reports (and clears) the failure of an
    /// earlier delayed application, if there was one.
    pub fn submit(&self, script: String) -> Result<(), String> {
        let earlier = self.failure.lock().unwrap().take();
        if let Some(sender) = self.sender.lock().unwrap().as_ref() {
            let due = Instant::now() + self.delay;
            // A send error means the worker is gone (shut down): nothing left to enforce.
            let _ = sender.send(Pending { due, script });
        }
        match earlier {
            Some(e) => Err(format!("an earlier delayed sync failed: {e}")),
            None => Ok(()),
        }
    }

    /// Drops what is pending and waits for the worker to end. Idempotent.
    pub fn stop(&self) {
        self.sender.lock().unwrap().take();
        if let Some(worker) = self.worker.lock().unwrap().take() {
            let _ = worker.join();
        }
    }
}

impl Drop for LateApplier {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was applied, and when.
    type Log = Arc<Mutex<Vec<(String, Instant)>>>;

    fn recorder() -> (Log, Apply) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let apply: Apply = Box::new(move |s: &str| {
            sink.lock().unwrap().push((s.to_string(), Instant::now()));
            Ok(())
        });
        (log, apply)
    }

    fn wait_for(log: &Mutex<Vec<(String, Instant)>>, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn each_sync_is_applied_no_earlier_than_the_delay_and_in_order() {
        let (log, apply) = recorder();
        let late = LateApplier::start(Duration::from_millis(100), apply);
        let start = Instant::now();
        late.submit("one".into()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        late.submit("two".into()).unwrap();
        wait_for(&log, 2);
        let log = log.lock().unwrap();
        assert_eq!(log[0].0, "one");
        assert_eq!(log[1].0, "two");
        assert!(log[0].1 - start >= Duration::from_millis(100));
        assert!(log[1].1 - start >= Duration::from_millis(250));
    }

    // States that are due together are applied as one: the newest. The worker is held in an
    // application until three later states are all due, so they are due together whatever the
    // machine's load; an applier that applied each (even in order) would log five.
    #[test]
    fn the_newest_state_wins() {
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let (entered, in_apply) = channel::<()>();
        let (release, released) = channel::<()>();
        let released = Mutex::new(released);
        let apply: Apply = Box::new(move |s: &str| {
            sink.lock().unwrap().push((s.to_string(), Instant::now()));
            if s == "held" {
                entered.send(()).unwrap();
                released.lock().unwrap().recv().unwrap();
            }
            Ok(())
        });
        let delay = Duration::from_millis(20);
        let late = LateApplier::start(delay, apply);
        late.submit("held".into()).unwrap();
        in_apply
            .recv_timeout(Duration::from_secs(10))
            .expect("the first state is applied");
        for script in ["a", "b", "c"] {
            late.submit(script.into()).unwrap();
        }
        let submitted = Instant::now();
        while submitted.elapsed() < delay {
            std::thread::sleep(delay);
        }
        release.send(()).unwrap();
        // One more state, due later, marks the end: everything before it has been handled.
        late.submit("last".into()).unwrap();
        wait_for(&log, 3);
        late.stop();
        let applied: Vec<String> = log.lock().unwrap().iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(applied, ["held", "c", "last"]);
    }

    #[test]
    fn stopping_drops_what_is_pending() {
        let (log, apply) = recorder();
        let late = LateApplier::start(Duration::from_secs(60), apply);
        late.submit("never".into()).unwrap();
        let start = Instant::now();
        late.stop();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(log.lock().unwrap().is_empty());
    }

    #[test]
    fn a_background_failure_is_reported_by_the_next_sync() {
        let late = LateApplier::start(Duration::ZERO, Box::new(|_: &str| Err("boom".into())));
        late.submit("x".into()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let err = late.submit("y".into()).unwrap_err();
        assert!(err.contains("boom"), "{err}");
    }
}
