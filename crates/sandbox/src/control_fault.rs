//! Control-plane fault profiles of the sandbox (DESIGN §7): a hostile cluster rather than a buggy
//! CNI. They model what a certification run meets on a real day (a throttling or hiccuping API
//! server, exec streams reset between the API server and the kubelet, probe pods restarted after
//! an OOM kill, a slow API) and must never change a verdict: netassay retries, replays or
//! re-probes, or gives up with an environment error (exit 3).
//!
//! Names, descriptions and the random draws live here; the emulator applies `api-errors` and
//! `slow-api` to every request (`api::chaos`), `exec-resets` to exec streams (`api::exec`), and
//! `pod-restarts` through the dataplane (`api::lifecycle`). The reference cluster's node agent
//! carries the two that live on a node: `exec-resets` on its kubelet endpoint (`node::kubelet`),
//! whose cut the real API server relays, and `pod-restarts` in its pod lifecycle (`node`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One control-plane fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlPlaneFault {
    /// About 5 % of API requests answer 429 (with Retry-After), 500 or 503, or stall past the
    /// client's timeout.
    ApiErrors,
    /// About 10 % of exec streams close abruptly after some output.
    ExecResets,
    /// Probe pods' processes are killed at random moments and restarted in place (restartCount
    /// goes up, the pod IP stays), as a kubelet does after an OOM kill.
    PodRestarts,
    /// Every API response is delayed by 200 to 800 ms.
    SlowApi,
}

/// Share of API requests that `api-errors` fails.
pub const API_ERROR_RATE: f64 = 0.05;
/// Share of exec streams that `exec-resets` cuts.
pub const EXEC_RESET_RATE: f64 = 0.10;
/// How long a stalled request hangs before the emulator answers it anyway (a 504): longer than
/// any client timeout netassay uses, so the client gives up first.
pub const STALL: Duration = Duration::from_secs(40);
/// The `Retry-After` of a 429, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;
/// `slow-api`'s delay range.
pub const SLOW_API_MS: (u64, u64) = (200, 800);
/// `pod-restarts`: one probe pod restarted every this long (± half), on average.
pub const RESTART_EVERY: Duration = Duration::from_secs(4);

impl ControlPlaneFault {
    pub const ALL: [ControlPlaneFault; 4] = [
        ControlPlaneFault::ApiErrors,
        ControlPlaneFault::ExecResets,
        ControlPlaneFault::PodRestarts,
        ControlPlaneFault::SlowApi,
    ];

    /// Whether the node carries this fault (its kubelet endpoint, its pod lifecycle), so that
    /// the reference cluster's node agent can apply it too; the others are the emulator API's.
    pub fn on_the_node(&self) -> bool {
        matches!(
            self,
            ControlPlaneFault::ExecResets | ControlPlaneFault::PodRestarts
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            ControlPlaneFault::ApiErrors => "api-errors",
            ControlPlaneFault::ExecResets => "exec-resets",
            ControlPlaneFault::PodRestarts => "pod-restarts",
            ControlPlaneFault::SlowApi => "slow-api",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            ControlPlaneFault::ApiErrors => {
                "about 5% of API requests answer 429 (Retry-After: 1), 500 or 503, or stall past the client's timeout"
            }
            ControlPlaneFault::ExecResets => {
                "about 10% of exec streams close abruptly after some output (mid-batch)"
            }
            ControlPlaneFault::PodRestarts => {
                "probe pods' processes are killed at random and restarted in place (restartCount +1, same IP)"
            }
            ControlPlaneFault::SlowApi => "every API response is delayed by 200 to 800 ms",
        }
    }
}

impl fmt::Display for ControlPlaneFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ControlPlaneFault {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ControlPlaneFault::ALL
            .into_iter()
            .find(|f| f.name() == s.trim())
            .ok_or(())
    }
}

/// What `api-errors` does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMishap {
    /// 429 TooManyRequests with `Retry-After`.
    Throttled,
    /// 500 InternalError.
    Internal,
    /// 503 ServiceUnavailable.
    Unavailable,
    /// No answer until [`STALL`] has passed.
    Stall,
}

/// The control-plane faults of one sandbox, with their random draws.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlaneFaults {
    faults: Vec<ControlPlaneFault>,
}

impl ControlPlaneFaults {
    pub fn insert(&mut self, f: ControlPlaneFault) {
        if !self.faults.contains(&f) {
            self.faults.push(f);
            self.faults.sort();
        }
    }

    pub fn contains(&self, f: ControlPlaneFault) -> bool {
        self.faults.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ControlPlaneFault> {
        self.faults.iter()
    }

    /// What `api-errors` does to the next request, if anything.
    pub fn draw_api_mishap(&self) -> Option<ApiMishap> {
        if !self.contains(ControlPlaneFault::ApiErrors) || fastrand::f64() >= API_ERROR_RATE {
            return None;
        }
        Some(match fastrand::u8(0..4) {
            0 => ApiMishap::Throttled,
            1 => ApiMishap::Internal,
            2 => ApiMishap::Unavailable,
            _ => ApiMishap::Stall,
        })
    }

    /// `slow-api`'s delay for the next response.
    pub fn draw_api_delay(&self) -> Option<Duration> {
        self.contains(ControlPlaneFault::SlowApi)
            .then(|| Duration::from_millis(fastrand::u64(SLOW_API_MS.0..=SLOW_API_MS.1)))
    }

    /// For a new exec stream: after how many lines of output `exec-resets` cuts it, if it does.
    pub fn draw_exec_reset(&self) -> Option<usize> {
        (self.contains(ControlPlaneFault::ExecResets) && fastrand::f64() < EXEC_RESET_RATE)
            .then(|| fastrand::usize(1..=4))
    }

    /// `pod-restarts`: the pause before the next restart.
    pub fn draw_restart_pause(&self) -> Option<Duration> {
        self.contains(ControlPlaneFault::PodRestarts).then(|| {
            let ms = RESTART_EVERY.as_millis() as u64;
            Duration::from_millis(fastrand::u64(ms / 2..=ms * 3 / 2))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_each_fault_says_what_it_does() {
        for f in ControlPlaneFault::ALL {
            assert_eq!(f.name().parse::<ControlPlaneFault>(), Ok(f));
            assert!(!f.describe().is_empty());
        }
        assert!("api-error".parse::<ControlPlaneFault>().is_err());
    }

    // The draws follow the set: nothing without the fault, the named rates with it.
    #[test]
    fn draws_happen_only_with_their_fault_and_at_about_their_rate() {
        let none = ControlPlaneFaults::default();
        assert!((0..1000).all(|_| none.draw_api_mishap().is_none()));
        assert!(none.draw_api_delay().is_none());
        assert!(none.draw_exec_reset().is_none());
        assert!(none.draw_restart_pause().is_none());
        let mut all = ControlPlaneFaults::default();
        for f in ControlPlaneFault::ALL {
            all.insert(f);
        }
        let n = 20_000;
        let mishaps = (0..n).filter(|_| all.draw_api_mishap().is_some()).count();
        let resets = (0..n).filter(|_| all.draw_exec_reset().is_some()).count();
        // 5 % and 10 % of 20 000, with a wide margin (binomial sd ~31 and ~42).
        assert!((700..1300).contains(&mishaps), "{mishaps}");
        assert!((1600..2400).contains(&resets), "{resets}");
        for _ in 0..100 {
            let d = all.draw_api_delay().expect("slow-api");
            assert!((200..=800).contains(&(d.as_millis() as u64)));
        }
    }
}
