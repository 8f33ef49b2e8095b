//! The reference dataplane: one node network namespace routing /32s to pod namespaces over veths, nftables enforcement, an external host.
//!
//! Layout of one instance (prefix `naXXXX`, see `names` for the whole scheme):
//! - `naXXXX-node` routes: IP forwarding on, a `/32` route per pod over the node end of its
//!   veth (`naXXXXp<N>`, MAC ee:ee:ee:ee:ee:ee), no default route, so nothing ever leaves the
//!   instance. It holds the compiler's table `naXXXX_policy` and our `naXXXX_egress`
//!   (masquerade of pod traffic leaving the cluster).
//! - `naXXXX-p<N>` is pod N: `eth0` with the pod IP/32, default route via 169.254.1.1 (a static
//!   neighbour entry to the node end's MAC, as Calico does), the pod command as a process.
//! - `naXXXX-ext` is the internet: 203.0.113.10/32, the mirror 203.0.113.20/32 and the cloud
//!   metadata address 169.254.169.254/32 (and any extra address), running the agent. The node
//!   routes each of them to it, so pod traffic to them crosses the pods' egress chains.
//! - `naXXXX-out` is a host outside the cluster that reaches the node at 203.0.113.1, and routes
//!   the pod range and the ClusterIP range via the node: whether they answer from outside is
//!   for the node's forwarding and the policies to decide.
//!
//! Every pod resolves through cluster DNS: `/etc/netns/naXXXX-p<N>/resolv.conf` (which
//! `ip netns exec` bind-mounts over /etc/resolv.conf) names 10.96.0.10. Every sync also writes
//! the cluster DNS zone and the gateway's routes under `/run/netassay/naXXXX/` (atomically, when
//! they change; see [`crate::system`]).
//!
//! Nothing is created in the root namespace except `/run/netns/<name>` mounts, the files under
//! `/run/netassay` and the `/etc/netns/<name>` folders of pod namespaces; deleting the
//! namespaces removes every veth and table with them.
//!
//! Cleanup: [`Dataplane::shutdown`](super::Dataplane::shutdown) (also run by `Drop`, so on panic unwinding) kills every
//! process and removes everything by name (`/etc/netns` entries too, only those of its own
//! namespaces). Signals are the caller's: the `sandbox`/`run` commands must catch SIGINT/SIGTERM
//! and call `shutdown` (or drop the dataplane) before exiting; `std::process::exit` and
//! `panic = "abort"` skip `Drop`. Whatever survives (SIGKILL, power loss) is removed by
//! [`NetnsDataplane::sweep_dead`], which every `new` runs (while it builds its own instance).

mod egress;
mod host;
mod late;
mod names;
mod ownership;
mod procnet;

pub use names::{ETC_NETNS, GATEWAY, STATE_DIR};

use super::{DataplaneError, NodeInfo, PodSpec};
use crate::addresses::SERVICE_CIDR;
use crate::addresses::{
    EXTERNAL_ADDRESS, METADATA_ADDRESS, MIRROR_ADDRESS, NODE_ADDRESS, OUTSIDE_ADDRESS,
    OUTSIDE_CIDR, POD_CIDR,
};
use crate::cni::networks::{self, CniDirs, PodNetwork};
use crate::cni::{self as cni_runtime, Attachment, Network};
use crate::compile::build_with;
use crate::fault::{FaultMemory, FaultSet};
use crate::state::{CiliumState, ClusterState};
use crate::system;
use late::LateApplier;
use names::{cidr_text, pod_address, Prefix};
use netassay_core::model::Protocol;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How to build a [`NetnsDataplane`].
#[derive(Debug, Clone)]
pub struct NetnsConfig {
    /// The CNI bugs to model; empty is the compliant profile.
    pub faults: FaultSet,
    /// Addresses the external host answers on besides [`EXTERNAL_ADDRESS`] (by default the
    /// mirror and the cloud metadata address).
    pub external_addresses: Vec<Ipv4Addr>,
    /// What runs on the external host; `None` runs nothing.
    pub external_command: Option<Vec<String>>,
    /// What a leading `netassay` in a command means (tests point it at the built binary).
    pub executable: PathBuf,
    /// Whether NetworkPolicies compile to rules here; false when a third-party enforcer runs
    /// in the node's namespace and alone enforces.
    pub enforce_policies: bool,
    /// Whether Service addresses (ClusterIPs, node ports, load balancers) are DNATed here;
    /// false when a third-party proxy (kube-proxy) programs them.
    pub program_services: bool,
    /// How pods get their network: routed veths, or a CNI conflist.
    pub pod_network: PodNetwork,
    /// Where third-party plugins that no distribution packages are (`cilium-cni`): the
    /// reference cluster's bin folder.
    pub third_party_plugins: Option<PathBuf>,
}

impl NetnsConfig {
    pub fn new(faults: FaultSet) -> Result<NetnsConfig, DataplaneError> {
        Ok(NetnsConfig {
            faults,
            external_addresses: vec![MIRROR_ADDRESS, METADATA_ADDRESS],
            external_command: Some(default_external_command()),
            executable: std::env::current_exe()?,
            enforce_policies: true,
            program_services: true,
            pod_network: PodNetwork::Routed,
            third_party_plugins: None,
        })
    }
}

/// The agent as "the internet": web, TLS and DNS ports, announcing `external/internet`.
pub fn default_external_command() -> Vec<String> {
    [
        "netassay",
        "agent",
        "serve",
        "--identity",
        "external/internet",
        "--listen",
        "tcp:80,tcp:443,tcp:53,udp:53",
    ]
    .map(String::from)
    .to_vec()
}

