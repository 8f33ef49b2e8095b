//! Server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), the
//! columns kubectl prints: the same columns and cells as upstream's printers
//! (pkg/printers/internalversion/printers.go), wide columns at priority 1; NAME and AGE for
//! kinds without a printer.

use axum::http::{header, HeaderMap};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One column: (name, priority). All cells are strings, as upstream's printers make them.
pub(crate) type Column = (&'static str, u8);

pub(crate) const DEFAULT_COLUMNS: &[Column] = &[("Name", 0), ("Age", 0)];
pub(crate) const POD_COLUMNS: &[Column] = &[
    ("Name", 0),
    ("Ready", 0),
    ("Status", 0),
    ("Restarts", 0),
    ("Age", 0),
    ("IP", 1),
    ("Node", 1),
    ("Nominated Node", 1),
    ("Readiness Gates", 1),
];
pub(crate) const SERVICE_COLUMNS: &[Column] = &[
    ("Name", 0),
    ("Type", 0),
    ("Cluster-IP", 0),
    ("External-IP", 0),
    ("Port(s)", 0),
    ("Age", 0),
    ("Selector", 1),
];
pub(crate) const NAMESPACE_COLUMNS: &[Column] = &[("Name", 0), ("Status", 0), ("Age", 0)];
pub(crate) const NETWORK_POLICY_COLUMNS: &[Column] =
    &[("Name", 0), ("Pod-Selector", 0), ("Age", 0)];
pub(crate) const NODE_COLUMNS: &[Column] = &[
    ("Name", 0),
    ("Status", 0),
    ("Roles", 0),
    ("Age", 0),
    ("Version", 0),
    ("Internal-IP", 1),
    ("External-IP", 1),
    ("OS-Image", 1),
    ("Kernel-Version", 1),
    ("Container-Runtime", 1),
];
pub(crate) const INGRESS_COLUMNS: &[Column] = &[
    ("Name", 0),
    ("Class", 0),
    ("Hosts", 0),
    ("Address", 0),
    ("Ports", 0),
    ("Age", 0),
];
pub(crate) const LEASE_COLUMNS: &[Column] = &[("Name", 0), ("Holder", 0), ("Age", 0)];
pub(crate) const EVENT_COLUMNS: &[Column] = &[
    ("Last Seen", 0),
    ("Type", 0),
    ("Reason", 0),
    ("Object", 0),
    ("Subobject", 1),
    ("Source", 1),
    ("Message", 0),
    ("First Seen", 1),
    ("Count", 1),
    ("Name", 1),
];

const NONE: &str = "<none>";

/// Whether the client asked for a `meta.k8s.io` Table (kubectl get does; -o yaml does not).
pub(crate) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let params: Vec<String> = range
                .split(';')
                .skip(1)
                .map(|p| p.trim().to_ascii_lowercase())
                .collect();
            params.iter().any(|p| p == "as=table") && params.iter().any(|p| p == "g=meta.k8s.io")
        })
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(value: Option<&str>) -> Include {
        match value {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A Table of `objects` (JSON, as served), with each row's cells.
pub(crate) fn table(
    columns: &[Column],
    rows: Vec<(Value, Vec<String>)>,
    revision: &str,
    include: Include,
) -> Value {
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, priority)| {
            let mut c = json!({"name": name, "type": "string", "format": "", "description": "", "priority": priority});
            if *name == "Name" {
                c["format"] = json!("name");
            }
            c
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(object, cells)| {
            let mut row = json!({"cells": cells});
            match include {
                Include::None => {}
                Include::Object => row["object"] = object,
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// apimachinery's `duration.HumanDuration`.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the age of a time, `<unknown>` when unset.
pub(crate) fn age(time: Option<&Time>, now: Timestamp) -> String {
    match time {
        Some(t) => human_duration(now.as_second() - t.0.as_second()),
        None => "<unknown>".into(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        NONE.into()
    } else {
        s
    }
}

/// `labels.FormatLabels`: sorted `k=v,...`, `<none>` when empty.
fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    or_none(
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: the selector's requirements sorted by key.
fn format_selector(selector: &LabelSelector) -> String {
    let mut requirements: Vec<(String, String)> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return "<error>".into(),
        };
        requirements.push((e.key.clone(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    or_none(
        requirements
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// NAME AGE, for kinds without a printer.
pub(crate) fn default_cells(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    now: Timestamp,
) -> Vec<String> {
    vec![name(meta), age(meta.creation_timestamp.as_ref(), now)]
}

/// printPod: NAME READY STATUS RESTARTS AGE | IP NODE NOMINATED-NODE READINESS-GATES.
pub(crate) fn pod_cells(pod: &Pod, now: Timestamp) -> Vec<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let total = spec.containers.len();
    let (mut ready, mut restarts, mut has_running) = (0, 0, false);
    let mut last_restart: Option<Time> = None;
    for c in status.container_statuses.iter().flatten().rev() {
        restarts += c.restart_count;
        if let Some(t) = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.clone())
        {
            if last_restart.as_ref().is_none_or(|l| t.0 > l.0) {
                last_restart = Some(t);
            }
        }
        let state = c.state.clone().unwrap_or_default();
        let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone());
        let terminated = state.terminated.as_ref();
        if let Some(w) = waiting.filter(|w| !w.is_empty()) {
            reason = w;
        } else if let Some(t) = terminated {
            reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                Some(r) => r,
                None if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                None => format!("ExitCode:{}", t.exit_code),
            };
        } else if c.ready && state.running.is_some() {
            has_running = true;
            ready += 1;
        }
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    if reason == "Completed" && has_running {
        let pod_ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        reason = if pod_ready { "Running" } else { "NotReady" }.into();
    }
    let terminal = matches!(phase.as_str(), "Succeeded" | "Failed");
    if pod.metadata.deletion_timestamp.is_some() && !terminal {
        reason = "Terminating".into();
    }
    let restarts_text = match (&last_restart, restarts) {
        (Some(t), n) if n != 0 => format!("{n} ({} ago)", age(Some(t), now)),
        (_, n) => n.to_string(),
    };
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .unwrap_or_default();
    let gates = match spec.readiness_gates.as_deref() {
        None | Some([]) => NONE.to_string(),
        Some(gates) => {
            let met = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{met}/{}", gates.len())
        }
    };
    vec![
        name(&pod.metadata),
        format!("{ready}/{total}"),
        reason,
        restarts_text,
        age(pod.metadata.creation_timestamp.as_ref(), now),
        or_none(ip),
        or_none(spec.node_name.unwrap_or_default()),
        or_none(status.nominated_node_name.unwrap_or_default()),
        gates,
    ]
}

/// printService: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE | SELECTOR.
pub(crate) fn service_cells(svc: &Service, now: Timestamp) -> Vec<String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first().cloned())
        .or(spec.cluster_ip.clone())
        .unwrap_or_else(|| NONE.into());
    let external_ips = spec.external_ips.clone().unwrap_or_default();
    let lb: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.or(i.hostname))
        .collect();
    let external = match kind.as_str() {
        "ClusterIP" | "NodePort" => or_none(external_ips.join(",")),
        "LoadBalancer" => {
            let all: Vec<String> = lb.iter().cloned().chain(external_ips).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            match p.node_port.filter(|n| *n > 0) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    vec![
        name(&svc.metadata),
        kind,
        cluster_ip,
        external,
        or_none(ports),
        age(svc.metadata.creation_timestamp.as_ref(), now),
        format_labels(spec.selector.as_ref()),
    ]
}

/// printNamespace: NAME STATUS AGE.
pub(crate) fn namespace_cells(ns: &Namespace, now: Timestamp) -> Vec<String> {
    vec![
        name(&ns.metadata),
        ns.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        age(ns.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// printNetworkPolicy: NAME POD-SELECTOR AGE.
pub(crate) fn network_policy_cells(np: &NetworkPolicy, now: Timestamp) -> Vec<String> {
    let selector = np
        .spec
        .as_ref()
        .and_then(|s| s.pod_selector.as_ref())
        .map(format_selector)
        .unwrap_or_else(|| NONE.into());
    vec![
        name(&np.metadata),
        selector,
        age(np.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// printIngress: NAME CLASS HOSTS ADDRESS PORTS AGE.
pub(crate) fn ingress_cells(ing: &Ingress, now: Timestamp) -> Vec<String> {
    let spec = ing.spec.clone().unwrap_or_default();
    let class = spec
        .ingress_class_name
        .clone()
        .unwrap_or_else(|| NONE.into());
    let hosts: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.clone())
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let address: Vec<String> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.or(i.hostname))
        .collect();
    let ports = if spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        name(&ing.metadata),
        class,
        hosts,
        address.join(","),
        ports.into(),
        age(ing.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// printLease: NAME HOLDER AGE.
pub(crate) fn lease_cells(lease: &Lease, now: Timestamp) -> Vec<String> {
    vec![
        name(&lease.metadata),
        lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default(),
        age(lease.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// printEvent: LAST SEEN TYPE REASON OBJECT MESSAGE | SUBOBJECT SOURCE FIRST SEEN COUNT NAME.
pub(crate) fn event_cells(event: &Event, now: Timestamp) -> Vec<String> {
    let first = event
        .first_timestamp
        .as_ref()
        .or(event.metadata.creation_timestamp.as_ref());
    let last = event.last_timestamp.as_ref().or(first);
    let object = &event.involved_object;
    let source = event
        .source
        .as_ref()
        .map(|s| {
            let component = s.component.clone().unwrap_or_default();
            match s.host.as_deref() {
                Some(host) if !host.is_empty() => format!("{component}, {host}"),
                _ => component,
            }
        })
        .unwrap_or_default();
    vec![
        age(last, now),
        event.type_.clone().unwrap_or_default(),
        event.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            object.kind.clone().unwrap_or_default().to_lowercase(),
            object.name.clone().unwrap_or_default()
        ),
        object.field_path.clone().unwrap_or_default(),
        source,
        event.message.clone().unwrap_or_default().trim().to_string(),
        age(first, now),
        event.count.unwrap_or(1).to_string(),
        name(&event.metadata),
    ]
}

/// printNode from the node's JSON (the emulator serves its one node as JSON).
pub(crate) fn node_cells(node: &Value, now: Timestamp) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let mut roles: Vec<String> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .map(str::to_string)
        .collect();
    roles.sort();
    let address = |kind: &str| {
        node["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == kind)
            .map(|a| text(&a["address"]))
            .unwrap_or_else(|| NONE.into())
    };
    let info = &node["status"]["nodeInfo"];
    let unknown = |v: &Value| {
        let t = text(v);
        if t.is_empty() {
            "<unknown>".into()
        } else {
            t
        }
    };
    let created = node["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(Time);
    vec![
        text(&node["metadata"]["name"]),
        ready.into(),
        or_none(roles.join(",")),
        age(created.as_ref(), now),
        text(&info["kubeletVersion"]),
        address("InternalIP"),
        address("ExternalIP"),
        unknown(&info["osImage"]),
        // kube-apiserver's printer adds the architecture to the kernel.
        match (text(&info["kernelVersion"]), text(&info["architecture"])) {
            (kernel, _) if kernel.is_empty() => "<unknown>".into(),
            (kernel, arch) if arch.is_empty() => kernel,
            (kernel, arch) => format!("{kernel} ({arch})"),
        },
        unknown(&info["containerRuntimeVersion"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn human_durations_as_kubectl_shows_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (20 * 86400, "20d"),
            (-1, "0s"),
            (-5, "<invalid>"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn only_a_meta_table_media_range_asks_for_a_table() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
        );
        assert!(wanted(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wanted(&h));
    }

    #[test]
    fn selectors_print_as_upstream_formats_them() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"pod": "a"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
                {"key": "team", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(
            format_selector(&selector),
            "env notin (dev,prod),pod=a,!team"
        );
        assert_eq!(format_selector(&LabelSelector::default()), "<none>");
    }
}
