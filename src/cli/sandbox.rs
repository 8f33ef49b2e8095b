//! `netassay sandbox up|down|faults`, and the sandbox options `run --sandbox` shares with it.

use super::exit;
use super::runtime::runtime;
use clap::Subcommand;
use netassay_sandbox::fault::{ENFORCEMENT_OFF, ENFORCER_STOPPED};
use netassay_sandbox::kubelet_node::{NodeImages, SandboxNode};
use netassay_sandbox::node::components::{Cni, ServiceProxy};
use netassay_sandbox::{
    ControlPlane, ControlPlaneFault, Fault, FaultSet, Preset, PresetFault, PresetScale, Sandbox,
    SandboxOptions,
};
use std::path::PathBuf;

/// Which control plane the sandbox's node runs under (`run --sandbox` and `sandbox up`).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxBackendArgs {
    /// The sandbox's API: `emulator` (built in, starts in milliseconds, needs nothing) or
    /// `kubernetes` (the reference cluster: real etcd, kube-apiserver and
    /// kube-controller-manager built by scripts/reference-cluster/build.sh, ~8 s to start,
    /// ~430 MiB; netassay then runs as the least-privilege ServiceAccount of
    /// manifests/rbac.yaml). netassay's node agent is the kubelet of both.
    #[arg(long = "sandbox-control-plane", value_name = "NAME", default_value_t = ControlPlane::Emulator)]
    pub control_plane: ControlPlane,
    /// Where the reference cluster's binaries are. Default: $NETASSAY_SANDBOX_BIN_DIR, else
    /// target/reference-cluster/bin (where the build script puts them).
    #[arg(long = "sandbox-bin-dir", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The node's CNI: how pods get their network and who enforces NetworkPolicy.
    /// `netassay` (default): routed veths and netassay's nftables compiler, where the fault
    /// profiles live. The others give pods their network through CNI plugins, with the
    /// instance's own conflist and folders, and take no --sandbox-fault of netassay's, since
    /// netassay then installs no policy rule. On the reference plugins (Debian's
    /// containernetworking-plugins: bridge + host-local + loopback): `bridge` enforces nothing
    /// (what a cluster whose CNI ignores NetworkPolicy does); `kube-router` runs kube-router's
    /// network-policy controller on it (iptables-nft + ipset, what k3s embeds);
    /// `kube-network-policies` the SIG-Network reference enforcer (needs the nftables `queue`
    /// expression, which this kernel lacks); their negative control is `--sandbox-fault
    /// enforcer-stopped`. `cilium` is Cilium whole (the K8TRE reference CNI): its agent and
    /// eBPF datapath, its own CNI plugin; its negative control is `--sandbox-fault
    /// enforcement-off`. The third-party ones are built by scripts/reference-cluster/build.sh
    /// and need `--sandbox-control-plane kubernetes`. (`--sandbox-enforcer` is the old name of
    /// this flag and still works.)
    #[arg(long = "sandbox-cni", alias = "sandbox-enforcer", value_name = "NAME", default_value_t = Cni::Netassay)]
    pub cni: Cni,
    /// Who programs Service addresses (ClusterIP, NodePort, LoadBalancer) on the node:
    /// `netassay` (default: its nftables compiler), `kube-proxy` (the real one, nftables mode,
    /// from the real EndpointSlices; needs `--sandbox-control-plane kubernetes`), or `cilium`
    /// (Cilium's kube-proxy replacement: no kube-proxy and no netassay service rule, the agent
    /// serves Services in eBPF, pods' per packet at their veth; needs `--sandbox-cni cilium`.
    /// Its socket load balancer is attached to an empty cgroup of the instance's own,
    /// /sys/fs/cgroup/unified/netassay/<instance>, never the host's cgroup root).
    #[arg(long = "sandbox-proxy", value_name = "NAME", default_value_t = ServiceProxy::Netassay)]
    pub proxy: ServiceProxy,
    /// Whether the sandbox has Cilium's API (cilium.io/v2 CiliumNetworkPolicy and
    /// CiliumClusterwideNetworkPolicy): `auto` (default: `run` turns it on when a selected
    /// scenario uses those kinds; `sandbox up` leaves it off), `on`, or `off` (a cluster without
    /// Cilium, where they are 404). With it, netassay's CNI plays Cilium: every policy,
    /// NetworkPolicies included, is enforced under Cilium's semantics (an ipBlock never
    /// matches a pod, the node always reaches its pods, ...), so core scenarios that put pod
    /// addresses in an ipBlock fail, as on a real Cilium. Emulator and netassay's CNI only;
    /// under `--sandbox-cni cilium` the API is Cilium's own, whatever this says.
    #[arg(long = "sandbox-cilium-api", value_name = "WHEN", value_enum, default_value_t = CiliumApi::Auto)]
    pub cilium_api: CiliumApi,
    /// Who runs the pods: `netassay` (default: netassay's node agent, pods are processes in
    /// network namespaces; the only node with fault profiles) or `kubelet` (the real kubelet
    /// built by scripts/reference-cluster/build.sh, with Debian's containerd and runc: pods run
    /// netassay's image under their real securityContext and Pod Security; needs
    /// `--sandbox-control-plane kubernetes`). Under `kubelet`, `--sandbox-cni netassay` is
    /// netassay's compiler on the reference bridge plugin, since containerd gives every pod its
    /// network through CNI.
    #[arg(long = "sandbox-node", value_name = "NAME", default_value_t = SandboxNode::Netassay)]
    pub node: SandboxNode,
    /// netassay's image as an OCI archive, for `--sandbox-node kubelet` (imported into the
    /// node's own containerd). Default: $NETASSAY_IMAGE_ARCHIVE, else
    /// target/image/netassay.oci.tar (where scripts/image/build.sh puts it).
    #[arg(long = "sandbox-image-archive", value_name = "FILE")]
    pub image_archive: Option<PathBuf>,
    /// The pause image as an OCI archive, for `--sandbox-node kubelet`. Default:
    /// $NETASSAY_PAUSE_ARCHIVE, else target/image/pause.oci.tar.
    #[arg(long = "sandbox-pause-archive", value_name = "FILE")]
    pub pause_archive: Option<PathBuf>,
}