/// Real network namespaces and nftables (root, Linux, `ip` and `nft`). See the module docs.
pub struct NetnsDataplane {
    prefix: Prefix,
    state_dir: PathBuf,
    executable: PathBuf,
    faults: FaultSet,
    enforce_policies: bool,
    program_services: bool,
    /// Also serialises syncs, so rulesets are applied in the order they were computed; with the
    /// ruleset last applied (a sync that changes nothing nft sees, e.g. an HTTPRoute, skips nft).
    memory: Mutex<(FaultMemory, Option<String>)>,
    late: Option<LateApplier>,
    pods: Mutex<Pods>,
    external: Mutex<Option<Child>>,
    /// What each generated file (zone, routes) last had written into it.
    written: Mutex<BTreeMap<PathBuf, String>>,
    /// The pod network and pods' loopback, when pods get their network through CNI.
    cni: Option<PodCni>,
    pod_network: PodNetwork,
    third_party_plugins: Option<PathBuf>,
    closed: AtomicBool,
    /// Whether netassay's CNI plays Cilium (see [`NetnsDataplane::play_cilium`]).
    cilium: AtomicBool,
}

/// A CNI pod network: its conflist loaded, and the loopback network every pod's `lo` gets.
struct PodCni {
    network: Network,
    loopback: Network,
}

/// A pod's attachment to the pod network, and what ADD returned (for CHECK and DEL).
struct CniAttachment {
    attachment: Attachment,
    result: serde_json::Value,
}

#[derive(Default)]
struct Pods {
    next_index: u32,
    /// Keys reserved by a `create_pod` still in progress.
    creating: BTreeSet<PodKey>,
    live: BTreeMap<PodKey, Pod>,
}

type PodKey = (String, String);

struct Pod {
    index: u32,
    ip: Ipv4Addr,
    ports: Vec<u16>,
    child: Child,
    /// What it runs, for a restart.
    command: Vec<String>,
    /// Its CNI attachment, when the pod network is a CNI one.
    cni: Option<CniAttachment>,
}

impl NetnsDataplane {
    /// Sweeps dead instances and, meanwhile, claims a fresh prefix and builds the node, the
    /// external host and the outside vantage. On failure everything built so far is removed.
    pub fn new(config: NetnsConfig) -> Result<NetnsDataplane, DataplaneError> {
        require_root()?;
        // The sweep runs while this instance is built: it never takes this instance for dead
        // (see `ownership` for why), and the claim skips prefixes it is still removing.
        let sweep = std::thread::spawn(Self::sweep_dead);
        let built = Self::build(config);
        // Someone else's leftovers that resist removal must not stop this run: say so, go on.
        match sweep.join() {
            Ok(Err(e)) => eprintln!("netassay sandbox: warning: {e}"),
            Err(_) => eprintln!("netassay sandbox: warning: sweeping dead instances panicked"),
            Ok(Ok(_)) => {}
        }
        built
    }

    fn build(config: NetnsConfig) -> Result<NetnsDataplane, DataplaneError> {
        let state_dir = PathBuf::from(STATE_DIR);
        let prefix = claim_prefix(&state_dir).map_err(|e| DataplaneError::Command {
            what: format!("claiming a sandbox instance in {}", state_dir.display()),
            detail: e.to_string(),
        })?;
        let late = config.faults.late_delay().map(|delay| {
            let node = prefix.node_netns();
            LateApplier::start(
                delay,
                Box::new(move |script: &str| {
                    host::nft_apply(&node, script).map_err(|e| e.to_string())
                }),
            )
        });
        // From here on, Drop removes whatever exists by name.
        let dataplane = NetnsDataplane {
            prefix,
            state_dir,
            executable: config.executable,
            enforce_policies: config.enforce_policies,
            program_services: config.program_services,
            faults: config.faults,
            memory: Mutex::new((FaultMemory::new(), None)),
            late,
            pods: Mutex::new(Pods {
                next_index: 1,
                ..Pods::default()
            }),
            external: Mutex::new(None),
            written: Mutex::new(BTreeMap::new()),
            cni: None,
            pod_network: config.pod_network,
            third_party_plugins: config.third_party_plugins.clone(),
            closed: AtomicBool::new(false),
            cilium: AtomicBool::new(false),
        };
        std::fs::create_dir_all(dataplane.log_dir())?;
        // The add-ons' files exist before any add-on starts (they read them at start).
        dataplane.write_files(&ClusterState::default(), &[])?;
        let node = dataplane.prefix.node_netns();
        host::run(&["ip", "netns", "add", &node], None)?;
        // Everything else only needs the node's namespace: the node's own settings and the two
        // hosts are built side by side.
        let (node, external, outside) = std::thread::scope(|scope| {
            let node = scope.spawn(|| dataplane.build_node());
            let external = scope.spawn(|| {
                dataplane.build_external(&config.external_addresses)?;
                if let Some(command) = &config.external_command {
                    let netns = dataplane.prefix.external_netns();
                    let child = dataplane.spawn(&netns, command, "external")?;
                    *dataplane.external.lock().unwrap() = Some(child);
                }
                Ok::<(), DataplaneError>(())
            });
            let outside = dataplane.build_outside();
            (node.join(), external.join(), outside)
        });
        let panicked = |what: &str| DataplaneError::Command {
            what: format!("building {what}"),
            detail: "the builder thread panicked".into(),
        };
        node.map_err(|_| panicked("the node"))??;
        external.map_err(|_| panicked("the external host"))??;
        outside?;
        let mut dataplane = dataplane;
        dataplane.cni = dataplane.load_cni()?;
        Ok(dataplane)
    }

