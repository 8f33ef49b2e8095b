//! Third-party node components on the reference cluster's node (DESIGN §7a): the real kube-proxy
//! (nftables mode) and third-party NetworkPolicy enforcers, run as plain processes in the node's
//! network namespace, each with its own ServiceAccount and exactly the RBAC its upstream
//! manifest asks for, reaching the API through the node's relay ([`super::api_relay`]).

use super::identity::{identity, install_record, Component, Rbac};
use crate::cni::networks::PodNetwork;
use crate::reference::{ReferenceCluster, ReferenceError};
use serde_json::json;
use std::time::Duration;

/// The sandbox node's CNI: how pods get their network, and who enforces NetworkPolicy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Cni {
    /// netassay's own: routed veths, and its nftables compiler enforces (every fault profile
    /// applies).
    #[default]
    Netassay,
    /// The reference CNI plugins (bridge + host-local + loopback) and no NetworkPolicy
    /// enforcer, like a cluster whose CNI ignores policies: the deny scenarios must fail.
    Bridge,
    /// kube-router's network-policy controller alone (`--run-firewall`, no router, no service
    /// proxy) on the bridge plugin: iptables (the nft backend, as k3s picks on Debian) and
    /// ipset. k3s embeds this same controller as its default enforcer.
    KubeRouter,
    /// sigs.k8s.io/kube-network-policies on the bridge plugin (NFQUEUE: the first packet of
    /// each connection is judged in userspace).
    KubeNetworkPolicies,
    /// Cilium (the K8TRE reference CNI) as on a real node: its agent attaches its eBPF
    /// datapath to every pod's veth (made by `cilium-cni`, addresses from the Node's podCIDR),
    /// and enforces NetworkPolicy and CiliumNetworkPolicy there.
    Cilium,
}

impl Cni {
    /// How pods get their network under this CNI.
    pub fn pod_network(self) -> PodNetwork {
        match self {
            Cni::Netassay => PodNetwork::Routed,
            Cni::Bridge | Cni::KubeRouter | Cni::KubeNetworkPolicies => PodNetwork::Bridge,
            Cni::Cilium => PodNetwork::Cilium,
        }
    }

    /// Whether the CNI's IPAM takes pod addresses from the Node's `podCIDR`.
    pub fn needs_pod_cidr(self) -> bool {
        self == Cni::Cilium
    }

    /// Whether a third-party process enforces policy (it needs the reference cluster).
    pub fn has_third_party_enforcer(self) -> bool {
        matches!(
            self,
            Cni::KubeRouter | Cni::KubeNetworkPolicies | Cni::Cilium
        )
    }

    /// Whether netassay's compiler enforces policy.
    pub fn netassay_enforces(self) -> bool {
        self == Cni::Netassay
    }
}

/// Who programs Service addresses on the sandbox's node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceProxy {
    /// netassay's nftables compiler.
    #[default]
    Netassay,
    /// The real kube-proxy in nftables mode, from the real EndpointSlices.
    KubeProxy,
    /// Cilium's kube-proxy replacement (`--sandbox-cni cilium` only): its agent serves
    /// ClusterIP, NodePort and LoadBalancer addresses in eBPF itself, with no kube-proxy and no
    /// nftables rule of netassay's.
    Cilium,
}

impl std::fmt::Display for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cni::Netassay => "netassay",
            Cni::Bridge => "bridge",
            Cni::KubeNetworkPolicies => "kube-network-policies",
            Cni::KubeRouter => "kube-router",
            Cni::Cilium => "cilium",
        })
    }
}

impl std::fmt::Display for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceProxy::Netassay => "netassay",
            ServiceProxy::KubeProxy => "kube-proxy",
            ServiceProxy::Cilium => "cilium",
        })
    }
}

/// How long a component may take to program its first ruleset.
const READY_TIMEOUT: Duration = Duration::from_secs(45);

fn kube_proxy() -> Component {
    Component {
        binary: "kube-proxy",
        service_account: "kube-proxy",
        // What kubeadm binds kube-proxy's ServiceAccount to.
        rbac: Rbac::Bootstrap("system:node-proxier"),
        table: ("ip", "kube-proxy"),
        chain: None,
    }
}