/// `--sandbox-cilium-api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CiliumApi {
    Auto,
    On,
    Off,
}

impl CiliumApi {
    /// Whether to turn Cilium's API on, given whether the scenarios use Cilium kinds.
    pub(crate) fn wanted(self, scenarios_use_cilium: bool) -> bool {
        match self {
            CiliumApi::Auto => scenarios_use_cilium,
            CiliumApi::On => true,
            CiliumApi::Off => false,
        }
    }
}

/// Who serves Cilium's API in a sandbox that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CiliumApiServer {
    /// Cilium itself (`--sandbox-cni cilium`): its CRDs, enforced by its agent.
    Cilium,
    /// The emulator, with netassay's CNI playing Cilium.
    Emulator,
}

impl CiliumApiServer {
    /// What a run or `sandbox up` says about it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CiliumApiServer::Cilium => "the sandbox runs Cilium: its agent enforces the Cilium scenarios' policies through its own API (cilium.io/v2)",
            CiliumApiServer::Emulator => "the sandbox has Cilium's API (cilium.io/v2): netassay's CNI plays Cilium, every policy under Cilium's semantics",
        }
    }
}

/// Makes the started sandbox's cluster one with Cilium's API: the real one under
/// `--sandbox-cni cilium`, else the emulator's with netassay's CNI playing Cilium. Any other
/// sandbox cannot; then the reason.
pub(crate) fn play_cilium(sandbox: &Sandbox) -> Result<CiliumApiServer, String> {
    if sandbox.cni() == netassay_sandbox::node::components::Cni::Cilium {
        return Ok(CiliumApiServer::Cilium);
    }
    if sandbox.control_plane() != ControlPlane::Emulator {
        return Err("--sandbox-cilium-api: only the emulator control plane can serve Cilium's API (the reference cluster's node agent does not watch CiliumNetworkPolicies; --sandbox-cni cilium brings the real one)".into());
    }
    if !sandbox.dataplane().play_cilium() {
        return Err("--sandbox-cilium-api: only netassay's CNI can play Cilium".into());
    }
    Ok(CiliumApiServer::Emulator)
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start a sandbox in the foreground and print its kubeconfig; Ctrl-C removes it.
    Up {
        #[command(flatten)]
        backend: SandboxBackendArgs,
        /// Fault profiles, as for `run --sandbox-fault`.
        #[arg(long = "sandbox-fault", value_name = "NAME")]
        faults: Vec<String>,
        /// A preset, as for `run --sandbox-preset` (k8tre).
        #[arg(long = "sandbox-preset", value_name = "NAME")]
        preset: Option<Preset>,
        /// The preset's size, as for `run --sandbox-scale` (projects=N).
        #[arg(long = "sandbox-scale", value_name = "projects=N", requires = "preset")]
        scale: Option<PresetScale>,
    },
    /// Remove what sandboxes whose process is gone left behind (netns, links, tables).
    Down,
    /// List every fault `--sandbox-fault` accepts, one per line, tab-separated: its name, its
    /// kind (`cni`; `preset:k8tre`, a configuration mistake of that preset; `control-plane`)
    /// and what it does. For scripts: CI's mutation check reads it.
    Faults,
}

