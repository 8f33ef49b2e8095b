//! A node component's presence in the cluster: what it is (its binary, ServiceAccount, RBAC and
//! the nftables table that says it works), the identity it runs with (ServiceAccount, RBAC,
//! token, credentials folder) and the DaemonSet record that names it as a real install would.
//! Shared by the components of [`super::components`] and Cilium's agent ([`super::cilium`]).

use crate::reference::{self, ReferenceCluster, ReferenceError};
use serde_json::json;

/// One component: its binary, its identity, and the nftables table (or chain) whose rules in
/// the node's namespace say it is working.
pub(crate) struct Component {
    pub(crate) binary: &'static str,
    pub(crate) service_account: &'static str,
    /// The ClusterRole (from the component's upstream manifest), or the bootstrap role to bind.
    pub(crate) rbac: Rbac,
    /// `family table` it creates, and the chain in it that must hold rules (`None`: any chain;
    /// iptables' nft backend shares its `filter` table with every other iptables user).
    pub(crate) table: (&'static str, &'static str),
    pub(crate) chain: Option<&'static str>,
}

pub(crate) enum Rbac {
    /// A built-in ClusterRole of the API server's bootstrap policy.
    Bootstrap(&'static str),
    /// Our own ClusterRole with these rules.
    Rules(serde_json::Value),
}

/// Creates the component's ServiceAccount and RBAC, a token, and its credentials folder.
pub(crate) async fn identity(
    client: &kube::Client,
    cluster: &ReferenceCluster,
    c: &Component,
) -> Result<std::path::PathBuf, ReferenceError> {
    let sa = c.service_account;
    reference::create_object(
        client,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": sa, "namespace": "kube-system"}}),
    )
    .await?;
    let role = match &c.rbac {
        Rbac::Bootstrap(name) => (*name).to_string(),
        Rbac::Rules(rules) => {
            let name = format!("netassay-sandbox:{sa}");
            reference::create_object(
                client,
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": name}, "rules": rules}),
            )
            .await?;
            name
        }
    };
    reference::create_object(
        client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": format!("netassay-sandbox:{sa}")},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}]}),
    )
    .await?;
    let token = reference::service_account_token(client, "kube-system", sa).await?;
    cluster.write_component_credentials(c.binary, &token)
}

/// The DaemonSet a real install of the component has in kube-system, so that a run's
/// environment facts find the CNI the way they find it on any cluster (by DaemonSet name and
/// image). The reference cluster runs no DaemonSet controller, so it never makes a pod: the
/// component runs as a process on the node, which the annotations say.
pub(crate) async fn install_record(
    client: &kube::Client,
    c: &Component,
    name: &str,
    image: &str,
    mode: &str,
) -> Result<(), ReferenceError> {
    let labels = json!({"k8s-app": name});
    reference::create_object(
        client,
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": name, "namespace": "kube-system",
                            "annotations": {
                                "netassay.io/sandbox": "runs as a process in the node's network namespace, not as this DaemonSet's pods",
                                "netassay.io/dataplane-mode": mode}},
               "spec": {"selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"serviceAccountName": c.service_account,
                                              "containers": [{"name": name, "image": image}]}}}}),
    )
    .await
}
