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
    let cni = match Api::<DaemonSet>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .find_map(|ds| {
                let name = ds.metadata.name.clone().unwrap_or_default();
                let image = ds
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|p| p.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default();
                cni_of(&name, &image)
            })
            .unwrap_or_else(|| "unknown".into()),
        Err(_) => "unknown".into(),
    };
    Environment {
        kubernetes_version,
        nodes,
        cni,
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
}
