//! Cilium's own account of a path, from Hubble: what its datapath did with the flows between two
//! addresses on one port since a moment (the start of a step), read with the `hubble` CLI from
//! the agent's Hubble socket. It is evidence beside the oracle's reasons, never a verdict: a
//! cell's status comes from the probes alone.
//
// `hubble observe -o json` prints one object per line, `{"flow": {...}, "node_name": ..., "time":
// ...}`, with the flow's fields in snake_case and enums by name (api/v1/flow/flow.proto):
// `verdict` (FORWARDED, DROPPED, ...), `drop_reason_desc` (POLICY_DENIED: no rule allows it;
// POLICY_DENY: a deny rule), `traffic_direction`, `event_type.type` (1 drop, 4 trace, 5 policy
// verdict) and, on policy verdicts, `{egress,ingress}_{allowed,denied}_by` with each policy's
// kind, namespace and name.

use netassay_core::model::Protocol;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// How long one `hubble observe` may take.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Hubble of one sandbox's Cilium agent.
#[derive(Debug, Clone)]
pub struct Hubble {
    /// The `hubble` CLI.
    pub binary: PathBuf,
    /// The agent's Hubble socket.
    pub socket: PathBuf,
}

/// One path to account for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowQuery {
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// Flows before this are not about the step.
    pub since: SystemTime,
}

impl Hubble {
    /// Cilium's account of `query`'s flows, in one line, or `None` when Hubble recorded none
    /// (or the protocol is not one Hubble filters by). An error says why Hubble could not be
    /// asked; it is reported as such, never as an account.
    pub fn account(&self, query: &FlowQuery) -> Result<Option<String>, String> {
        let protocol = match query.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        // RFC 3339, whole seconds, a second early: Hubble's filter must not miss the first flow.
        let since = query
            .since
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(query.since);
        let since = k8s_openapi::jiff::Timestamp::try_from(since)
            .map_err(|e| format!("the step's start as a timestamp: {e}"))?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut observe = Command::new(&self.binary);
        observe
            .args(["observe", "--server"])
            .arg(format!("unix://{}", self.socket.display()))
            .args(["--since", &since, "--all", "-o", "json"])
            .args(["--from-ip", &query.from.to_string()])
            .args(["--to-ip", &query.to.to_string()])
            .args(["--to-port", &query.port.to_string()])
            .args(["--protocol", protocol])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (status, out, err) =
            crate::processes::run_with_timeout(observe, "", OBSERVE_TIMEOUT)
                .map_err(|e| format!("hubble observe ({}): {e}", self.binary.display()))?;
        if !status.success() {
            return Err(format!("hubble observe: {}", err.trim()));
        }
        Ok(summarize(&out))
    }
}

/// The datapath's decisions among `hubble observe -o json`'s lines, in one line: how many flows
/// were dropped and forwarded, and the last decision with its reason and the policies Cilium
/// names for it. `None` when no line is a flow.
pub fn summarize(lines: &str) -> Option<String> {
    let flows: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter_map(|v| v.get("flow").cloned())
        .collect();
    if flows.is_empty() {
        return None;
    }
    let verdict = |f: &Value| text(f, "verdict").unwrap_or_default();
    let dropped = flows.iter().filter(|f| verdict(f) == "DROPPED").count();
    let forwarded = flows.iter().filter(|f| verdict(f) == "FORWARDED").count();
    // The last decision, preferring policy verdicts (they name the policies) and drops.
    let decisive = flows
        .iter()
        .rev()
        .find(|f| event_type(f) == Some(POLICY_VERDICT))
        .or_else(|| flows.iter().rev().find(|f| verdict(f) == "DROPPED"))
        .or(flows.last())?;
    let mut last = verdict(decisive);
    if let Some(direction) = text(decisive, "traffic_direction") {
        last.push_str(&format!(" at {}", direction.to_lowercase()));
    }
    if let Some(reason) = text(decisive, "drop_reason_desc") {
        last.push_str(&format!(" ({})", drop_reason(&reason)));
    }
    let mut by = Vec::new();
    for (field, what) in [
        ("egress_denied_by", "egress denied by"),
        ("ingress_denied_by", "ingress denied by"),
        ("egress_allowed_by", "egress allowed by"),
        ("ingress_allowed_by", "ingress allowed by"),
    ] {
        let names: Vec<String> = decisive
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(policy_name)
            .collect();
        if !names.is_empty() {
            by.push(format!("{what} {}", names.join(", ")));
        }
    }
    if !by.is_empty() {
        last.push_str(&format!(", {}", by.join("; ")));
    }
    Some(format!(
        "Hubble: {dropped} dropped, {forwarded} forwarded since the step began; last: {last}"
    ))
}