fn kube_network_policies() -> Component {
    Component {
        binary: "kube-network-policies",
        service_account: "kube-network-policies",
        // install.yaml of v0.8.0: list and watch pods, namespaces and networkpolicies.
        rbac: Rbac::Rules(json!([
            {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
        ])),
        table: ("inet", "kube-network-policies"),
        chain: None,
    }
}

fn kube_router() -> Component {
    Component {
        binary: "kube-router",
        service_account: "kube-router",
        // daemonset/generic-kuberouter.yaml of v2.1.0, the rules the network-policy controller
        // uses: its informers list and watch all seven kinds (it waits for every cache to sync),
        // and it gets its own Node. The leases and services/status rules are the router's and
        // the service proxy's, which do not run here.
        rbac: Rbac::Rules(json!([
            {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
             "verbs": ["list", "get", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
             "verbs": ["list", "get", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["get", "list", "watch"]},
        ])),
        // iptables-nft's filter table; kube-router's chains jump from FORWARD, INPUT and OUTPUT.
        table: ("ip", "filter"),
        chain: Some("KUBE-ROUTER-FORWARD"),
    }
}

/// What the chosen enforcer runs on the host besides `ip` and `nft`: (command, Debian package).
pub fn host_commands(enforcer: Cni) -> Vec<(&'static str, &'static str)> {
    match enforcer {
        Cni::KubeRouter => vec![("xtables-nft-multi", "iptables"), ("ipset", "ipset")],
        // The agent compiles its datapath with clang (LLVM 19) and installs iptables rules
        // beside it (it picks the nft or legacy backend itself).
        Cni::Cilium => vec![
            ("clang-19", "clang-19"),
            ("xtables-nft-multi", "iptables"),
            ("ipset", "ipset"),
        ],
        Cni::Netassay | Cni::Bridge | Cni::KubeNetworkPolicies => Vec::new(),
    }
}

/// The binaries the chosen components need (for the missing-binaries check).
pub fn binaries(enforcer: Cni, proxy: ServiceProxy) -> Vec<&'static str> {
    let mut out = Vec::new();
    if proxy == ServiceProxy::KubeProxy {
        out.push("kube-proxy");
    }
    match enforcer {
        Cni::Netassay | Cni::Bridge => {}
        Cni::KubeNetworkPolicies => out.push("kube-network-policies"),
        Cni::KubeRouter => out.push("kube-router"),
        Cni::Cilium => out.extend(super::cilium::BINARIES),
    }
    out
}

/// The node the components run on.
pub struct NodeSite<'a> {
    /// Its network namespace.
    pub netns: &'a str,
    /// Its Node's name.
    pub name: &'a str,
    /// Its own links (what a real node calls `eth0`).
    pub links: &'a [String],
}

/// Starts the chosen components and waits until each has programmed its table.
/// `enforcement_off`: the enforcer runs with policy enforcement turned off (Cilium's negative
/// control).
pub async fn start(
    client: &kube::Client,
    cluster: &mut ReferenceCluster,
    node: &NodeSite<'_>,
    enforcer: Cni,
    proxy: ServiceProxy,
    enforcement_off: bool,
) -> Result<(), ReferenceError> {
    let (node_netns, node_name) = (node.netns, node.name);
    if proxy == ServiceProxy::KubeProxy {
        let c = kube_proxy();
        let dir = identity(client, cluster, &c).await?;
        let (cidr, bits) = crate::addresses::POD_CIDR;
        let node = crate::addresses::NODE_ADDRESS;
        let argv = vec![
            "--proxy-mode=nftables".to_string(),
            format!("--kubeconfig={}", dir.join("kubeconfig").display()),
            format!("--hostname-override={node_name}"),
            format!("--cluster-cidr={cidr}/{bits}"),
            format!("--nodeport-addresses={node}/32"),
            // Leave the host's global conntrack sysctls alone.
            "--conntrack-max-per-core=0".into(),
            "--conntrack-tcp-timeout-established=0".into(),
            "--conntrack-tcp-timeout-close-wait=0".into(),
            // Inside the node's namespace, on its loopback.
            "--metrics-bind-address=127.0.0.1:10249".into(),
            "--healthz-bind-address=127.0.0.1:10256".into(),
            "--v=2".into(),
        ];
        cluster.spawn_in_netns(node_netns, c.binary, &argv, None, &[])?;
        wait_for_table(cluster, node_netns, &c).await?;
    }
    if enforcer == Cni::KubeNetworkPolicies {
        if let Err(detail) = nft_queue_available(node_netns).await {
            return Err(ReferenceError::Unsupported(format!(
                "kube-network-policies sends each new connection to userspace with the nftables \
                 `queue` expression, which this kernel does not have (CONFIG_NFT_QUEUE is not \
                 set; iptables' NFQUEUE target is another module): a test rule in the node's \
                 namespace failed with: {detail}"
            )));
        }
        let c = kube_network_policies();
        let dir = identity(client, cluster, &c).await?;
        let argv = vec![
            format!("--hostname-override={node_name}"),
            "--nfqueue-id=98".to_string(),
            "--disable-nri".into(),
            "--metrics-bind-address=127.0.0.1:9080".into(),
            "--v=2".into(),
        ];
        // It only knows in-cluster configuration: the ServiceAccount files at their fixed
        // path, in a mount namespace of its own (nothing on the host changes).
        cluster.spawn_in_netns(node_netns, c.binary, &argv, Some(&dir), &[])?;
        wait_for_table(cluster, node_netns, &c).await?;
    }
    if enforcer == Cni::Cilium {
        super::cilium::start(
            client,
            cluster,
            node_netns,
            node_name,
            node.links,
            enforcement_off,
            proxy == ServiceProxy::Cilium,
        )
        .await?;
    }
    if enforcer == Cni::KubeRouter {
        let c = kube_router();
        let dir = identity(client, cluster, &c).await?;
        let (cidr, bits) = crate::addresses::SERVICE_CIDR;
        let argv = vec![
            "--run-firewall=true".to_string(),
            "--run-router=false".into(),
            "--run-service-proxy=false".into(),
            format!("--kubeconfig={}", dir.join("kubeconfig").display()),
            format!("--hostname-override={node_name}"),
            format!("--service-cluster-ip-range={cidr}/{bits}"),
            // No health listener: nothing probes it, and it would hold a port in the node.
            "--health-port=0".into(),
            "--v=2".into(),
        ];
        let env = [
            // Its Node lookup tries NODE_NAME before the machine's host name.
            ("NODE_NAME".to_string(), node_name.to_string()),
            // iptables, iptables-save and iptables-restore of the nft backend, first on PATH:
            // what k3s picks on a Debian host with no legacy rules.
            ("PATH".to_string(), nft_iptables_path(&dir)?),
            // A lock of the instance's own, never the host's /run/xtables.lock.
            (
                "XTABLES_LOCKFILE".to_string(),
                dir.join("xtables.lock").display().to_string(),
            ),
        ];
        cluster.spawn_in_netns(node_netns, c.binary, &argv, None, &env)?;
        wait_for_table(cluster, node_netns, &c).await?;
        install_record(
            client,
            &c,
            c.binary,
            "docker.io/cloudnativelabs/kube-router:v2.1.0",
            "network-policy controller only (iptables-nft + ipset) on the CNI bridge plugin with host-local IPAM",
        )
        .await?;
    }
    Ok(())
}

/// The negative control (`--sandbox-fault enforcer-stopped`): stops the third-party enforcer
/// once it has programmed its first ruleset, before any fixture or policy exists. kube-router
/// leaves its rules behind when it stops, so the node keeps that first, policy-free state.
pub fn stop_enforcer(cluster: &mut ReferenceCluster, enforcer: Cni) -> Result<(), ReferenceError> {
    let binary = match enforcer {
        Cni::Netassay | Cni::Bridge => return Ok(()),
        Cni::KubeNetworkPolicies => kube_network_policies().binary,
        Cni::KubeRouter => kube_router().binary,
        Cni::Cilium => super::cilium::AGENT,
    };
    cluster.stop_component(binary)
}

/// A folder in `dir` whose `iptables*` are the nft backend's, put first on PATH: kube-router
/// runs whatever `iptables` it finds, and the host's may be the legacy one.
fn nft_iptables_path(dir: &std::path::Path) -> Result<String, ReferenceError> {
    // The command `host_commands` had installed, found where the installer found it.
    let multi = crate::prerequisites::locate("xtables-nft-multi").ok_or_else(|| {
        ReferenceError::Unsupported(
            "kube-router needs iptables' nft backend (xtables-nft-multi, Debian package iptables)"
                .into(),
        )
    })?;
    let bin = dir.join("iptables-nft");
    std::fs::create_dir_all(&bin)?;
    for name in [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&multi, &link)?;
    }
    let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    Ok(format!("{}:{rest}", bin.display()))
}