/// The lines of `sandbox faults`: `name<TAB>kind<TAB>description`.
fn fault_lines() -> Vec<String> {
    let cni = Fault::ALL
        .iter()
        .map(|f| format!("{}\tcni\t{}", f.name(), f.describe()));
    let preset = PresetFault::ALL
        .iter()
        .map(|f| format!("{}\tpreset:{}\t{}", f.name(), f.preset(), f.describe()));
    let control = ControlPlaneFault::ALL
        .iter()
        .map(|f| format!("{}\tcontrol-plane\t{}", f.name(), f.describe()));
    // Not a mutation of netassay's enforcer: the negative control of a third-party one.
    let third_party = [
        format!(
            "{ENFORCER_STOPPED}\tthird-party\tthe third-party enforcer (--sandbox-cni kube-router, kube-network-policies) is stopped once it has programmed its first ruleset, before any policy exists: the default-deny scenarios must fail"
        ),
        format!(
            "{ENFORCEMENT_OFF}\tthird-party\tCilium (--sandbox-cni cilium) runs with policy enforcement turned off (--enable-policy=never): its datapath works and enforces nothing, so the default-deny scenarios must fail"
        ),
    ];
    cni.chain(preset)
        .chain(control)
        .chain(third_party)
        .collect()
}

/// The fault profiles named on the command line (`--sandbox-fault`).
pub(crate) fn faults(names: &[String]) -> anyhow::Result<FaultSet> {
    let mut set = FaultSet::new();
    for n in names {
        set.insert_name(n)
            .map_err(|e| anyhow::anyhow!("--sandbox-fault {n:?}: {e}"))?;
    }
    Ok(set)
}

/// The sandbox the command line asks for.
pub(crate) fn options(
    backend: &SandboxBackendArgs,
    fault_names: &[String],
    preset: Option<Preset>,
    preset_scale: Option<PresetScale>,
) -> anyhow::Result<SandboxOptions> {
    Ok(SandboxOptions {
        faults: faults(fault_names)?,
        preset,
        preset_scale,
        control_plane: backend.control_plane,
        bin_dir: backend.bin_dir.clone(),
        cni: backend.cni,
        proxy: backend.proxy,
        node: backend.node,
        node_images: Some(NodeImages::locate(
            backend.image_archive.as_deref(),
            backend.pause_archive.as_deref(),
        )),
    })
}