/// `event_type.type` of a policy-verdict event (`pkg/monitor/api/types.go`).
const POLICY_VERDICT: i64 = 5;

fn event_type(flow: &Value) -> Option<i64> {
    flow.get("event_type")?.get("type")?.as_i64()
}

fn text(flow: &Value, field: &str) -> Option<String> {
    let v = flow.get(field)?.as_str()?.trim();
    (!v.is_empty() && v != "TRAFFIC_DIRECTION_UNKNOWN" && v != "DROP_REASON_UNKNOWN")
        .then(|| v.to_string())
}

/// Cilium's drop reasons that matter for policy, in words; others by their name.
fn drop_reason(reason: &str) -> String {
    match reason {
        "POLICY_DENIED" => "policy denied: no rule allows it".into(),
        "POLICY_DENY" => "policy deny: a deny rule matches".into(),
        "AUTH_REQUIRED" => "authentication required".into(),
        other => other.to_lowercase().replace('_', " "),
    }
}

/// `Kind namespace/name` (or `Kind name` for cluster-wide kinds) of one `flow.Policy`.
fn policy_name(p: &Value) -> String {
    let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let kind = match get("kind") {
        "" => "policy",
        k => k,
    };
    match (get("namespace"), get("name")) {
        ("", name) => format!("{kind} {name}"),
        (ns, name) => format!("{kind} {ns}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(flow: Value) -> String {
        json!({"flow": flow, "node_name": "sandbox-node"}).to_string()
    }

    /// A default-deny drop (flow.proto: POLICY_DENIED names no policy) counts as dropped and
    /// says why; the policy verdict before it is preferred when it names the policies.
    #[test]
    fn a_default_deny_drop_is_summarized_with_its_reason() {
        let lines = [
            line(
                json!({"verdict": "DROPPED", "drop_reason_desc": "POLICY_DENIED",
                        "traffic_direction": "INGRESS", "event_type": {"type": 1}}),
            ),
            line(
                json!({"verdict": "DROPPED", "drop_reason_desc": "POLICY_DENIED",
                        "traffic_direction": "INGRESS", "event_type": {"type": 1}}),
            ),
        ]
        .join("\n");
        assert_eq!(
            summarize(&lines).as_deref(),
            Some("Hubble: 2 dropped, 0 forwarded since the step began; last: DROPPED at ingress (policy denied: no rule allows it)")
        );
    }

    #[test]
    fn a_policy_verdict_names_the_policies_cilium_matched() {
        let lines = [
            line(
                json!({"verdict": "FORWARDED", "traffic_direction": "EGRESS",
                        "event_type": {"type": 4}}),
            ),
            line(
                json!({"verdict": "DROPPED", "drop_reason_desc": "POLICY_DENY",
                        "traffic_direction": "EGRESS", "event_type": {"type": 5},
                        "egress_denied_by": [{"kind": "CiliumClusterwideNetworkPolicy",
                                              "name": "y-not-to-x", "namespace": ""}]}),
            ),
            line(
                json!({"verdict": "DROPPED", "drop_reason_desc": "POLICY_DENY",
                        "traffic_direction": "EGRESS", "event_type": {"type": 1}}),
            ),
        ]
        .join("\n");
        assert_eq!(
            summarize(&lines).as_deref(),
            Some("Hubble: 2 dropped, 1 forwarded since the step began; last: DROPPED at egress (policy deny: a deny rule matches), egress denied by CiliumClusterwideNetworkPolicy y-not-to-x")
        );
    }

    #[test]
    fn an_allowed_flow_names_the_allowing_policy_with_its_namespace() {
        let lines = line(
            json!({"verdict": "FORWARDED", "traffic_direction": "INGRESS",
                                "event_type": {"type": 5},
                                "ingress_allowed_by": [{"kind": "NetworkPolicy",
                                                        "namespace": "x", "name": "allow"}]}),
        );
        assert_eq!(
            summarize(&lines).as_deref(),
            Some("Hubble: 0 dropped, 1 forwarded since the step began; last: FORWARDED at ingress, ingress allowed by NetworkPolicy x/allow")
        );
    }

    #[test]
    fn no_flow_is_no_account_and_noise_is_skipped() {
        assert_eq!(summarize(""), None);
        assert_eq!(summarize("not json\n{\"lost_events\": {}}\n"), None);
    }
}
