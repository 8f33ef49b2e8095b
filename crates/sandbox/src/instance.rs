//! One running sandbox: the netns dataplane plus the API emulator in front of it, its add-ons
//! (cluster DNS always; the gateway with the K8TRE preset), and a kubeconfig that points kube-rs
//! (and kubectl) at it. Stopping it removes everything it created.

use super::addresses::NODE_ADDRESS;
use super::api::{self, ApiOptions, ApiServer};
use super::dataplane::netns::{NetnsConfig, NetnsDataplane};
use super::dataplane::{Dataplane, DataplaneError};
use super::kubelet_node::{KubeletNode, NodeImages, SandboxNode};
use super::node::api_relay::ApiRelay;
use super::node::components::{self, Cni, ServiceProxy};
use super::node::{key_of, selects_pods, NodeAgent, NodeError, NodeOptions, NodeRole};
use super::preset::{Preset, PresetFault, PresetProfile, PresetScale, GATEWAY_PORT};
use super::reference::{self, ReferenceCluster, ReferenceError};
use super::system;
use crate::fault::FaultSet;
use crate::object::Object;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How long the add-on pods (cluster DNS, the gateway) may take to become ready.
const ADD_ON_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the node may take to program an add-on's Service before its pods are created.
const ADD_ON_SERVICE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("the sandbox needs root on Linux with `ip` and `nft` (apt-get install iproute2 nftables): {0}")]
    Dataplane(#[from] DataplaneError),
    #[error("starting the sandbox API server: {0}")]
    Api(#[from] std::io::Error),
    #[error("sandbox fault {fault} needs --sandbox-preset {preset}")]
    PresetFaultWithoutPreset { fault: PresetFault, preset: Preset },
    #[error("--sandbox-scale {scale} sizes a preset: it needs --sandbox-preset k8tre")]
    ScaleWithoutPreset { scale: PresetScale },
    #[error("the sandbox's {what} did not come up: {detail}")]
    AddOn { what: String, detail: String },
    #[error(transparent)]
    Prerequisites(#[from] super::prerequisites::PrerequisiteError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("--sandbox-cni {cni} and --sandbox-proxy {proxy} need --sandbox-control-plane kubernetes (third-party node components run against the reference cluster)")]
    ComponentsNeedReference { cni: Cni, proxy: ServiceProxy },
    #[error("--sandbox-fault {fault} models a bug of netassay's own enforcer: it cannot be combined with --sandbox-cni {cni}, under which netassay installs no policy rule (the negative control of a third-party enforcer is --sandbox-fault enforcer-stopped, or enforcement-off for cilium)")]
    FaultWithThirdPartyEnforcer { fault: String, cni: Cni },
    #[error("--sandbox-fault enforcer-stopped stops a third-party enforcer (--sandbox-cni kube-router); netassay's own enforcer has the fault profile `none` for that")]
    EnforcerStoppedWithoutThirdParty,
    #[error("--sandbox-fault enforcer-stopped cannot apply to --sandbox-cni cilium: its CNI plugin asks the agent for every pod, so with the agent stopped no fixture could start; Cilium's negative control is --sandbox-fault enforcement-off (the agent runs with --enable-policy=never)")]
    CiliumCannotBeStopped,
    #[error("--sandbox-fault enforcement-off turns off Cilium's policy enforcement: it needs --sandbox-cni cilium")]
    EnforcementOffWithoutCilium,
    #[error("--sandbox-proxy cilium is Cilium's kube-proxy replacement, served by the Cilium agent: it needs --sandbox-cni cilium (got --sandbox-cni {cni})")]
    CiliumProxyWithoutCilium { cni: Cni },
    #[error("--sandbox-node kubelet runs the real kubelet under the reference cluster: it needs --sandbox-control-plane kubernetes")]
    KubeletNeedsReference,
    #[error("--sandbox-fault {fault} is a fault of netassay's node agent, the only node with fault profiles: it cannot be combined with --sandbox-node kubelet (drop --sandbox-fault, or use --sandbox-node netassay)")]
    FaultOnKubeletNode { fault: String },
    #[error("--sandbox-preset {preset} is not available with --sandbox-node kubelet yet (its gateway and policy controller run only beside netassay's node agent); use --sandbox-node netassay")]
    PresetOnKubeletNode { preset: Preset },
    #[error("--sandbox-fault {fault} is a fault of the emulator's API: it cannot be combined with --sandbox-control-plane kubernetes (the real API server answers as it does; of the control-plane faults, the reference cluster's node carries exec-resets and pod-restarts)")]
    ControlPlaneFaultOnReference { fault: String },
}

/// Which API the sandbox's node serves (DESIGN §7a).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ControlPlane {
    /// netassay's built-in Kubernetes-API emulator: starts in milliseconds, needs nothing.
    #[default]
    Emulator,
    /// Real etcd, kube-apiserver and kube-controller-manager built from upstream sources by
    /// scripts/reference-cluster/build.sh, with netassay's node agent as the kubelet.
    Kubernetes,
}

impl std::fmt::Display for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlPlane::Emulator => "emulator",
            ControlPlane::Kubernetes => "kubernetes",
        })
    }
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// CNI faults and preset faults; empty is the compliant profile.
    pub faults: FaultSet,
    /// The preset (`--sandbox-preset`), if any.
    pub preset: Option<Preset>,
    /// The preset's own projects (`--sandbox-scale projects=N`); needs a preset.
    pub preset_scale: Option<PresetScale>,
    /// The API behind the node: the emulator, or the reference cluster.
    pub control_plane: ControlPlane,
    /// Where the reference cluster's binaries are (`--sandbox-bin-dir`); `None`: the default
    /// (see [`reference::bin_dir`]).
    pub bin_dir: Option<PathBuf>,
    /// Who enforces NetworkPolicy on the node (reference cluster only for a third party).
    pub cni: Cni,
    /// Who programs Services on the node (reference cluster only for kube-proxy; Cilium's
    /// kube-proxy replacement only with Cilium).
    pub proxy: ServiceProxy,
    /// Who runs the pods: netassay's node agent, or the real kubelet (reference cluster only).
    pub node: SandboxNode,
    /// The images the real kubelet runs; `None`: where [`NodeImages::locate`] finds them.
    pub node_images: Option<NodeImages>,
}

