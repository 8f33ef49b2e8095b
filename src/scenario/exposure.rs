//! The exposure inventory's data: what a cluster exposes outside itself, and the profile
//! config's rules that approve an exposure (K8TRE: "All external access to applications/services
//! must be via the ingress/gateway"). Listing a cluster's exposures is `cluster::inventory`'s job.

use netassay_core::model::glob_match;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How something is exposed outside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    /// A Service of type NodePort: a port on every node.
    NodePort,
    /// A Service of type LoadBalancer (its node ports are reported here too, not as NodePort).
    LoadBalancer,
    /// A Service with `spec.externalIPs`, whatever its type.
    ExternalIp,
    /// A container port with a `hostPort`.
    HostPort,
    /// A pod with `hostNetwork: true`: it shares the node's network, ports and all.
    HostNetwork,
    /// A networking.k8s.io/v1 Ingress.
    Ingress,
    /// A gateway.networking.k8s.io/v1 Gateway.
    Gateway,
}

impl ExposureKind {
    pub const ALL: [ExposureKind; 7] = [
        ExposureKind::NodePort,
        ExposureKind::LoadBalancer,
        ExposureKind::ExternalIp,
        ExposureKind::HostPort,
        ExposureKind::HostNetwork,
        ExposureKind::Ingress,
        ExposureKind::Gateway,
    ];

    /// The name in config files and reports (`node-port`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureKind::NodePort => "node-port",
            ExposureKind::LoadBalancer => "load-balancer",
            ExposureKind::ExternalIp => "external-ip",
            ExposureKind::HostPort => "host-port",
            ExposureKind::HostNetwork => "host-network",
            ExposureKind::Ingress => "ingress",
            ExposureKind::Gateway => "gateway",
        }
    }

    /// What the exposed object is, in Kubernetes words, for sentences.
    pub fn noun(self) -> &'static str {
        match self {
            ExposureKind::NodePort => "NodePort service",
            ExposureKind::LoadBalancer => "LoadBalancer service",
            ExposureKind::ExternalIp => "Service with external IPs",
            ExposureKind::HostPort => "hostPort on pod",
            ExposureKind::HostNetwork => "hostNetwork pod",
            ExposureKind::Ingress => "Ingress",
            ExposureKind::Gateway => "Gateway",
        }
    }
}

impl fmt::Display for ExposureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExposureKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExposureKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ExposureKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown exposure kind {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One thing that exposes something outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub kind: ExposureKind,
    pub namespace: String,
    /// The object's name: the Service, pod, Ingress or Gateway.
    pub name: String,
    /// Short and operator-readable, e.g. `NodePort 31234/TCP -> port 80, selector app=web`.
    pub detail: String,
}

impl Exposure {
    /// One line for reports.
    pub fn summary(&self) -> String {
        format!(
            "{} {}/{}: {} is not on the allow-list of exposures",
            self.kind.noun(),
            self.namespace,
            self.name,
            self.detail
        )
    }

    /// The first rule that approves this exposure, if any.
    pub fn approved_by<'r>(&self, rules: &'r [ExposureRule]) -> Option<&'r ExposureRule> {
        rules.iter().find(|r| r.matches(self))
    }
}

/// An approved exposure, from the profile config's allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExposureRule {
    /// The kind approved; absent: any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExposureKind>,
    /// Namespace glob (`*` any run of characters, `?` one character).
    pub namespace: String,
    /// Object name glob.
    pub name: String,
    /// Why it is allowed, for the reader of the config and the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ExposureRule {
    pub fn matches(&self, e: &Exposure) -> bool {
        self.kind.is_none_or(|k| k == e.kind)
            && glob_match(&self.namespace, &e.namespace)
            && glob_match(&self.name, &e.name)
    }
}

/// What the cluster exposes, sorted by kind, namespace, name and detail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub exposures: Vec<Exposure>,
    /// What could not be looked at and why it is not an error, e.g. no Gateway API installed.
    pub notes: Vec<String>,
}

/// The exposures no rule approves, in inventory order.
pub fn unapproved<'a>(inventory: &'a Inventory, rules: &[ExposureRule]) -> Vec<&'a Exposure> {
    inventory
        .exposures
        .iter()
        .filter(|e| e.approved_by(rules).is_none())
        .collect()
}
