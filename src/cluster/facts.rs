//! Environment facts for reports: server version, nodes, and the CNI guessed from DaemonSets.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Environment {
    pub kubernetes_version: String,
    pub nodes: usize,
    /// e.g. `cilium 1.16.3`, or `unknown`.
    pub cni: String,
    /// How the CNI runs, where that can be read (e.g. `network-policy controller + BGP router +
    /// service proxy` from kube-router's arguments); empty when unknown.
    pub cni_mode: String,
}

/// The annotation that states a CNI DaemonSet's dataplane mode outright (the sandbox's install
/// records carry it: their components run as processes, so their arguments are not in the
/// DaemonSet).
pub const MODE_ANNOTATION: &str = "netassay.io/dataplane-mode";

/// The dataplane mode a CNI DaemonSet shows: [`MODE_ANNOTATION`], else what its well-known
/// arguments say; empty when neither says anything.
pub fn mode_of(daemonset: &DaemonSet) -> String {
    if let Some(mode) = daemonset
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MODE_ANNOTATION))
    {
        return mode.clone();
    }
    let container = daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first());
    let args: Vec<&str> = container
        .map(|c| {
            c.command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    match daemonset.metadata.name.as_deref() {
        Some("kube-router") => kube_router_mode(&args),
        _ => String::new(),
    }
}

/// kube-router's three controllers, each on unless its `--run-*` flag says false.
fn kube_router_mode(args: &[&str]) -> String {
    let on = |flag: &str| {
        !args.iter().any(|a| {
            a.strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        })
    };
    [
        ("--run-firewall", "network-policy controller"),
        ("--run-router", "BGP router"),
        ("--run-service-proxy", "service proxy (IPVS)"),
    ]
    .iter()
    .filter(|(flag, _)| on(flag))
    .map(|(_, role)| *role)
    .collect::<Vec<_>>()
    .join(" + ")
}

/// Well-known CNI DaemonSet names in kube-system, and the CNI they mean.
const CNIS: &[(&str, &str)] = &[
    ("cilium", "cilium"),
    ("calico-node", "calico"),
    ("antrea-agent", "antrea"),
    ("kube-flannel-ds", "flannel"),
    ("weave-net", "weave"),
    ("kube-router", "kube-router"),
    ("aws-node", "aws-vpc-cni"),
    ("azure-cns", "azure-cni"),
    ("canal", "canal"),
];

/// Which CNI a DaemonSet name and image point at.
pub fn cni_of(daemonset: &str, image: &str) -> Option<String> {
    let (_, cni) = CNIS.iter().find(|(name, _)| daemonset == *name)?;
    // registry:port/path/name:tag@digest -> tag
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let version = last.split_once(':').map(|(_, tag)| tag).unwrap_or("");
    Some(if version.is_empty() {
        cni.to_string()
    } else {
        format!("{cni} {version}")
    })
}

/// Reads what it can; facts it may not read are reported as unknown, never fatal.
pub async fn gather(client: &kube::Client) -> Environment {
    let kubernetes_version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "unknown".into());
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    let found = match Api::<DaemonSet>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items.iter().find_map(|ds| {
            let name = ds.metadata.name.clone().unwrap_or_default();
            let image = ds
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            cni_of(&name, &image).map(|cni| (cni, mode_of(ds)))
        }),
        Err(_) => None,
    };
    let (cni, cni_mode) = found.unwrap_or_else(|| ("unknown".into(), String::new()));
    Environment {
        kubernetes_version,
        nodes,
        cni,
        cni_mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_is_recognised_from_daemonset_and_image() {
        assert_eq!(
            cni_of("cilium", "quay.io/cilium/cilium:v1.16.3@sha256:abc"),
            Some("cilium v1.16.3".into())
        );
        assert_eq!(
            cni_of("calico-node", "docker.io/calico/node:v3.28.0"),
            Some("calico v3.28.0".into())
        );
        assert_eq!(
            cni_of("antrea-agent", "registry.local:5000/antrea/antrea-agent"),
            Some("antrea".into())
        );
        assert_eq!(
            cni_of("kube-proxy", "registry.k8s.io/kube-proxy:v1.33.0"),
            None
        );
    }

    fn daemonset(name: &str, args: &[&str], annotation: Option<&str>) -> DaemonSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": annotation
                .map(|a| serde_json::json!({MODE_ANNOTATION: a}))
                .unwrap_or(serde_json::json!({}))},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": name, "args": args}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_mode_is_the_annotation_else_what_kube_routers_flags_say() {
        let cases = [
            // kube-router's controllers are all on by default (its generic DaemonSet).
            (
                "kube-router",
                vec!["--run-router=true"],
                None,
                "network-policy controller + BGP router + service proxy (IPVS)",
            ),
            // k3s-style: the firewall alone.
            (
                "kube-router",
                vec!["--run-router=false", "--run-service-proxy=False"],
                None,
                "network-policy controller",
            ),
            (
                "kube-router",
                vec!["--run-firewall=false"],
                None,
                "BGP router + service proxy (IPVS)",
            ),
            (
                "kube-router",
                vec![],
                Some("iptables-nft + ipset"),
                "iptables-nft + ipset",
            ),
            ("calico-node", vec!["-felix"], None, ""),
        ];
        for (name, args, annotation, want) in cases {
            assert_eq!(
                mode_of(&daemonset(name, &args, annotation)),
                want,
                "{name} {args:?}"
            );
        }
    }
}