/// Whether the kernel takes an nftables `queue` rule: tried in a scratch table of the node's
/// namespace, removed at once.
async fn nft_queue_available(netns: &str) -> Result<(), String> {
    let script = "table inet netassay_queue_check {\n chain c {\n  type filter hook forward priority 0;\n  meta l4proto 253 queue num 98 bypass\n }\n}\n";
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        // Protocol 253 is reserved for experiments: nothing was ever queued.
        let _ = tokio::process::Command::new("ip")
            .args(["netns", "exec", netns, "nft", "delete", "table", "inet"])
            .arg("netassay_queue_check")
            .status()
            .await;
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("Error"))
            .unwrap_or("nft failed")
            .trim()
            .to_string())
    }
}

async fn wait_for_table(
    cluster: &ReferenceCluster,
    netns: &str,
    c: &Component,
) -> Result<(), ReferenceError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let (family, table) = c.table;
    loop {
        if let Some((component, how)) = cluster.exited() {
            return Err(cluster.component_error(&component, format!("exited ({how})")));
        }
        let listed = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", netns, "nft", "list", "table", family, table,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if listed && table_has_rules(netns, family, table, c.chain).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(cluster.component_error(
                c.binary,
                format!(
                    "did not program its nftables table `{family} {table}`{} in the node's namespace within {READY_TIMEOUT:?}",
                    c.chain.map(|ch| format!(" (chain {ch})")).unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether the table (or its `chain`) holds at least one rule (a component that failed half-way
/// may leave an empty table).
async fn table_has_rules(netns: &str, family: &str, table: &str, chain: Option<&str>) -> bool {
    let mut args = vec!["netns", "exec", netns, "nft", "-j", "list"];
    match chain {
        Some(chain) => args.extend(["chain", family, table, chain]),
        None => args.extend(["table", family, table]),
    }
    let out = tokio::process::Command::new("ip")
        .args(&args)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).contains("\"rule\""),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kube-router needs iptables' nft backend and ipset on the host, and its own binary; the
    // others need nothing beyond ip and nft.
    #[test]
    fn kube_router_needs_its_binary_iptables_and_ipset() {
        assert_eq!(
            binaries(Cni::KubeRouter, ServiceProxy::Netassay),
            ["kube-router"]
        );
        let packages: Vec<&str> = host_commands(Cni::KubeRouter)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(packages, ["iptables", "ipset"]);
        assert!(host_commands(Cni::Netassay).is_empty());
        assert!(host_commands(Cni::KubeNetworkPolicies).is_empty());
    }

    // The PATH given to kube-router starts with a folder whose iptables tools are the nft
    // backend's, whatever the host's alternatives say.
    #[test]
    fn kube_router_finds_the_nft_backend_first_on_its_path() {
        if crate::prerequisites::locate("xtables-nft-multi").is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs iptables (xtables-nft-multi)"
            );
            eprintln!("skipped: no xtables-nft-multi on this host");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = nft_iptables_path(dir.path()).unwrap();
        let first = path.split(':').next().unwrap();
        for tool in ["iptables", "iptables-save", "iptables-restore"] {
            let target = std::fs::read_link(std::path::Path::new(first).join(tool)).unwrap();
            assert!(
                target.ends_with("xtables-nft-multi"),
                "{tool} -> {}",
                target.display()
            );
        }
    }

    #[test]
    fn binaries_follow_the_choice() {
        assert!(binaries(Cni::Netassay, ServiceProxy::Netassay).is_empty());
        assert_eq!(
            binaries(Cni::KubeNetworkPolicies, ServiceProxy::KubeProxy),
            ["kube-proxy", "kube-network-policies"]
        );
    }

    // Cilium is an agent, its CNI plugin and its status client; the agent compiles its
    // datapath with clang 19 and installs iptables rules and ipsets beside it. It is the one
    // CNI whose IPAM reads the Node's podCIDR, and it enforces policy in place of netassay.
    #[test]
    fn cilium_needs_its_agent_plugin_and_clang() {
        assert_eq!(
            binaries(Cni::Cilium, ServiceProxy::Netassay),
            ["cilium-agent", "cilium-cni", "cilium-dbg"]
        );
        let packages: Vec<&str> = host_commands(Cni::Cilium)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(packages, ["clang-19", "iptables", "ipset"]);
        // Its kube-proxy replacement is the same agent: no kube-proxy.
        assert_eq!(
            binaries(Cni::Cilium, ServiceProxy::Cilium),
            ["cilium-agent", "cilium-cni", "cilium-dbg"]
        );
        assert_eq!(Cni::Cilium.pod_network(), PodNetwork::Cilium);
        assert!(Cni::Cilium.needs_pod_cidr());
        assert!(Cni::Cilium.has_third_party_enforcer());
        assert!(!Cni::Cilium.netassay_enforces());
        for other in [
            Cni::Netassay,
            Cni::Bridge,
            Cni::KubeRouter,
            Cni::KubeNetworkPolicies,
        ] {
            assert!(!other.needs_pod_cidr(), "{other}");
        }
    }
}