    /// For a CNI pod network: the instance's conf and bin folders (links to the plugins the
    /// conflist names), the conflist, and the network loaded (every plugin's VERSION checked,
    /// then STATUS where the conflist's version has it).
    fn load_cni(&self) -> Result<Option<PodCni>, DataplaneError> {
        let network = self.pod_network;
        let dirs = CniDirs::under(&self.log_dir());
        let Some((file, conflist)) = network.conflist(&dirs, &self.prefix.bridge_link()) else {
            return Ok(None);
        };
        let cni_error = |e: cni_runtime::CniError| DataplaneError::Command {
            what: "setting up the CNI pod network".into(),
            detail: e.to_string(),
        };
        for dir in [&dirs.conf_dir, &dirs.bin_dir, &dirs.ipam_dir] {
            std::fs::create_dir_all(dir)?;
        }
        for plugin in network.plugins() {
            let installed =
                networks::locate_plugin(plugin).ok_or_else(|| DataplaneError::Command {
                    what: "setting up the CNI pod network".into(),
                    detail: format!(
                        "CNI plugin {plugin} is in none of {} (Debian package {})",
                        networks::PLUGIN_DIRS.join(", "),
                        networks::PLUGIN_PACKAGE
                    ),
                })?;
            std::os::unix::fs::symlink(installed, dirs.bin_dir.join(plugin))?;
        }
        if network == PodNetwork::Cilium {
            let plugin = self
                .third_party_plugins
                .as_ref()
                .map(|bin| bin.join("cilium-cni"))
                .filter(|p| p.is_file())
                .ok_or_else(|| DataplaneError::Command {
                    what: "setting up the CNI pod network".into(),
                    detail: "cilium-cni is not in the reference cluster's bin folder (run \
                             scripts/reference-cluster/build.sh)"
                        .into(),
                })?;
            let cilium = networks::CiliumDirs::under(&dirs.instance);
            std::fs::create_dir_all(&cilium.run)?;
            std::fs::create_dir_all(networks::CILIUM_RUN_MOUNT_POINT)?;
            let script = dirs.bin_dir.join("cilium-cni");
            std::fs::write(&script, networks::cilium_plugin_script(&plugin, &cilium))?;
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        let conflist_path = dirs.conf_dir.join(file);
        std::fs::write(
            &conflist_path,
            serde_json::to_string_pretty(&conflist).unwrap_or_default(),
        )?;
        let loopback_path = dirs
            .conf_dir
            .parent()
            .unwrap_or(&dirs.conf_dir)
            .join("loopback.conflist");
        std::fs::write(&loopback_path, networks::loopback_conflist().to_string())?;
        let node = Some(self.prefix.node_netns());
        let network =
            Network::load(&conflist_path, &dirs.bin_dir, node.clone()).map_err(cni_error)?;
        let loopback = Network::load(&loopback_path, &dirs.bin_dir, node).map_err(cni_error)?;
        network.status().map_err(cni_error)?;
        Ok(Some(PodCni { network, loopback }))
    }

    /// Removes what instances whose owner process is gone left behind (namespaces, the
    /// processes in them, links, tables, files), and namespaces of the naming scheme that no
    /// state file accounts for. Returns the prefixes it removed.
    pub fn sweep_dead() -> Result<Vec<String>, DataplaneError> {
        let dir = Path::new(STATE_DIR);
        // One sweep at a time on the machine (every `new` sweeps, and `sandbox down`): two at
        // once would remove the same dead instance together, each failing on what the other
        // removed first. The lock goes with the fd.
        let _sweeping = ownership::lock_sweeps(dir)?;
        // Namespaces first, state files second: see `ownership` for why that order is safe.
        let netns = host::list_netns()?;
        let owners = ownership::read_owners(dir);
        let mut removed = Vec::new();
        let mut failures = Vec::new();
        for prefix in ownership::sweep_targets(&netns, &owners) {
            match ownership::remove_instance(dir, &prefix) {
                Ok(()) => removed.push(prefix.to_string()),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(removed)
        } else {
            Err(DataplaneError::Command {
                what: "sweeping dead sandbox instances".into(),
                detail: failures.join("; "),
            })
        }
    }

    /// Removes instance `prefix` (e.g. `na1f2e`) by name, whether or not its owner lives:
    /// for `netassay` cleanup commands and test guards.
    pub fn remove_instance(prefix: &str) -> Result<(), DataplaneError> {
        let prefix = Prefix::parse(prefix).ok_or_else(|| DataplaneError::Command {
            what: format!("removing sandbox instance {prefix:?}"),
            detail: "not a sandbox prefix (na + 4 hex digits)".into(),
        })?;
        ownership::remove_instance(Path::new(STATE_DIR), &prefix)
    }

    /// The instance prefix every namespace, link, table and file name starts with.
    pub fn prefix(&self) -> &str {
        self.prefix.as_str()
    }

    pub fn node_netns(&self) -> String {
        self.prefix.node_netns()
    }

    /// The node's own links (its `eth0`s): the veths to the external host and to the outside
    /// vantage, each with the node's address.
    pub fn node_links(&self) -> Vec<String> {
        vec![self.prefix.external_link(), self.prefix.outside_link()]
    }

    pub fn external_netns(&self) -> String {
        self.prefix.external_netns()
    }

    pub fn outside_netns(&self) -> String {
        self.prefix.outside_netns()
    }

    /// The network namespace of a live pod.
    pub fn pod_netns(&self, namespace: &str, name: &str) -> Option<String> {
        let pods = self.pods.lock().unwrap();
        let pod = pods.live.get(&key(namespace, name))?;
        Some(self.prefix.pod_netns(pod.index))
    }

    /// The cluster DNS zone every sync writes (what the `coredns` pod serves).
    pub fn zone_file(&self) -> PathBuf {
        self.log_dir().join("cluster.zone")
    }

    /// The gateway's routes file every sync writes (what `agent gateway` serves).
    pub fn routes_file(&self) -> PathBuf {
        self.log_dir().join("gateway.routes")
    }

    /// Why the pod's process has exited, if it has (`None` while it runs, or no such pod).
    pub fn pod_exited(&self, namespace: &str, name: &str) -> Option<String> {
        let mut pods = self.pods.lock().unwrap();
        let pod = pods.live.get_mut(&key(namespace, name))?;
        match pod.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The argv prefix that runs a command on the outside vantage:
    /// `ip netns exec naXXXX-out`.
    pub fn outside_command(&self) -> Vec<String> {
        ["ip", "netns", "exec"]
            .into_iter()
            .map(String::from)
            .chain([self.prefix.outside_netns()])
            .collect()
    }

    /// The name of the nft table `sync` replaces in the node namespace.
    pub fn policy_table(&self) -> String {
        self.prefix.policy_table()
    }

    /// What the pod's command wrote to stdout and stderr so far.
    pub fn pod_log(&self, namespace: &str, name: &str) -> Option<String> {
        let netns = self.pod_netns(namespace, name)?;
        std::fs::read_to_string(self.log_file(&netns)).ok()
    }

    /// The node's whole nft ruleset, for diagnostics.
    pub fn node_ruleset(&self) -> Result<String, DataplaneError> {
        let node = self.prefix.node_netns();
        host::run(
            &["ip", "netns", "exec", &node, "nft", "list", "ruleset"],
            None,
        )
    }

    /// Starts `command` on the outside vantage (a host outside the cluster that reaches the
    /// node at [`NODE_ADDRESS`]), with stdin, stdout and stderr piped.
    pub fn exec_outside(
        &self,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError> {
        self.exec_in(&self.prefix.outside_netns(), command)
    }

    /// Starts `command` on the external host, with stdin, stdout and stderr piped.
    pub fn exec_external(
        &self,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError> {
        self.exec_in(&self.prefix.external_netns(), command)
    }

    /// Makes the external host answer on one more address too.
    pub fn add_external_address(&self, address: Ipv4Addr) -> Result<(), DataplaneError> {
        self.ensure_open()?;
        check_external_address(address)?;
        let link = self.prefix.external_link();
        host::ip_batch(
            &self.prefix.external_netns(),
            &format!("addr replace {address}/32 dev eth0\n"),
        )?;
        host::ip_batch(
            &self.prefix.node_netns(),
            &format!("route replace {address}/32 dev {link} scope link\n"),
        )
    }

    /// Like [`Dataplane::shutdown`](super::Dataplane::shutdown), reporting what could not be
    /// removed. Idempotent.
    pub fn close(&self) -> Result<(), DataplaneError> {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(late) = &self.late {
            late.stop();
        }
        let mut failures = Vec::new();
        let pods = std::mem::take(&mut self.pods.lock().unwrap().live);
        let (mut children, attachments): (Vec<Child>, Vec<Option<CniAttachment>>) =
            pods.into_values().map(|pod| (pod.child, pod.cni)).unzip();
        children.extend(self.external.lock().unwrap().take());
        for child in &mut children {
            if let Err(e) = stop_process_group(child) {
                failures.push(e.to_string());
            }
        }
        if let Some(cni) = &self.cni {
            // As a kubelet tears its pods down: DEL each attachment (side by side), then GC,
            // which a 1.1 network may use to release whatever a DEL missed.
            let attachments: Vec<CniAttachment> = attachments.into_iter().flatten().collect();
            let chunk = attachments.len().div_ceil(4).max(1);
            let results: Vec<Result<(), DataplaneError>> = std::thread::scope(|scope| {
                let workers: Vec<_> = attachments
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || part.iter().map(|a| detach(cni, a)).collect::<Vec<_>>())
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            });
            failures.extend(
                results
                    .into_iter()
                    .filter_map(Result::err)
                    .map(|e| e.to_string()),
            );
            if let Err(e) = cni.network.gc(&[]) {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = ownership::remove_instance(&self.state_dir, &self.prefix) {
            failures.push(e.to_string());
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DataplaneError::Command {
                what: format!("shutting down sandbox instance {}", self.prefix),
                detail: failures.join("; "),
            })
        }
    }

    fn ensure_open(&self) -> Result<(), DataplaneError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(DataplaneError::Command {
                what: format!("sandbox instance {}", self.prefix),
                detail: "already shut down".into(),
            })
        } else {
            Ok(())
        }
    }

    /// The node's settings in its (existing) namespace: loopback and masquerade (independent,
    /// so side by side), then its sysctls.
    fn build_node(&self) -> Result<(), DataplaneError> {
        let node = self.prefix.node_netns();
        let egress = egress::ruleset(&self.prefix);
        host::run_concurrently(&[
            (
                &["ip", "-n", &node, "-batch", "-"],
                Some("link set lo up\n"),
            ),
            (
                &["ip", "netns", "exec", &node, "nft", "-f", "-"],
                Some(&egress),
            ),
        ])?;
        // Forwarding; and every pod's flows cross the node, where a closed TCP flow kept its
        // conntrack entry 120 s: a round of 400 pods (160,000 flows) filled the table (262,144
        // entries, the machine's) and the node dropped new flows. Closed flows go after
        // NODE_TIME_WAIT_SECS, in the node's namespace only; UDP keeps its timeouts (the
        // source-port ledger counts on them). After the ruleset, which loads conntrack.
        let time_wait =
            format!("net.netfilter.nf_conntrack_tcp_timeout_time_wait={NODE_TIME_WAIT_SECS}");
        host::run(
            &[
                "ip",
                "netns",
                "exec",
                &node,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.forwarding=1",
                &time_wait,
            ],
            None,
        )
        .map(|_| ())
    }

    /// Creates namespace `netns` and a veth with `node_link` (given `mac`, if any) in the
    /// node and `eth0` in `netns`, in one `ip` process.
    fn add_netns_with_veth(
        &self,
        netns: &str,
        node_link: &str,
        mac: Option<&str>,
    ) -> Result<(), DataplaneError> {
        let address = mac.map(|m| format!(" address {m}")).unwrap_or_default();
        host::run(
            &["ip", "-batch", "-"],
            Some(&format!(
                "netns add {netns}\n\
                 link add name {node_link}{address} netns {node} type veth peer name eth0 netns {netns}\n",
                node = self.prefix.node_netns()
            )),
        )
        .map(drop)
    }

    /// A host namespace hanging off the node by a veth: `eth0` with `addresses` (/32) on its
    /// side, the node's address on the node's side, routes both ways; the host also routes
    /// `via_node` through the node.
    fn build_host(
        &self,
        netns: &str,
        node_link: &str,
        addresses: &[Ipv4Addr],
        via_node: &[(Ipv4Addr, u8)],
    ) -> Result<(), DataplaneError> {
        let node = self.prefix.node_netns();
        self.add_netns_with_veth(netns, node_link, None)?;
        let mut node_side =
            format!("addr add {NODE_ADDRESS}/32 dev {node_link}\nlink set {node_link} up\n");
        let mut host_side = String::from("link set lo up\n");
        for address in addresses {
            node_side += &format!("route add {address}/32 dev {node_link} scope link\n");
            host_side += &format!("addr add {address}/32 dev eth0\n");
        }
        host_side += &format!(
            "link set eth0 up\n\
             route add {NODE_ADDRESS} dev eth0 scope link\n"
        );
        for &cidr in std::iter::once(&OUTSIDE_CIDR).chain(via_node) {
            host_side += &format!(
                "route add {} via {NODE_ADDRESS} dev eth0\n",
                cidr_text(cidr)
            );
        }
        host::run_concurrently(&[
            (&["ip", "-n", &node, "-batch", "-"], Some(&node_side)),
            (&["ip", "-n", netns, "-batch", "-"], Some(&host_side)),
        ])
    }

    fn build_external(&self, extra: &[Ipv4Addr]) -> Result<(), DataplaneError> {
        let mut addresses = vec![EXTERNAL_ADDRESS];
        for &address in extra {
            check_external_address(address)?;
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        self.build_host(
            &self.prefix.external_netns(),
            &self.prefix.external_link(),
            &addresses,
            &[],
        )
    }

    /// The outside vantage routes the pod and ClusterIP ranges via the node, as a host next to
    /// a real cluster could: whether they answer is the node's (and the policies') decision.
    fn build_outside(&self) -> Result<(), DataplaneError> {
        self.build_host(
            &self.prefix.outside_netns(),
            &self.prefix.outside_link(),
            &[OUTSIDE_ADDRESS],
            &[POD_CIDR, SERVICE_CIDR],
        )
    }

    /// `/etc/netns/<netns>/resolv.conf`: `ip netns exec` mounts it over /etc/resolv.conf for
    /// the pod's command and every exec in the pod.
    fn write_resolv_conf(&self, netns: &str, namespace: &str) -> Result<(), DataplaneError> {
        let dir = Path::new(ETC_NETNS).join(netns);
        std::fs::create_dir_all(&dir)?;
        // A plain write: nothing runs in the namespace yet, and `ip netns exec` would try to
        // mount a temporary file in this folder over /etc too.
        std::fs::write(dir.join("resolv.conf"), system::resolv_conf(namespace))?;
        Ok(())
    }

    /// Writes the generated files for `state`, each only when its text changed; `dns_rules` are
    /// the pods whose DNS queries are answered by name (Cilium's DNS rules).
    fn write_files(
        &self,
        state: &ClusterState,
        dns_rules: &[crate::compile::DnsRule],
    ) -> Result<(), DataplaneError> {
        let mut written = self.written.lock().unwrap();
        for (path, text) in [
            (
                self.zone_file(),
                system::zone_with_rules(
                    state,
                    dns_rules.iter().map(|r| (r.source, r.names.as_slice())),
                ),
            ),
            (self.routes_file(), system::routes(state)),
        ] {
            if written.get(&path) != Some(&text) {
                write_atomically(&path, &text).map_err(|e| DataplaneError::Command {
                    what: format!("writing {}", path.display()),
                    detail: e.to_string(),
                })?;
                written.insert(path, text);
            }
        }
        Ok(())
    }

    /// The pod's namespace, veth, addresses, routes and sysctls.
    fn build_pod_network(&self, index: u32, ip: Ipv4Addr) -> Result<String, DataplaneError> {
        let node = self.prefix.node_netns();
        let netns = self.prefix.pod_netns(index);
        let link = self.prefix.pod_link(index);
        self.add_netns_with_veth(&netns, &link, Some(names::GATEWAY_MAC))?;
        // The two ends and the pod's sysctls are independent: configured side by side.
        let pod_side = format!(
            "link set lo up\n\
             addr add {ip}/32 dev eth0\n\
             link set eth0 up\n\
             route add {GATEWAY} dev eth0 scope link\n\
             route add default via {GATEWAY} dev eth0\n\
             neigh replace {GATEWAY} lladdr {} dev eth0 nud permanent\n",
            names::GATEWAY_MAC
        );
        let node_side = format!("link set {link} up\nroute add {ip}/32 dev {link} scope link\n");
        host::run_concurrently(&[
            (&["ip", "-n", &netns, "-batch", "-"], Some(&pod_side)),
            (&["ip", "-n", &node, "-batch", "-"], Some(&node_side)),
            (&pod_sysctls(&netns), None),
        ])?;
        Ok(netns)
    }

    /// A pod's namespace and its network through CNI: ADD of the loopback network on `lo`,
    /// then of the pod network on `eth0`, with the kubelet's `CNI_ARGS`; the pod's IP is the
    /// result's. A failure undoes what was attached (the caller removes the namespace).
    fn attach_pod(
        &self,
        cni: &PodCni,
        index: u32,
        pod: &PodSpec,
    ) -> Result<(String, Attached), DataplaneError> {
        let netns = self.prefix.pod_netns(index);
        let error = |detail: String| DataplaneError::PodNetwork {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            detail,
        };
        host::run(&["ip", "netns", "add", &netns], None)?;
        // The kubelet's infra ("pause") container is the pod's sandbox; ours is the namespace,
        // with an ID shaped like a runtime's (64 hex digits, unique per sandbox): plugins
        // derive interface names from its first characters (Cilium's temporary veth is
        // `tmp` + the first five), which the namespace names all share.
        let container_id = sandbox_id();
        let attachment = Attachment {
            container_id: container_id.clone(),
            netns: Path::new("/run/netns").join(&netns),
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), pod.namespace.clone()),
                ("K8S_POD_NAME".into(), pod.name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), container_id),
                ("K8S_POD_UID".into(), pod.uid.clone()),
            ],
        };
        let lo = Attachment {
            ifname: "lo".into(),
            ..attachment.clone()
        };
        cni.loopback.add(&lo).map_err(|e| error(e.to_string()))?;
        let result = match cni.network.add(&attachment) {
            Ok(result) => result,
            Err(e) => {
                // As container runtimes do after a failed ADD: DEL what the plugin may have
                // half made, then the loopback.
                let _ = cni.network.del(&attachment, None);
                let _ = cni.loopback.del(&lo, None);
                return Err(error(e.to_string()));
            }
        };
        let attached = CniAttachment { attachment, result };
        let undo = |detail: String| {
            let _ = detach(cni, &attached);
            error(detail)
        };
        let Some(ip) = cni_runtime::result_ipv4(&attached.result, "eth0") else {
            return Err(undo(format!(
                "the result gives eth0 no IPv4 address: {}",
                attached.result
            )));
        };
        if let Err(e) = host::run(&pod_sysctls(&netns), None) {
            return Err(undo(e.to_string()));
        }
        Ok((netns, Attached { ip, attached }))
    }