pub fn sandbox(cmd: SandboxCommand) -> anyhow::Result<u8> {
    match cmd {
        SandboxCommand::Up {
            backend,
            faults: names,
            preset,
            scale,
        } => {
            let options = options(&backend, &names, preset, scale)?;
            if let Err(e) = options.validate() {
                eprintln!("netassay: {e}");
                return Ok(exit::BAD_INPUT);
            }
            let rt = runtime()?;
            let cilium = backend.cilium_api.wanted(false);
            rt.block_on(async move {
                // The handlers come first: a Ctrl-C that arrives while the sandbox starts, or
                // right after its kubeconfig is printed, stops it like any other (the default
                // disposition would kill netassay and leave the instance to the next sweep).
                use tokio::signal::unix::{signal, SignalKind};
                let mut interrupt = signal(SignalKind::interrupt())?;
                let mut term = signal(SignalKind::terminate())?;
                let s = match Sandbox::start_with(options).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("netassay: {e}");
                        return Ok(exit::ENVIRONMENT);
                    }
                };
                if cilium {
                    match play_cilium(&s) {
                        Ok(server) => eprintln!("{}", server.describe()),
                        Err(e) => {
                            eprintln!("netassay: {e}");
                            s.stop().await;
                            return Ok(exit::BAD_INPUT);
                        }
                    }
                }
                println!("{}", s.admin_kubeconfig().display());
                if s.admin_kubeconfig() != s.kubeconfig() {
                    eprintln!(
                        "netassay's own least-privilege kubeconfig (ServiceAccount netassay/netassay, manifests/rbac.yaml): {}",
                        s.kubeconfig().display()
                    );
                }
                eprintln!(
                    "sandbox instance {} with its API at {} ({}); use it with KUBECONFIG={} (Ctrl-C stops it and removes everything)",
                    s.instance(),
                    s.url(),
                    match s.kubernetes_version() {
                        Some(v) => format!("reference cluster, Kubernetes {v}"),
                        None => "emulator".to_string(),
                    },
                    s.admin_kubeconfig().display()
                );
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = term.recv() => {}
                }
                s.stop().await;
                Ok(exit::OK)
            })
        }
        SandboxCommand::Faults => {
            for line in fault_lines() {
                println!("{line}");
            }
            Ok(exit::OK)
        }
        SandboxCommand::Down => {
            let removed = netassay_sandbox::dataplane::netns::NetnsDataplane::sweep_dead()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "removed {} abandoned sandbox instance(s){}",
                removed.len(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", removed.join(", "))
                }
            );
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The listing is what CI's mutation check holds its table against: every fault the code
    // defines is on it, once, and every listed name is one `--sandbox-fault` accepts.
    #[test]
    fn the_fault_listing_names_every_fault_once_and_each_parses() {
        let lines = fault_lines();
        assert_eq!(
            lines.len(),
            // + the third-party negative controls: enforcer-stopped, enforcement-off.
            Fault::ALL.len() + PresetFault::ALL.len() + ControlPlaneFault::ALL.len() + 2
        );
        let mut names = std::collections::BTreeSet::new();
        for line in &lines {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line:?}");
            assert!(names.insert(cols[0]), "listed twice: {line:?}");
            assert!(!cols[2].is_empty(), "{line:?}");
            let set = faults(&[cols[0].to_string()]).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let kind = match cols[1] {
                "cni" => set.iter().count() == 1,
                "preset:k8tre" => set.preset_faults().len() == 1,
                "control-plane" => !set.control_plane().is_empty(),
                "third-party" => set.enforcer_stopped() || set.enforcement_off(),
                other => panic!("unknown kind {other:?}"),
            };
            assert!(kind, "{line:?} is not what its kind says");
        }
    }
}