impl SandboxOptions {
    /// Every preset fault needs its preset.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if self.node == SandboxNode::Kubelet {
            if self.control_plane != ControlPlane::Kubernetes {
                return Err(SandboxError::KubeletNeedsReference);
            }
            let node_fault = self
                .faults
                .iter()
                .map(|f| f.name().to_string())
                .chain(
                    self.faults
                        .control_plane()
                        .iter()
                        .map(|f| f.name().to_string()),
                )
                .chain(
                    self.faults
                        .preset_faults()
                        .iter()
                        .map(|f| f.name().to_string()),
                )
                .next();
            if let Some(fault) = node_fault {
                return Err(SandboxError::FaultOnKubeletNode { fault });
            }
            if let Some(preset) = self.preset {
                return Err(SandboxError::PresetOnKubeletNode { preset });
            }
        }
        if self.proxy == ServiceProxy::Cilium && self.cni != Cni::Cilium {
            return Err(SandboxError::CiliumProxyWithoutCilium { cni: self.cni });
        }
        let third_party =
            self.cni.has_third_party_enforcer() || self.proxy != ServiceProxy::Netassay;
        if third_party && self.control_plane != ControlPlane::Kubernetes {
            return Err(SandboxError::ComponentsNeedReference {
                cni: self.cni,
                proxy: self.proxy,
            });
        }
        if self.control_plane == ControlPlane::Kubernetes {
            let emulator_only = self
                .faults
                .control_plane()
                .iter()
                .find(|f| !f.on_the_node());
            if let Some(fault) = emulator_only {
                return Err(SandboxError::ControlPlaneFaultOnReference {
                    fault: fault.name().to_string(),
                });
            }
        }
        if !self.cni.has_third_party_enforcer() && self.faults.enforcer_stopped() {
            return Err(SandboxError::EnforcerStoppedWithoutThirdParty);
        }
        if self.cni == Cni::Cilium && self.faults.enforcer_stopped() {
            return Err(SandboxError::CiliumCannotBeStopped);
        }
        if self.cni != Cni::Cilium && self.faults.enforcement_off() {
            return Err(SandboxError::EnforcementOffWithoutCilium);
        }
        if !self.cni.netassay_enforces() {
            if let Some(fault) = self.faults.iter().next() {
                return Err(SandboxError::FaultWithThirdPartyEnforcer {
                    fault: fault.name().to_string(),
                    cni: self.cni,
                });
            }
        }
        if let (Some(scale), None) = (self.preset_scale, self.preset) {
            return Err(SandboxError::ScaleWithoutPreset { scale });
        }
        match self
            .faults
            .preset_faults()
            .iter()
            .find(|f| self.preset != Some(f.preset()))
        {
            Some(fault) => Err(SandboxError::PresetFaultWithoutPreset {
                fault: *fault,
                preset: fault.preset(),
            }),
            None => Ok(()),
        }
    }
}

/// How pods get their network: the CNI's way, except that the real kubelet's pods always come
/// through CNI (containerd's CRI plugin calls it), so netassay's own CNI is then its compiler
/// on the reference bridge plugin.
fn pod_network(cni: Cni, node: SandboxNode) -> crate::cni::networks::PodNetwork {
    match (cni, node) {
        (Cni::Netassay, SandboxNode::Kubelet) => crate::cni::networks::PodNetwork::Bridge,
        (cni, _) => cni.pod_network(),
    }
}

/// The reference cluster and the node agent that serves as its kubelet (or beside the real
/// one).
struct Reference {
    cluster: ReferenceCluster,
    node: NodeAgent,
    /// The real kubelet, containerd and runc (`--sandbox-node kubelet`).
    kubelet: Option<KubeletNode>,
    /// The API inside the node's namespace, for node components that run there.
    relay: ApiRelay,
}

pub struct Sandbox {
    api: Option<ApiServer>,
    reference: Option<Reference>,
    dataplane: Arc<NetnsDataplane>,
    kubeconfig: PathBuf,
    preset: Option<Preset>,
    cni: Cni,
    node: SandboxNode,
}

impl Sandbox {
    /// [`Sandbox::start_with`] without a preset.
    pub async fn start(faults: FaultSet) -> Result<Sandbox, SandboxError> {
        Sandbox::start_with(SandboxOptions {
            faults,
            ..SandboxOptions::default()
        })
        .await
    }