    /// Kills whatever runs in pod `index`'s namespace and removes its network: CNI DEL of its
    /// attachment (when it has one), or its routed veth; then its namespace. The namespace
    /// goes even when DEL fails, and DEL's error is reported after.
    fn remove_pod_network(
        &self,
        index: u32,
        attached: Option<&CniAttachment>,
    ) -> Result<(), DataplaneError> {
        let netns = self.prefix.pod_netns(index);
        ownership::kill_everything_in(&netns)?;
        let detached = match (&self.cni, attached) {
            (Some(cni), Some(attached)) => detach(cni, attached),
            (Some(_), None) => Ok(()),
            (None, _) => host::remove(&[
                "ip",
                "-n",
                &self.prefix.node_netns(),
                "link",
                "delete",
                &self.prefix.pod_link(index),
            ]),
        };
        ownership::delete_netns(&netns)?;
        detached?;
        ownership::remove_netns_etc(Path::new(ETC_NETNS), &netns)?;
        let _ = std::fs::remove_file(self.log_file(&netns));
        Ok(())
    }

    /// Starts `command` in `netns` as the leader of a new process group, output to a log file.
    fn spawn(
        &self,
        netns: &str,
        command: &[String],
        hostname: &str,
    ) -> Result<Child, DataplaneError> {
        let argv = self.resolve(command)?;
        let log = File::create(self.log_file(netns))?;
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(&argv)
            .env("HOSTNAME", hostname)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| DataplaneError::Command {
                what: format!("ip netns exec {netns} {}", command.join(" ")),
                detail: e.to_string(),
            })
    }

    fn exec_in(
        &self,
        netns: &str,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError> {
        self.ensure_open()?;
        let argv = self.resolve(command)?;
        tokio::process::Command::new("ip")
            .args(["netns", "exec", netns])
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DataplaneError::Command {
                what: format!("ip netns exec {netns} {}", command.join(" ")),
                detail: e.to_string(),
            })
    }

    /// A leading `netassay` is the configured executable.
    fn resolve(&self, command: &[String]) -> Result<Vec<OsString>, DataplaneError> {
        let Some((first, rest)) = command.split_first() else {
            return Err(DataplaneError::Command {
                what: "starting a process".into(),
                detail: "empty command".into(),
            });
        };
        let program = if first == "netassay" {
            self.executable.clone().into_os_string()
        } else {
            OsString::from(first)
        };
        Ok(std::iter::once(program)
            .chain(rest.iter().map(OsString::from))
            .collect())
    }

    /// The instance's own folder under `/run/netassay` (logs, the reference control plane's
    /// state); removed with the instance, also by the sweep.
    pub fn instance_dir(&self) -> PathBuf {
        self.log_dir()
    }

    fn log_dir(&self) -> PathBuf {
        self.prefix.log_dir(&self.state_dir)
    }

    fn log_file(&self, netns: &str) -> PathBuf {
        self.log_dir().join(format!("{netns}.log"))
    }

    fn stop_pod(&self, mut pod: Pod) -> Result<(), DataplaneError> {
        let stopped = stop_process_group(&mut pod.child);
        let removed = self.remove_pod_network(pod.index, pod.cni.as_ref());
        stopped.and(removed)
    }
}