    /// Builds the dataplane (sweeping what dead sandboxes left), starts the API server on
    /// 127.0.0.1, brings up cluster DNS (and the preset's gateway) and waits until they serve,
    /// then writes a kubeconfig next to the dataplane's state. On failure everything started so
    /// far is removed.
    pub async fn start_with(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let executable = std::env::current_exe()?;
        Sandbox::start_with_executable(options, executable).await
    }

    /// [`Sandbox::start_with`], with a leading `netassay` in pod commands meaning `executable`
    /// rather than the running one (tests point it at the built binary).
    pub async fn start_with_executable(
        options: SandboxOptions,
        executable: PathBuf,
    ) -> Result<Sandbox, SandboxError> {
        options.validate()?;
        // `ip` and `nft`, and what the chosen node components run (kube-router: iptables and
        // ipset): installed on a fresh Debian host (after saying so), else named.
        let installer = super::prerequisites::Installer::host();
        let kubelet_commands = match options.node {
            SandboxNode::Kubelet => super::kubelet_node::HOST_COMMANDS.to_vec(),
            SandboxNode::Netassay => Vec::new(),
        };
        let needed: Vec<(&str, &str)> = super::prerequisites::NEEDED
            .into_iter()
            .chain(components::host_commands(options.cni))
            .chain(kubelet_commands)
            .collect();
        // The CNI plugins live in their own folders, not on PATH (and `bridge` on PATH is
        // iproute2's command of that name).
        let pod_network = pod_network(options.cni, options.node);
        let plugins: Vec<(&str, &str)> = pod_network
            .plugins()
            .iter()
            .map(|p| (*p, crate::cni::networks::PLUGIN_PACKAGE))
            .collect();
        let plugin_installer = super::prerequisites::Installer {
            dirs: crate::cni::networks::PLUGIN_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            ..installer.clone()
        };
        tokio::task::spawn_blocking(move || {
            let say = |m: &str| eprintln!("netassay sandbox: {m}");
            super::prerequisites::ensure_commands(&installer, &needed, &say)?;
            super::prerequisites::ensure_commands(&plugin_installer, &plugins, &say)
        })
        .await
        .map_err(std::io::Error::other)??;
        let bin_dir = reference::bin_dir(options.bin_dir.as_deref());
        if options.control_plane == ControlPlane::Kubernetes {
            let mut binaries = components::binaries(options.cni, options.proxy);
            if options.node == SandboxNode::Kubelet {
                binaries.push(super::kubelet_node::KUBELET_BINARY);
            }
            reference::check_binaries(&bin_dir, &binaries)?;
        }
        if options.node == SandboxNode::Kubelet {
            options
                .node_images
                .clone()
                .unwrap_or_else(|| NodeImages::locate(None, None))
                .check()?;
        }
        let mut config = NetnsConfig::new(options.faults.clone())?;
        config.enforce_policies = options.cni.netassay_enforces();
        config.pod_network = pod_network;
        config.third_party_plugins = Some(bin_dir.clone());
        config.program_services = options.proxy == ServiceProxy::Netassay;
        config.executable = executable;
        let dataplane = tokio::task::spawn_blocking(move || NetnsDataplane::new(config))
            .await
            .map_err(std::io::Error::other)??;
        let dataplane = Arc::new(dataplane);
        let dyn_plane: Arc<dyn Dataplane> = dataplane.clone();
        if options.control_plane == ControlPlane::Kubernetes {
            let preset = options.preset.map(|p| {
                PresetProfile::new(p, options.faults.preset_faults())
                    .with_scale(options.preset_scale)
            });
            return Sandbox::start_reference(dataplane, &bin_dir, preset, &options).await;
        }
        let preset = options.preset.map(|p| {
            PresetProfile::new(p, options.faults.preset_faults()).with_scale(options.preset_scale)
        });
        // The add-ons are created with the API server, so their pods start while it syncs.
        let mut objects = system::dns_objects(&dataplane.zone_file());
        if let Some(preset) = &preset {
            objects.extend(preset.bootstrap_objects(&dataplane.routes_file()));
        }
        let api_options = ApiOptions {
            preset,
            bootstrap: objects,
            faults: options.faults.control_plane().clone(),
            ..ApiOptions::default()
        };
        let api = match api::start_with(dyn_plane, api_options).await {
            Ok(a) => a,
            Err(e) => {
                let dp = dataplane.clone();
                let _ = tokio::task::spawn_blocking(move || dp.shutdown()).await;
                return Err(e.into());
            }
        };
        let mut sandbox = Sandbox {
            api: Some(api),
            reference: None,
            dataplane,
            kubeconfig: PathBuf::new(),
            preset: options.preset,
            cni: options.cni,
            node: options.node,
        };
        // From here on, stopping `sandbox` cleans up whatever fails.
        if let Err(e) = sandbox.wait_for_add_ons().await {
            sandbox.stop().await;
            return Err(e);
        }
        let port = sandbox.api.as_ref().map_or(0, |a| a.addr().port());
        let dir =
            std::env::temp_dir().join(format!("netassay-sandbox-{}-{port}", std::process::id()));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let kubeconfig = dir.join("kubeconfig");
            if let Some(api) = &sandbox.api {
                api.write_kubeconfig(&kubeconfig)?;
            }
            Ok(kubeconfig)
        });
        match written {
            Ok(kubeconfig) => {
                sandbox.kubeconfig = kubeconfig;
                Ok(sandbox)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                sandbox.stop().await;
                Err(e.into())
            }
        }
    }

    /// The reference cluster behind the node agent, then cluster DNS through its API.
    async fn start_reference(
        dataplane: Arc<NetnsDataplane>,
        bin_dir: &Path,
        preset: Option<PresetProfile>,
        options: &SandboxOptions,
    ) -> Result<Sandbox, SandboxError> {
        let mut sandbox = Sandbox {
            api: None,
            reference: None,
            dataplane: dataplane.clone(),
            kubeconfig: PathBuf::new(),
            preset: preset.as_ref().map(|p| p.preset),
            cni: options.cni,
            node: options.node,
        };
        let node_name = dataplane.node().name;
        let dir = dataplane
            .instance_dir()
            .join(crate::processes::STATE_SUBDIR);
        let reference_options = reference::ReferenceOptions {
            allocate_pod_cidrs: options.cni.needs_pod_cidr(),
            node_name_on_loopback: options.node == SandboxNode::Kubelet,
        };
        let mut cluster =
            match ReferenceCluster::start(bin_dir, &dir, &node_name, reference_options).await {
                Ok(c) => c,
                Err(e) => {
                    sandbox.stop().await;
                    return Err(e.into());
                }
            };
        let started = async {
            let client = cluster.admin_client().await?;
            reference::install_gateway_api(&client).await?;
            let role = match options.node {
                SandboxNode::Netassay => NodeRole::Kubelet,
                SandboxNode::Kubelet => NodeRole::BesideKubelet,
            };
            let node = NodeAgent::start(NodeOptions {
                role,
                client: client.clone(),
                dataplane: dataplane.clone(),
                logs: {
                    let dp = dataplane.clone();
                    Arc::new(move |ns: &str, name: &str| dp.pod_log(ns, name))
                },
                tls: cluster.kubelet_tls().clone(),
                version: cluster.version().to_string(),
                ready_timeout: ApiOptions::default().ready_timeout,
                preset: preset.clone(),
                gateway_api: true,
                faults: options.faults.control_plane().clone(),
            })
            .await?;
            let upstream = cluster
                .url()
                .trim_start_matches("https://")
                .parse::<std::net::SocketAddr>()
                .map_err(|e| SandboxError::AddOn {
                    what: "the node's API relay".into(),
                    detail: e.to_string(),
                })?;
            let relay = ApiRelay::start(&dataplane.node_netns(), upstream)?;
            cluster.write_node_kubeconfig(relay.addr())?;
            let kubelet = match options.node {
                SandboxNode::Netassay => None,
                SandboxNode::Kubelet => {
                    let mut images = options
                        .node_images
                        .clone()
                        .unwrap_or_else(|| NodeImages::locate(None, None));
                    images
                        .netassay_names
                        .push(super::kubelet_node::NETASSAY_IMAGE.to_string());
                    // Before the components: kube-router and kube-proxy read the Node the
                    // kubelet registers. On failure it has stopped what it started; the
                    // instance's removal takes its cgroups and folders.
                    Some(
                        KubeletNode::start(
                            &mut cluster,
                            &super::kubelet_node::NodeSite {
                                netns: &dataplane.node_netns(),
                                name: &node_name,
                                instance: dataplane.prefix(),
                                instance_dir: &dataplane.instance_dir(),
                            },
                            &images,
                        )
                        .await?,
                    )
                }
            };
            components::start(
                &client,
                &mut cluster,
                &components::NodeSite {
                    netns: &dataplane.node_netns(),
                    name: &node_name,
                    links: &dataplane.node_links(),
                },
                options.cni,
                options.proxy,
                options.faults.enforcement_off(),
            )
            .await?;
            if options.faults.enforcer_stopped() {
                components::stop_enforcer(&mut cluster, options.cni)?;
            }
            Ok::<_, SandboxError>((client, node, relay, kubelet))
        }
        .await;
        let (client, node, relay, kubelet) = match started {
            Ok(x) => x,
            Err(e) => {
                cluster.stop().await;
                sandbox.stop().await;
                return Err(e);
            }
        };
        sandbox.kubeconfig = cluster.run_kubeconfig().to_path_buf();
        sandbox.reference = Some(Reference {
            cluster,
            node,
            kubelet,
            relay,
        });
        let mut add_ons = system::dns_objects(&dataplane.zone_file());
        if options.node == SandboxNode::Kubelet {
            super::kubelet_node::run_add_ons_from_the_image(
                &mut add_ons,
                &dataplane.instance_dir(),
            );
        }
        if let Some(preset) = &preset {
            add_ons.extend(preset.bootstrap_objects(&dataplane.routes_file()));
        }
        if let Err(e) = sandbox.create_add_ons(&client, add_ons).await {
            sandbox.stop().await;
            return Err(e);
        }
        Ok(sandbox)
    }

    /// Creates the add-ons through the reference cluster's API and waits until they serve.
    ///
    /// Everything but the pods comes first, and the pods only once the node has programmed
    /// their Services, as an installer orders a manifest (Helm puts Services before workloads):
    /// a pod then starts with its Services in place (cluster DNS reads its own name in the zone
    /// it starts with), and the add-ons come up the same way on every run.
    async fn create_add_ons(
        &self,
        client: &kube::Client,
        objects: Vec<Object>,
    ) -> Result<(), SandboxError> {
        let (pods, others): (Vec<Object>, Vec<Object>) = objects
            .into_iter()
            .partition(|o| matches!(o, Object::Pod(_)));
        let mut services = Vec::new();
        for object in &others {
            if let Object::Service(s) = object {
                if selects_pods(s) {
                    services.push(key_of(&s.metadata));
                }
            }
            self.create_add_on(client, object).await?;
        }
        if let Some(reference) = &self.reference {
            for (namespace, name) in &services {
                if !reference
                    .node
                    .wait_until_programmed(namespace, name, ADD_ON_SERVICE_TIMEOUT)
                    .await
                {
                    return Err(SandboxError::AddOn {
                        what: format!("Service {namespace}/{name}"),
                        detail: format!(
                            "the node did not program it within {ADD_ON_SERVICE_TIMEOUT:?}"
                        ),
                    });
                }
            }
        }
        let mut started = Vec::new();
        for pod in &pods {
            if let Object::Pod(p) = pod {
                started.push(key_of(&p.metadata));
            }
            self.create_add_on(client, pod).await?;
        }
        let waits = started
            .iter()
            .map(|(namespace, name)| self.wait_until_serving(namespace, name));
        futures::future::try_join_all(waits).await?;
        Ok(())
    }

    async fn create_add_on(
        &self,
        client: &kube::Client,
        object: &Object,
    ) -> Result<(), SandboxError> {
        let value = reference::object_json(object).map_err(|detail| SandboxError::AddOn {
            what: object.describe(),
            detail,
        })?;
        reference::create_object(client, value).await?;
        Ok(())
    }

    /// Waits until all the add-on pods serve, side by side, and until the dataplane routes to
    /// them (their Services' DNAT needs their addresses).
    async fn wait_for_add_ons(&self) -> Result<(), SandboxError> {
        let Some(api) = &self.api else {
            return Ok(());
        };
        let waits = api
            .bootstrapped_pods()
            .iter()
            .map(|(namespace, name)| self.wait_until_serving(namespace, name));
        futures::future::try_join_all(waits).await?;
        api.sync().await;
        Ok(())
    }

    /// Polls the dataplane until the pod's ports listen; fails at once when its process exits
    /// or the dataplane could not start it.
    async fn wait_until_serving(&self, namespace: &str, name: &str) -> Result<(), SandboxError> {
        if let (SandboxNode::Kubelet, Some(r)) = (self.node, &self.reference) {
            return wait_until_ready(r, namespace, name).await;
        }
        let what = format!("pod {namespace}/{name}");
        let fail = |detail: String| SandboxError::AddOn {
            what: what.clone(),
            detail,
        };
        let deadline = tokio::time::Instant::now() + ADD_ON_TIMEOUT;
        loop {
            if let Some(api) = &self.api {
                if let Err(message) = api.pod_ready(namespace, name) {
                    return Err(fail(message));
                }
            }
            if let Some(r) = &self.reference {
                if let Some((component, how)) = r.cluster.exited() {
                    return Err(fail(format!(
                        "the reference cluster's {component} exited ({how})"
                    )));
                }
            }
            let dp = Arc::clone(&self.dataplane);
            let (ns, n) = (namespace.to_string(), name.to_string());
            let (ready, exited, log) = tokio::task::spawn_blocking(move || {
                let ready = dp.pod_ready(&ns, &n);
                let exited = dp.pod_exited(&ns, &n);
                let log = exited.as_ref().and_then(|_| dp.pod_log(&ns, &n));
                (ready, exited, log)
            })
            .await
            .map_err(|e| fail(e.to_string()))?;
            if ready {
                return Ok(());
            }
            if let Some(status) = exited {
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(fail(format!(
                    "its process exited ({status}); its output: {}",
                    tail.join(" | ")
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(format!(
                    "its ports did not listen within {ADD_ON_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Who runs the pods.
    pub fn node(&self) -> SandboxNode {
        self.node
    }

    /// The real node's containerd socket (`--sandbox-node kubelet`), for `ctr` and `crictl`.
    pub fn containerd_socket(&self) -> Option<&Path> {
        self.reference
            .as_ref()
            .and_then(|r| r.kubelet.as_ref())
            .map(|k| k.containerd_socket())
    }

    /// The per-instance prefix of every netns, link and nft table of this sandbox.
    pub fn instance(&self) -> &str {
        self.dataplane.prefix()
    }

    pub fn url(&self) -> String {
        match (&self.api, &self.reference) {
            (Some(a), _) => a.url(),
            (None, Some(r)) => r.cluster.url().to_string(),
            (None, None) => String::new(),
        }
    }

    /// The node's CNI.
    pub fn cni(&self) -> Cni {
        self.cni
    }

    /// The Hubble of the node's Cilium agent (`--sandbox-cni cilium`): Cilium's own account of
    /// the flows of a path. `None` under any other CNI.
    pub fn hubble(&self) -> Option<crate::node::hubble::Hubble> {
        let reference = self.reference.as_ref()?;
        (self.cni == Cni::Cilium).then(|| crate::node::hubble::Hubble {
            binary: reference.cluster.bin().join("hubble"),
            socket: crate::cni::networks::CiliumDirs::under(&self.dataplane.instance_dir())
                .run
                .join("hubble.sock"),
        })
    }

    /// Which API serves the node.
    pub fn control_plane(&self) -> ControlPlane {
        if self.reference.is_some() {
            ControlPlane::Kubernetes
        } else {
            ControlPlane::Emulator
        }
    }

    /// A kubeconfig with every right, for people poking the sandbox with kubectl. On the
    /// emulator (one user, no authorization) it is [`Sandbox::kubeconfig`]; on the reference
    /// cluster, a system:masters certificate, while [`Sandbox::kubeconfig`] is netassay's
    /// least-privilege ServiceAccount.
    pub fn admin_kubeconfig(&self) -> &Path {
        match &self.reference {
            Some(r) => r.cluster.admin_kubeconfig(),
            None => &self.kubeconfig,
        }
    }

    /// The reference cluster's Kubernetes version, if that is the control plane.
    pub fn kubernetes_version(&self) -> Option<&str> {
        self.reference.as_ref().map(|r| r.cluster.version())
    }

    /// The preset it runs with.
    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }

    /// The node's CNI as a run's environment names it (`bridge 1.1.1`) and its dataplane
    /// mode, for a CNI that has no DaemonSet in kube-system to find it by.
    pub fn cni_facts(&self) -> (String, String) {
        match self.cni {
            // The real kubelet's pods get their network through CNI: the reference bridge
            // plugin, with netassay's compiler enforcing on it.
            Cni::Netassay if self.node == SandboxNode::Kubelet => {
                let (name, version) = crate::cni::networks::plugins_version();
                (
                    format!("netassay-sandbox v{} on {name} {version}", env!("CARGO_PKG_VERSION")),
                    "CNI bridge + host-local (netassay's conflist), nftables from netassay's compiler"
                        .into(),
                )
            }
            Cni::Netassay => (
                format!("netassay-sandbox v{}", env!("CARGO_PKG_VERSION")),
                "routed veths (/32 per pod), nftables from netassay's compiler".into(),
            ),
            cni => {
                let (name, version) = crate::cni::networks::plugins_version();
                let enforcer = if cni.has_third_party_enforcer() {
                    format!(", {cni} enforces NetworkPolicy")
                } else {
                    ", no NetworkPolicy enforcer".into()
                };
                (
                    format!("{name} {version}"),
                    format!("CNI bridge + host-local (netassay's conflist){enforcer}"),
                )
            }
        }
    }

    /// The argv prefix that runs a command on the outside vantage (a host outside the cluster
    /// that reaches the node's address and routes the pod and ClusterIP ranges via the node):
    /// `["ip", "netns", "exec", "naXXXX-out"]`. Needs root, as the sandbox does.
    pub fn outside_command(&self) -> Vec<String> {
        self.dataplane.outside_command()
    }

    /// Where the preset's gateway is exposed (`203.0.113.1:80`); `None` without a preset.
    pub fn gateway_address(&self) -> Option<SocketAddr> {
        self.preset
            .map(|_| SocketAddr::new(IpAddr::V4(NODE_ADDRESS), GATEWAY_PORT))
    }

    /// The dataplane, for diagnostics (rulesets, pod logs, namespaces).
    pub fn dataplane(&self) -> &NetnsDataplane {
        &self.dataplane
    }

    /// Dataplane problems seen so far (failed syncs and the like).
    pub fn dataplane_errors(&self) -> Vec<String> {
        let mut errors = self
            .api
            .as_ref()
            .map(|a| a.dataplane_errors())
            .unwrap_or_default();
        if let Some(r) = &self.reference {
            errors.extend(r.node.errors());
        }
        errors
    }

    /// Stops serving and removes every netns, link, table, process and file of this sandbox.
    pub async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
        // The node's pods go while its components still run, as a kubelet's would: a CNI
        // whose plugin asks its agent (Cilium) to release a pod needs the agent there.
        let cluster = match self.reference.take() {
            Some(mut r) => {
                r.relay.stop();
                r.node.stop().await;
                if let Some(kubelet) = r.kubelet.take() {
                    kubelet.stop(&mut r.cluster).await;
                }
                Some(r.cluster)
            }
            None => None,
        };
        let dp = self.dataplane.clone();
        let _ = tokio::task::spawn_blocking(move || dp.shutdown()).await;
        if let Some(cluster) = cluster {
            cluster.stop().await;
        }
        if let Some(dir) = self.kubeconfig.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How long an add-on pod may take to become Ready on the real kubelet (its sandbox, the CNI
/// ADD and the container start come first).
const KUBELET_ADD_ON_TIMEOUT: Duration = Duration::from_secs(90);

/// Polls the API until the pod is Ready (the kubelet's readiness probe passed); fails at once
/// when its container cannot start (an image that is not there, a refused securityContext).
async fn wait_until_ready(r: &Reference, namespace: &str, name: &str) -> Result<(), SandboxError> {
    use k8s_openapi::api::core::v1::Pod;
    let what = format!("pod {namespace}/{name}");
    let fail = |detail: String| SandboxError::AddOn {
        what: what.clone(),
        detail,
    };
    let client = r.cluster.admin_client().await?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
    let deadline = tokio::time::Instant::now() + KUBELET_ADD_ON_TIMEOUT;
    let mut last = String::from("not created yet");
    loop {
        if let Some((component, how)) = r.cluster.exited() {
            return Err(fail(format!(
                "the reference cluster's {component} exited ({how})"
            )));
        }
        if let Ok(Some(pod)) = pods.get_opt(name).await {
            let status = pod.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(());
            }
            let waiting = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .find(|w| {
                    matches!(
                        w.reason.as_deref(),
                        Some(
                            "ErrImagePull"
                                | "ImagePullBackOff"
                                | "ErrImageNeverPull"
                                | "CreateContainerConfigError"
                                | "CreateContainerError"
                                | "CrashLoopBackOff"
                        )
                    )
                });
            if let Some(w) = waiting {
                return Err(fail(format!(
                    "{}: {}",
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default()
                )));
            }
            last = format!("phase {}", status.phase.unwrap_or_default());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "it was not Ready within {KUBELET_ADD_ON_TIMEOUT:?} ({last})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The dataplane's own Drop removes its network state; the kubeconfig goes here.
        self.dataplane.shutdown();
        if let Some(dir) = self
            .kubeconfig
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `options` validate (`want` None) or are refused with a message containing `want`.
    fn refuses_as(options: &SandboxOptions, want: Option<&str>, case: &str) {
        let got = options.validate().err().map(|e| e.to_string());
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(g.contains(w), "{case}: {g}"),
            (w, g) => panic!("{case}: want {w:?}, got {g:?}"),
        }
    }

    // Third-party node components run only on the reference cluster, and a CNI fault (a bug
    // of netassay's own enforcer) cannot be combined with a third-party enforcer.
    #[test]
    fn third_party_components_need_the_reference_cluster_and_no_cni_fault() {
        let table = [
            (
                ControlPlane::Emulator,
                Cni::KubeNetworkPolicies,
                ServiceProxy::Netassay,
                "",
                Some("need --sandbox-control-plane kubernetes"),
            ),
            (
                ControlPlane::Emulator,
                Cni::Netassay,
                ServiceProxy::KubeProxy,
                "",
                Some("need --sandbox-control-plane kubernetes"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeNetworkPolicies,
                ServiceProxy::KubeProxy,
                "",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeNetworkPolicies,
                ServiceProxy::Netassay,
                "tcp-only",
                Some("--sandbox-fault tcp-only models a bug of netassay's own enforcer"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Netassay,
                ServiceProxy::KubeProxy,
                "tcp-only",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeNetworkPolicies,
                ServiceProxy::Netassay,
                "k8tre-allow-all",
                None,
            ),
            (
                ControlPlane::Emulator,
                Cni::KubeRouter,
                ServiceProxy::Netassay,
                "",
                Some("need --sandbox-control-plane kubernetes"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeRouter,
                ServiceProxy::KubeProxy,
                "",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeRouter,
                ServiceProxy::Netassay,
                "ignore-named-ports",
                Some("the negative control of a third-party enforcer is --sandbox-fault enforcer-stopped"),
            ),
            // The plain bridge plugin needs no reference cluster; it enforces nothing, so
            // neither netassay's faults nor the negative control apply to it.
            (
                ControlPlane::Emulator,
                Cni::Bridge,
                ServiceProxy::Netassay,
                "",
                None,
            ),
            (
                ControlPlane::Emulator,
                Cni::Bridge,
                ServiceProxy::Netassay,
                "tcp-only",
                Some("under which netassay installs no policy rule"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Bridge,
                ServiceProxy::Netassay,
                "enforcer-stopped",
                Some("stops a third-party enforcer"),
            ),
            // The negative control: only with a third-party enforcer.
            (
                ControlPlane::Kubernetes,
                Cni::KubeRouter,
                ServiceProxy::Netassay,
                "enforcer-stopped",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Netassay,
                ServiceProxy::Netassay,
                "enforcer-stopped",
                Some("stops a third-party enforcer"),
            ),
            (
                ControlPlane::Emulator,
                Cni::Netassay,
                ServiceProxy::Netassay,
                "enforcer-stopped",
                Some("stops a third-party enforcer"),
            ),
            // Cilium's agent attaches every pod: stopped, it would leave no fixture. Its
            // negative control turns enforcement off instead, and only Cilium has that.
            (
                ControlPlane::Kubernetes,
                Cni::Cilium,
                ServiceProxy::Netassay,
                "enforcer-stopped",
                Some("Cilium's negative control is --sandbox-fault enforcement-off"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Cilium,
                ServiceProxy::KubeProxy,
                "enforcement-off",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeRouter,
                ServiceProxy::Netassay,
                "enforcement-off",
                Some("it needs --sandbox-cni cilium"),
            ),
            (
                ControlPlane::Emulator,
                Cni::Cilium,
                ServiceProxy::Netassay,
                "",
                Some("need --sandbox-control-plane kubernetes"),
            ),
            // Cilium's kube-proxy replacement is its agent's: only with Cilium, whose negative
            // control it keeps.
            (
                ControlPlane::Kubernetes,
                Cni::Cilium,
                ServiceProxy::Cilium,
                "enforcement-off",
                None,
            ),
            (
                ControlPlane::Kubernetes,
                Cni::KubeRouter,
                ServiceProxy::Cilium,
                "",
                Some("--sandbox-proxy cilium is Cilium's kube-proxy replacement, served by the Cilium agent: it needs --sandbox-cni cilium (got --sandbox-cni kube-router)"),
            ),
            (
                ControlPlane::Emulator,
                Cni::Netassay,
                ServiceProxy::Cilium,
                "",
                Some("it needs --sandbox-cni cilium (got --sandbox-cni netassay)"),
            ),
            (
                ControlPlane::Emulator,
                Cni::Cilium,
                ServiceProxy::Cilium,
                "",
                Some("need --sandbox-control-plane kubernetes"),
            ),
        ];
        for (control_plane, cni, proxy, faults, want) in table {
            let options = SandboxOptions {
                faults: faults.parse().unwrap(),
                preset: (!faults.is_empty() && faults.starts_with("k8tre"))
                    .then_some(Preset::K8tre),
                control_plane,
                cni,
                proxy,
                ..SandboxOptions::default()
            };
            refuses_as(
                &options,
                want,
                &format!("{control_plane} {cni} {proxy} {faults:?}"),
            );
        }
    }

    // The reference cluster's API is the real kube-apiserver: the emulator's API faults do not
    // apply there, while its node carries exec-resets and pod-restarts.
    #[test]
    fn the_reference_cluster_carries_only_the_node_faults() {
        let table = [
            (ControlPlane::Emulator, "api-errors", None),
            (ControlPlane::Emulator, "slow-api", None),
            (ControlPlane::Emulator, "exec-resets,pod-restarts", None),
            (
                ControlPlane::Kubernetes,
                "api-errors",
                Some("api-errors is a fault of the emulator's API"),
            ),
            (
                ControlPlane::Kubernetes,
                "exec-resets,slow-api",
                Some("slow-api is a fault of the emulator's API"),
            ),
            (ControlPlane::Kubernetes, "exec-resets", None),
            (ControlPlane::Kubernetes, "pod-restarts", None),
            (
                ControlPlane::Kubernetes,
                "exec-resets,pod-restarts,ignore-named-ports",
                None,
            ),
        ];
        for (control_plane, faults, want) in table {
            let options = SandboxOptions {
                faults: faults.parse().unwrap(),
                control_plane,
                ..SandboxOptions::default()
            };
            refuses_as(&options, want, &format!("{control_plane} {faults:?}"));
        }
    }

    #[test]
    fn the_kubelet_node_needs_the_reference_cluster_and_carries_no_fault() {
        let table = [
            (
                ControlPlane::Emulator,
                Cni::Netassay,
                "",
                Some("--sandbox-node kubelet runs the real kubelet under the reference cluster"),
            ),
            (ControlPlane::Kubernetes, Cni::Netassay, "", None),
            (ControlPlane::Kubernetes, Cni::Bridge, "", None),
            (ControlPlane::Kubernetes, Cni::Cilium, "", None),
            (
                ControlPlane::Kubernetes,
                Cni::Netassay,
                "ignore-named-ports",
                Some("--sandbox-fault ignore-named-ports is a fault of netassay's node agent, the only node with fault profiles: it cannot be combined with --sandbox-node kubelet"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Netassay,
                "exec-resets",
                Some("--sandbox-fault exec-resets is a fault of netassay's node agent"),
            ),
            (
                ControlPlane::Kubernetes,
                Cni::Netassay,
                "pod-restarts",
                Some("cannot be combined with --sandbox-node kubelet"),
            ),
            // The negative controls of third-party enforcers are theirs, not the node's.
            (ControlPlane::Kubernetes, Cni::KubeRouter, "enforcer-stopped", None),
            (ControlPlane::Kubernetes, Cni::Cilium, "enforcement-off", None),
        ];
        for (control_plane, cni, faults, want) in table {
            let options = SandboxOptions {
                control_plane,
                cni,
                faults: faults.parse().unwrap(),
                node: SandboxNode::Kubelet,
                ..SandboxOptions::default()
            };
            refuses_as(&options, want, &format!("{control_plane} {cni} {faults:?}"));
        }
        let with_preset = SandboxOptions {
            control_plane: ControlPlane::Kubernetes,
            preset: Some(Preset::K8tre),
            node: SandboxNode::Kubelet,
            ..SandboxOptions::default()
        };
        refuses_as(
            &with_preset,
            Some("--sandbox-preset k8tre is not available with --sandbox-node kubelet yet"),
            "preset",
        );
    }

    #[test]
    fn preset_faults_need_their_preset() {
        let faults: FaultSet = "k8tre-nodeport,tcp-only".parse().unwrap();
        let without = SandboxOptions {
            faults: faults.clone(),
            ..SandboxOptions::default()
        };
        let err = without.validate().expect_err("no preset");
        assert_eq!(
            err.to_string(),
            "sandbox fault k8tre-nodeport needs --sandbox-preset k8tre"
        );
        let with = SandboxOptions {
            faults,
            preset: Some(Preset::K8tre),
            ..SandboxOptions::default()
        };
        assert!(with.validate().is_ok());
        assert!(SandboxOptions::default().validate().is_ok());
    }

    #[test]
    fn a_scale_needs_the_preset_it_sizes() {
        let scale = Some(PresetScale { projects: 5 });
        let without = SandboxOptions {
            preset_scale: scale,
            ..SandboxOptions::default()
        };
        assert_eq!(
            without.validate().expect_err("no preset").to_string(),
            "--sandbox-scale projects=5 sizes a preset: it needs --sandbox-preset k8tre"
        );
        let with = SandboxOptions {
            preset: Some(Preset::K8tre),
            preset_scale: scale,
            ..SandboxOptions::default()
        };
        assert!(with.validate().is_ok());
    }
}