impl super::Dataplane for NetnsDataplane {
    fn pod_log(&self, namespace: &str, name: &str) -> Option<String> {
        NetnsDataplane::pod_log(self, namespace, name)
    }

    fn create_pod(&self, pod: &PodSpec) -> Result<IpAddr, DataplaneError> {
        self.ensure_open()?;
        let pod_key = key(&pod.namespace, &pod.name);
        let (index, ip) = {
            let mut pods = self.pods.lock().unwrap();
            if pods.live.contains_key(&pod_key) || !pods.creating.insert(pod_key.clone()) {
                return Err(DataplaneError::Command {
                    what: format!("creating pod {}/{}", pod.namespace, pod.name),
                    detail: "it already exists".into(),
                });
            }
            let index = pods.next_index;
            pods.next_index += 1;
            (index, pod_address(index))
        };
        // The attachment outlives a failure after it, for the undo.
        let mut attached: Option<CniAttachment> = None;
        let attempt = (|| {
            let (netns, ip) = match &self.cni {
                Some(cni) => {
                    let (netns, attachment) = self.attach_pod(cni, index, pod)?;
                    let ip = attachment.ip;
                    attached = Some(attachment.attached);
                    (netns, ip)
                }
                None => {
                    let ip = ip.ok_or_else(|| DataplaneError::Command {
                        what: format!("creating pod {}/{}", pod.namespace, pod.name),
                        detail: format!("the pod range {} is exhausted", cidr_text(POD_CIDR)),
                    })?;
                    (self.build_pod_network(index, ip)?, ip)
                }
            };
            self.write_resolv_conf(&netns, &pod.namespace)?;
            Ok((ip, self.spawn(&netns, &pod.command, &pod.name)?))
        })();
        let mut pods = self.pods.lock().unwrap();
        pods.creating.remove(&pod_key);
        let failure = match attempt {
            Ok((ip, child)) if !self.closed.load(Ordering::SeqCst) => {
                let ports = pod
                    .ports
                    .iter()
                    .filter(|p| p.protocol == Protocol::Tcp)
                    .map(|p| p.port)
                    .collect();
                let entry = Pod {
                    index,
                    ip,
                    ports,
                    child,
                    command: pod.command.clone(),
                    cni: attached,
                };
                pods.live.insert(pod_key, entry);
                return Ok(IpAddr::V4(ip));
            }
            Ok((_, mut child)) => {
                let _ = stop_process_group(&mut child);
                self.ensure_open().unwrap_err()
            }
            Err(e) => e,
        };
        drop(pods);
        // The creation error is the one worth reporting, not a cleanup error after it.
        let _ = self.remove_pod_network(index, attached.as_ref());
        Err(failure)
    }

    fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), DataplaneError> {
        let pod = self.pods.lock().unwrap().live.remove(&key(namespace, name));
        match pod {
            Some(pod) => self.stop_pod(pod),
            None => Ok(()),
        }
    }

    fn restart_pod(&self, namespace: &str, name: &str) -> Result<(), DataplaneError> {
        self.ensure_open()?;
        let mut pods = self.pods.lock().unwrap();
        let pod =
            pods.live
                .get_mut(&key(namespace, name))
                .ok_or_else(|| DataplaneError::NoSuchPod {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })?;
        // SIGKILL, as the OOM killer does; then the same command in the same namespace, once
        // the pod network says the attachment is still as ADD left it (CNI CHECK).
        stop_process_group(&mut pod.child)?;
        if let (Some(cni), Some(attached)) = (&self.cni, &pod.cni) {
            cni.network
                .check(&attached.attachment, &attached.result)
                .map_err(|e| DataplaneError::Command {
                    what: format!("restarting pod {namespace}/{name}"),
                    detail: e.to_string(),
                })?;
        }
        let netns = self.prefix.pod_netns(pod.index);
        pod.child = self.spawn(&netns, &pod.command, name)?;
        Ok(())
    }

    fn pod_ready(&self, namespace: &str, name: &str) -> bool {
        let mut pods = self.pods.lock().unwrap();
        let Some(pod) = pods.live.get_mut(&key(namespace, name)) else {
            return false;
        };
        if !matches!(pod.child.try_wait(), Ok(None)) {
            return false;
        }
        let pid = pod.child.id();
        let netns = self.prefix.pod_netns(pod.index);
        // Until `ip netns exec` has entered the namespace, /proc/<pid>/net is the root's.
        let inode = |path: String| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
        let inside = inode(format!("/proc/{pid}/ns/net"))
            .is_some_and(|ns| Some(ns) == inode(format!("/run/netns/{netns}")));
        if !inside {
            return false;
        }
        let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{file}"));
        let Ok(tcp) = read("tcp") else {
            return false;
        };
        let tcp6 = read("tcp6").unwrap_or_default();
        let listening = procnet::listening_ports(&tcp, &tcp6, pod.ip);
        pod.ports.iter().all(|port| listening.contains(port))
    }

    fn exec(
        &self,
        namespace: &str,
        name: &str,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError> {
        let netns = self
            .pod_netns(namespace, name)
            .ok_or_else(|| DataplaneError::NoSuchPod {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        self.exec_in(&netns, command)
    }

    fn sync(&self, state: &ClusterState) -> Result<(), DataplaneError> {
        self.sync_with(state, None)
    }

    fn cilium(&self) -> bool {
        self.cilium.load(Ordering::SeqCst)
    }

    fn sync_cilium(
        &self,
        state: &ClusterState,
        cilium: &CiliumState,
    ) -> Result<(), DataplaneError> {
        self.sync_with(state, Some(cilium))
    }

    fn node(&self) -> NodeInfo {
        NodeInfo {
            name: self.prefix.node_netns(),
            address: IpAddr::V4(NODE_ADDRESS),
        }
    }

    fn shutdown(&self) {
        if let Err(e) = self.close() {
            eprintln!("netassay sandbox: cleanup incomplete: {e}");
        }
    }
}

impl NetnsDataplane {
    /// Makes netassay's CNI play Cilium from now on, as if Cilium were installed: the emulator
    /// serves `cilium.io/v2` (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) and every
    /// policy, NetworkPolicies included, compiles under Cilium's semantics. Only netassay's CNI
    /// can (false when a third party enforces); turn it on before any policy exists (the next
    /// sync applies it).
    pub fn play_cilium(&self) -> bool {
        if self.enforce_policies {
            self.cilium.store(true, Ordering::SeqCst);
        }
        self.enforce_policies
    }

    /// [`Dataplane::sync`], with Cilium's semantics and policies when `cilium` is given.
    fn sync_with(
        &self,
        state: &ClusterState,
        cilium: Option<&CiliumState>,
    ) -> Result<(), DataplaneError> {
        self.ensure_open()?;
        let mut guard = self.memory.lock().unwrap();
        let (memory, applied_last) = &mut *guard;
        let mut effective = memory.effective(&self.faults, state);
        if !self.program_services {
            effective.services.clear();
        }
        // A third-party enforcer alone enforces: the compiler's "no enforcement" (CNI faults
        // and a third-party enforcer are exclusive, see SandboxOptions::validate).
        let faults = if self.enforce_policies {
            self.faults.clone()
        } else {
            FaultSet::from(crate::fault::Fault::NoEnforcement)
        };
        let ruleset = build_with(&effective, cilium, &faults, &self.prefix.policy_table());
        // The add-ons' files follow the API at once (no CNI fault applies to them, the DNS
        // rules follow the ruleset); a failure to write them does not keep the ruleset from
        // being applied.
        let files = self.write_files(state, &ruleset.dns_rules);
        let script = ruleset.render();
        let applied = match &self.late {
            // Every ruleset is queued: the delay runs from each sync.
            Some(late) => late
                .submit(script)
                .map_err(|detail| DataplaneError::Command {
                    what: format!("nft -f - in {}", self.prefix.node_netns()),
                    detail,
                }),
            None if applied_last.as_ref() == Some(&script) => Ok(()),
            None => {
                let result = host::nft_apply(&self.prefix.node_netns(), &script);
                *applied_last = result.is_ok().then_some(script);
                result
            }
        };
        applied.and(files)
    }
}

impl Drop for NetnsDataplane {
    fn drop(&mut self) {
        super::Dataplane::shutdown(self);
    }
}

/// How long the node's conntrack keeps a closed TCP flow (TIME_WAIT), in seconds.
pub const NODE_TIME_WAIT_SECS: u32 = 5;

/// The command that sets a pod namespace's sysctls, whichever way its network was made: any
/// port may be bound and any group may ping, as a kubelet's safe sysctls allow.
fn pod_sysctls(netns: &str) -> [&str; 9] {
    [
        "ip",
        "netns",
        "exec",
        netns,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_unprivileged_port_start=0",
        "net.ipv4.ping_group_range=0 2147483647",
    ]
}

/// What [`NetnsDataplane::attach_pod`] made.
struct Attached {
    ip: Ipv4Addr,
    attached: CniAttachment,
}

/// A pod sandbox ID as container runtimes make them: 32 random bytes in hex.
fn sandbox_id() -> String {
    (0..32)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

/// CNI DEL of a pod's attachment: the pod network, then the loopback network.
fn detach(cni: &PodCni, attached: &CniAttachment) -> Result<(), DataplaneError> {
    let network = cni
        .network
        .del(&attached.attachment, Some(&attached.result));
    let lo = Attachment {
        ifname: "lo".into(),
        ..attached.attachment.clone()
    };
    let loopback = cni.loopback.del(&lo, None);
    network.and(loopback).map_err(|e| DataplaneError::Command {
        what: format!(
            "detaching {} (sandbox {}) from the CNI network",
            attached.attachment.netns.display(),
            attached.attachment.container_id
        ),
        detail: e.to_string(),
    })
}

/// Network namespaces, veths and nftables need root; say so before anything half-happens.
fn require_root() -> Result<(), DataplaneError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if effective_uid == Some("0") {
        Ok(())
    } else {
        Err(DataplaneError::Command {
            what: "starting the sandbox dataplane".into(),
            detail: "it needs root (network namespaces, veths, nftables)".into(),
        })
    }
}

fn key(namespace: &str, name: &str) -> PodKey {
    (namespace.to_string(), name.to_string())
}

/// Picks a random prefix nobody holds: its state file did not exist and no namespace uses it.
fn claim_prefix(dir: &Path) -> Result<Prefix, DataplaneError> {
    for _ in 0..64 {
        let prefix = Prefix::random();
        if !ownership::claim(dir, &prefix)? {
            continue;
        }
        if host::list_netns()?.iter().any(|ns| prefix.owns(ns)) {
            // Leftovers of an instance being swept right now: leave them to the sweep.
            std::fs::remove_file(prefix.state_file(dir))?;
            continue;
        }
        return Ok(prefix);
    }
    Err(DataplaneError::Command {
        what: "choosing a sandbox instance prefix".into(),
        detail: format!("64 random prefixes were all taken in {}", dir.display()),
    })
}

/// The external host's addresses must not shadow the cluster's or the node's own.
fn check_external_address(address: Ipv4Addr) -> Result<(), DataplaneError> {
    let in_pods =
        u32::from(address) >> (32 - POD_CIDR.1) == u32::from(POD_CIDR.0) >> (32 - POD_CIDR.1);
    if in_pods || address == NODE_ADDRESS || address == OUTSIDE_ADDRESS || address == GATEWAY {
        return Err(DataplaneError::Command {
            what: format!("external address {address}"),
            detail: "collides with the pod range, the node, the outside vantage or the gateway"
                .into(),
        });
    }
    Ok(())
}

/// Writes `text` to a temporary file next to `path` and renames it over `path`, so a reader sees
/// the old or the new text, never part of one.
fn write_atomically(path: &Path, text: &str) -> Result<(), DataplaneError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })?;
    Ok(())
}

/// SIGKILLs the child's process group (it leads one) and reaps the child.
fn stop_process_group(child: &mut Child) -> Result<(), DataplaneError> {
    if matches!(child.try_wait(), Ok(None)) {
        host::kill(&[format!("-{}", child.id())])?;
    }
    child.wait()?;
    Ok(())
}
