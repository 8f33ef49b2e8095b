//! The real node (`--sandbox-node kubelet`, DESIGN §7c): upstream's kubelet (built by
//! `scripts/reference-cluster/build.sh` from the pinned `k8s.io/kubernetes`), containerd and
//! runc (Debian's) in place of netassay's node agent as the reference cluster's kubelet. Pods
//! then come from netassay's own image, imported from an OCI archive into the instance's own
//! containerd, run by runc under the real securityContext, and get their network from the
//! instance's CNI through containerd's CRI plugin.
//!
//! Containment, which is the point of this module:
//! - containerd and the kubelet run in the node's network namespace (the kubelet's
//!   `KUBE-FIREWALL` and canary chains land there, never in the host's), in one private mount
//!   namespace of their own: every mount they make (the kubelet's bind mount of its root,
//!   overlay root filesystems, `/dev/shm`s, pod network namespaces, which containerd keeps
//!   under its state folder) lives and dies with that namespace, and the host's mount table
//!   never sees them. `/run/containerd`, where containerd's shims put their sockets whatever
//!   the configuration says, is the instance's folder there; so are the three machine-wide
//!   sysctls the kubelet would otherwise set ([`config::KUBELET_KERNEL_TUNABLES`]).
//! - containerd has a private configuration ([`config::containerd_toml`]): its root, state,
//!   sockets, images and runc's state are the instance's.
//! - Every process the node starts (containerd, its shims, the kubelet, every container) is in
//!   the instance's cgroups ([`cgroups`]): stopping the node, or sweeping a dead instance, kills
//!   exactly those tasks and removes the cgroups.
//!
//! The node agent keeps the rest of its role (binding pods, as the sandbox has no scheduler;
//! Services, policies and the add-ons' files, as a CNI agent and kube-proxy do): see
//! [`crate::node::NodeRole`].

pub mod cgroups;
pub mod config;
mod dirs;

pub use dirs::NodeDirs;

use crate::reference::{log_tail, ReferenceCluster, ReferenceError, KUBELET_KUBECONFIG};
use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Which node runs the sandbox's pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxNode {
    /// netassay's node agent: pods are processes in network namespaces; starts in
    /// milliseconds; the only node with fault profiles.
    #[default]
    Netassay,
    /// The real kubelet with containerd and runc, running netassay's image (reference cluster
    /// only).
    Kubelet,
}

impl std::fmt::Display for SandboxNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SandboxNode::Netassay => "netassay",
            SandboxNode::Kubelet => "kubelet",
        })
    }
}

/// The binary the reference-cluster script builds for this node.
pub const KUBELET_BINARY: &str = "kubelet";
/// What the real node runs on the host: (command, Debian package).
pub const HOST_COMMANDS: [(&str, &str); 6] = [
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
];
/// The script that builds the image archives.
pub const IMAGE_SCRIPT: &str = "scripts/image/build.sh";
/// Environment variables that name the archives.
pub const IMAGE_ARCHIVE_ENV: &str = "NETASSAY_IMAGE_ARCHIVE";
pub const PAUSE_ARCHIVE_ENV: &str = "NETASSAY_PAUSE_ARCHIVE";
/// Their default place, under the repository's (or the executable's) `target/`.
const DEFAULT_IMAGE_DIR: &str = "target/image";
const DEFAULT_IMAGE_FILE: &str = "netassay.oci.tar";
const DEFAULT_PAUSE_FILE: &str = "pause.oci.tar";
/// The name the pause image is imported as (containerd's `sandbox_image`): a local name no
/// registry serves, so nothing is ever pulled.
pub const PAUSE_IMAGE: &str = "localhost/netassay-sandbox/pause:local";
/// The name netassay's image is imported as, and the one the sandbox's add-ons run.
pub const NETASSAY_IMAGE: &str = "docker.io/library/netassay:sandbox";
/// How long the kubelet may take to register a Ready Node.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long containerd may take to answer on its socket.
const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(30);

/// The images the real node runs: OCI archives imported into its containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImages {
    /// netassay's image (the static binary at /usr/local/bin/netassay, user 65532).
    pub netassay_archive: PathBuf,
    /// The pause image (the pod sandboxes' container).
    pub pause_archive: PathBuf,
    /// More names for netassay's image: the runs' `--image` (probe pods name it), so no
    /// kubelet ever asks a registry for it.
    pub netassay_names: Vec<String>,
}

impl NodeImages {
    /// The archives named by flags, else by [`IMAGE_ARCHIVE_ENV`] and [`PAUSE_ARCHIVE_ENV`],
    /// else `target/image/` beside the running executable's `target/`, else under the current
    /// directory.
    pub fn locate(netassay: Option<&Path>, pause: Option<&Path>) -> NodeImages {
        let default_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let dir = exe.parent()?.parent()?.join("image");
                dir.is_dir().then_some(dir)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_DIR));
        let pick = |flag: Option<&Path>, env: &str, file: &str| {
            flag.map(Path::to_path_buf)
                .or_else(|| {
                    std::env::var_os(env)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                })
                .unwrap_or_else(|| default_dir.join(file))
        };
        NodeImages {
            netassay_archive: pick(netassay, IMAGE_ARCHIVE_ENV, DEFAULT_IMAGE_FILE),
            pause_archive: pick(pause, PAUSE_ARCHIVE_ENV, DEFAULT_PAUSE_FILE),
            netassay_names: Vec::new(),
        }
    }

    /// Fails with the script to run when an archive is missing.
    pub fn check(&self) -> Result<(), ReferenceError> {
        let missing: Vec<String> = [&self.netassay_archive, &self.pause_archive]
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ReferenceError::Unsupported(format!(
            "--sandbox-node kubelet runs netassay's image, and its OCI archives are missing ({}): build them with `{IMAGE_SCRIPT}`, or name them with --sandbox-image-archive and --sandbox-pause-archive (or {IMAGE_ARCHIVE_ENV} and {PAUSE_ARCHIVE_ENV})",
            missing.join(", ")
        )))
    }
}

/// Where containerd's shims put their sockets, whatever its configuration says; each node's
/// processes see their instance's folder there. On the host it is an empty mount point.
pub const CONTAINERD_RUN_MOUNT_POINT: &str = "/run/containerd";

/// A running real node.
pub struct KubeletNode {
    instance: String,
    dirs: NodeDirs,
    relay: KubeletRelay,
}

/// Where the node runs.
pub struct NodeSite<'a> {
    /// Its network namespace (by its `/run/netns` name).
    pub netns: &'a str,
    /// Its Node's name.
    pub name: &'a str,
    /// The instance's name (its cgroups are named after it).
    pub instance: &'a str,
    /// The instance's folder.
    pub instance_dir: &'a Path,
}

fn io_error(what: &str, e: impl std::fmt::Display) -> ReferenceError {
    ReferenceError::Io(std::io::Error::other(format!("{what}: {e}")))
}

/// A pre-exec step that moves the child into the instance's runtime cgroups (writing `0` to
/// `cgroup.procs` moves the writer): its descendants, containerd's shims and the containers
/// they start before runc places them, stay in the instance's cgroups.
fn join_cgroups(command: &mut Command, procs: &[PathBuf]) -> Result<(), ReferenceError> {
    let paths: Vec<CString> = procs
        .iter()
        .map(|p| CString::new(p.display().to_string()).map_err(|e| io_error("cgroup path", e)))
        .collect::<Result<_, _>>()?;
    // SAFETY: only open/write/close between fork and exec, on strings made before the fork.
    unsafe {
        command.pre_exec(move || {
            for path in &paths {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// The script that prepares the node's private mount namespace and execs containerd.
fn containerd_script(dirs: &NodeDirs) -> String {
    use crate::reference::shell_quote as q;
    let mut script = String::from("set -e\n");
    script.push_str(&format!(
        "mount --bind {} {}\n",
        q(&dirs.containerd_run.display().to_string()),
        q(CONTAINERD_RUN_MOUNT_POINT)
    ));
    for (name, _) in config::KUBELET_KERNEL_TUNABLES {
        script.push_str(&format!(
            "mount --bind {} {}\n",
            q(&dirs
                .tunables
                .join(name.replace('/', "."))
                .display()
                .to_string()),
            q(&format!("/proc/sys/{name}"))
        ));
    }
    script.push_str(&format!(
        "exec containerd --config {}\n",
        q(&dirs.containerd_config.display().to_string())
    ));
    script
}

/// `ctr` against the node's containerd, in containerd's Kubernetes namespace.
fn ctr(dirs: &NodeDirs, args: &[&str]) -> Result<String, String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(&dirs.containerd_socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .map_err(|e| format!("ctr {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ctr {}: {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl KubeletNode {
    /// Starts containerd and the kubelet for `site`, imports the images, and waits until the
    /// kubelet has registered a Ready Node.
    pub async fn start(
        cluster: &mut ReferenceCluster,
        site: &NodeSite<'_>,
        images: &NodeImages,
    ) -> Result<KubeletNode, ReferenceError> {
        crate::reference::check_binaries(cluster.bin(), &[KUBELET_BINARY])?;
        images.check()?;
        let dirs = NodeDirs::under(site.instance_dir);
        for dir in [
            &dirs.containerd_root,
            &dirs.containerd_state,
            &dirs.containerd_temp,
            &dirs.containerd_opt,
            &dirs.containerd_run,
            &dirs.runc_root,
            &dirs.kubelet_root,
            &dirs.pod_logs,
            &dirs.tunables,
        ] {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::create_dir_all(CONTAINERD_RUN_MOUNT_POINT)?;
        for (name, value) in config::KUBELET_KERNEL_TUNABLES {
            std::fs::write(
                dirs.tunables.join(name.replace('/', ".")),
                format!("{value}\n"),
            )?;
        }
        std::fs::write(
            &dirs.containerd_config,
            config::containerd_toml(&dirs, PAUSE_IMAGE, !config::can_lower_oom_score()),
        )?;
        let procs = cgroups::create(site.instance)?;
        let relay_port = crate::reference::free_port()?;
        let node = KubeletNode {
            instance: site.instance.to_string(),
            dirs: dirs.clone(),
            relay: KubeletRelay::start(site.netns, relay_port)?,
        };
        // From here on, a failure stops what started.
        match node
            .bring_up(cluster, site, images, &procs, relay_port)
            .await
        {
            Ok(()) => Ok(node),
            Err(e) => {
                node.stop(cluster).await;
                Err(e)
            }
        }
    }

    async fn bring_up(
        &self,
        cluster: &mut ReferenceCluster,
        site: &NodeSite<'_>,
        images: &NodeImages,
        procs: &[PathBuf],
        port: u16,
    ) -> Result<(), ReferenceError> {
        let dirs = &self.dirs;
        let netns = format!("/run/netns/{}", site.netns);
        let mut containerd = Command::new("nsenter");
        containerd
            .arg(format!("--net={netns}"))
            .args(["--", "unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &containerd_script(dirs)]);
        join_cgroups(&mut containerd, procs)?;
        let containerd_pid = cluster.spawn_command("containerd", containerd)?;
        self.wait_for_containerd(cluster).await?;
        self.import_images(images).await?;

        let control_plane = cluster.dir().to_path_buf();
        let settings = config::KubeletSettings {
            port,
            cgroup_root: cgroups::pods_root(site.instance),
            client_ca: control_plane.join("ca.crt").display().to_string(),
            tls_cert: control_plane
                .join("kubelet-serving.crt")
                .display()
                .to_string(),
            tls_key: control_plane
                .join("kubelet-serving.key")
                .display()
                .to_string(),
        };
        std::fs::write(
            &dirs.kubelet_config,
            serde_json::to_string_pretty(&config::kubelet_config(dirs, &settings))
                .map_err(|e| io_error("the kubelet's configuration", e))?,
        )?;
        std::fs::write(&dirs.resolv_conf, config::node_resolv_conf())?;
        let mut kubelet = Command::new("nsenter");
        kubelet
            .arg(format!("--net={netns}"))
            .arg(format!("--mount=/proc/{containerd_pid}/ns/mnt"))
            .arg("--")
            .arg(cluster.bin().join(KUBELET_BINARY))
            .args(config::kubelet_args(
                dirs,
                site.name,
                &control_plane.join(KUBELET_KUBECONFIG),
            ));
        join_cgroups(&mut kubelet, procs)?;
        cluster.spawn_command("kubelet", kubelet)?;
        self.wait_for_ready_node(cluster, site.name).await
    }

    async fn wait_for_containerd(&self, cluster: &ReferenceCluster) -> Result<(), ReferenceError> {
        let deadline = tokio::time::Instant::now() + CONTAINERD_TIMEOUT;
        loop {
            if let Some((component, how)) = cluster.exited() {
                return Err(cluster.component_error(&component, format!("exited ({how})")));
            }
            let dirs = self.dirs.clone();
            let answer = tokio::task::spawn_blocking(move || ctr(&dirs, &["version"]))
                .await
                .map_err(|e| io_error("ctr", e))?;
            match answer {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(cluster.component_error(
                        "containerd",
                        format!("did not answer within {CONTAINERD_TIMEOUT:?} ({e})"),
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `ctr images import` of both archives (each kept under a name of ours, which CRI then
    /// finds locally), and the netassay image tagged with every name pods use.
    async fn import_images(&self, images: &NodeImages) -> Result<(), ReferenceError> {
        let dirs = self.dirs.clone();
        let images = images.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            for (archive, name) in [
                (&images.pause_archive, PAUSE_IMAGE),
                (&images.netassay_archive, NETASSAY_IMAGE),
            ] {
                let file = archive.display().to_string();
                ctr(&dirs, &["images", "import", "--index-name", name, &file])?;
            }
            for name in &images.netassay_names {
                if name != NETASSAY_IMAGE {
                    ctr(&dirs, &["images", "tag", "--force", NETASSAY_IMAGE, name])?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| io_error("importing the images", e))?
        .map_err(|e| ReferenceError::Api(format!("importing the node's images: {e}")))
    }

    async fn wait_for_ready_node(
        &self,
        cluster: &ReferenceCluster,
        name: &str,
    ) -> Result<(), ReferenceError> {
        use k8s_openapi::api::core::v1::Node;
        let client = cluster.admin_client().await?;
        let nodes: kube::Api<Node> = kube::Api::all(client);
        let deadline = tokio::time::Instant::now() + NODE_READY_TIMEOUT;
        let mut last = String::from("no Node yet");
        loop {
            if let Some((component, how)) = cluster.exited() {
                return Err(cluster.component_error(&component, format!("exited ({how})")));
            }
            match nodes.get_opt(name).await {
                Ok(Some(node)) => {
                    let ready = node
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
                    match ready {
                        Some(c) if c.status == "True" => return Ok(()),
                        Some(c) => {
                            last = format!(
                                "Ready={} ({})",
                                c.status,
                                c.message.clone().unwrap_or_default()
                            )
                        }
                        None => last = "no Ready condition yet".into(),
                    }
                }
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(cluster.component_error(
                    "kubelet",
                    format!(
                        "did not report Node {name} Ready within {NODE_READY_TIMEOUT:?}: {last}"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// containerd's socket (for `ctr` and `crictl`).
    pub fn containerd_socket(&self) -> &Path {
        &self.dirs.containerd_socket
    }

    /// Stops the kubelet and containerd, kills whatever is left in the instance's cgroups
    /// (shims, containers) and removes the cgroups; the private mount namespace goes with its
    /// last process.
    pub async fn stop(self, cluster: &mut ReferenceCluster) {
        for component in ["kubelet", "containerd"] {
            let _ = cluster.stop_component(component);
        }
        self.relay.stop();
        let instance = self.instance.clone();
        let removed = tokio::task::spawn_blocking(move || cgroups::kill_and_remove(&instance))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = removed {
            eprintln!("netassay sandbox: cleanup incomplete: the node's cgroups: {e}");
        }
        if let Err(e) = release_containerd_mount_point(
            self.dirs
                .root
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/")),
            &self.instance,
        ) {
            eprintln!("netassay sandbox: cleanup incomplete: {CONTAINERD_RUN_MOUNT_POINT}: {e}");
        }
    }
}

/// What a dead instance's real node left: the tasks in its cgroups (its shims and containers
/// outlive containerd and the kubelet), and the cgroups. For the sweep.
pub fn remove_leftovers(state_dir: &Path, instance: &str) -> std::io::Result<()> {
    cgroups::kill_and_remove(instance)?;
    release_containerd_mount_point(state_dir, instance)
}

/// Removes the empty mount point [`CONTAINERD_RUN_MOUNT_POINT`] once no instance in
/// `state_dir` but `leaving` runs a real node. A folder someone else filled (a containerd of
/// the host's) is left alone: only an empty one is removed.
fn release_containerd_mount_point(state_dir: &Path, leaving: &str) -> std::io::Result<()> {
    let in_use = std::fs::read_dir(state_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy() != leaving)
                .any(|e| e.path().join("node").join("containerd").is_dir())
        })
        .unwrap_or(false);
    if in_use {
        return Ok(());
    }
    match std::fs::remove_dir(CONTAINERD_RUN_MOUNT_POINT) {
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// The kubelet's endpoint as kube-apiserver reaches it: a TCP relay from `127.0.0.1:<port>`
/// on the host to the same port inside the node's network namespace, where the kubelet
/// listens. TLS passes through untouched.
struct KubeletRelay {
    task: tokio::task::JoinHandle<()>,
}

/// Connects to `addr` from inside network namespace `netns`; the socket stays there.
fn connect_in(netns: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    crate::netns_socket::in_netns(netns, || {
        let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
}

impl KubeletRelay {
    fn start(netns: &str, port: u16) -> std::io::Result<KubeletRelay> {
        let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let netns = netns.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let netns = netns.clone();
                tokio::spawn(async move {
                    let connected =
                        tokio::task::spawn_blocking(move || connect_in(&netns, addr)).await;
                    if let Ok(Ok(stream)) = connected {
                        if let Ok(mut outbound) = tokio::net::TcpStream::from_std(stream) {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }
                });
            }
        });
        Ok(KubeletRelay { task })
    }

    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for KubeletRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The end of the node's component logs, for errors.
pub fn logs_tail(cluster: &ReferenceCluster) -> String {
    ["containerd", "kubelet"]
        .iter()
        .map(|c| {
            let log = cluster.dir().join(format!("{c}.log"));
            format!("{c}:\n{}", log_tail(&log, 10))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sandbox's add-on pods (cluster DNS) as the real kubelet runs them: netassay's image,
/// the instance's folder (where the dataplane writes the zone on every change) mounted
/// read-only at the same path, so the command line stays the node agent's; the unprivileged
/// ports sysctl, since the image runs as 65532 and DNS listens on 53; and a readiness probe on
/// its first TCP port, so Ready means serving (the node agent checks that itself).
pub fn run_add_ons_from_the_image(objects: &mut [crate::object::Object], instance_dir: &Path) {
    use k8s_openapi::api::core::v1::{
        HostPathVolumeSource, PodSecurityContext, Probe, Sysctl, TCPSocketAction, Volume,
        VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    const FILES: &str = "sandbox-files";
    let path = instance_dir.display().to_string();
    for object in objects.iter_mut() {
        let crate::object::Object::Pod(pod) = object else {
            continue;
        };
        let Some(spec) = pod.spec.as_mut() else {
            continue;
        };
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: FILES.into(),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("Directory".into()),
            }),
            ..Volume::default()
        });
        spec.security_context
            .get_or_insert_with(PodSecurityContext::default)
            .sysctls
            .get_or_insert_with(Vec::new)
            .push(Sysctl {
                name: "net.ipv4.ip_unprivileged_port_start".into(),
                value: "0".into(),
            });
        for container in spec.containers.iter_mut() {
            container.image = Some(NETASSAY_IMAGE.into());
            container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: FILES.into(),
                    mount_path: path.clone(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            let tcp_port = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.protocol.as_deref() == Some("TCP"))
                .map(|p| p.container_port);
            if let Some(port) = tcp_port {
                container.readiness_probe = Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(port),
                        ..TCPSocketAction::default()
                    }),
                    period_seconds: Some(1),
                    ..Probe::default()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_lives_in_the_instance_folder() {
        let dirs = NodeDirs::under(Path::new("/run/netassay/na1234"));
        assert_eq!(
            dirs.containerd_socket,
            PathBuf::from("/run/netassay/na1234/node/containerd/containerd.sock")
        );
        assert_eq!(
            dirs.cni_conf,
            PathBuf::from("/run/netassay/na1234/cni/net.d")
        );
        // A unix socket path must fit in sun_path (108 bytes) with its ".ttrpc" twin.
        assert!(dirs.containerd_socket.display().to_string().len() + 6 < 108);
    }

    #[test]
    fn the_containerd_script_contains_the_mounts_and_quotes_paths() {
        let dirs = NodeDirs::under(Path::new("/run/netassay/na 1"));
        let s = containerd_script(&dirs);
        assert!(
            s.contains("mount --bind '/run/netassay/na 1/node/containerd/run' '/run/containerd'"),
            "{s}"
        );
        assert!(s.contains("'/proc/sys/vm/overcommit_memory'"), "{s}");
        assert!(s.ends_with(
            "exec containerd --config '/run/netassay/na 1/node/containerd/config.toml'\n"
        ));
    }

    #[test]
    fn the_dns_add_on_runs_from_the_image_with_its_zone_mounted() {
        let mut objects = crate::system::dns_objects(Path::new("/run/netassay/na1/cluster.zone"));
        run_add_ons_from_the_image(&mut objects, Path::new("/run/netassay/na1"));
        let pod = objects
            .iter()
            .find_map(|o| match o {
                crate::object::Object::Pod(p) => Some(p),
                _ => None,
            })
            .unwrap();
        let spec = pod.spec.as_ref().unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some(NETASSAY_IMAGE));
        let mount = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, "/run/netassay/na1");
        assert_eq!(mount.read_only, Some(true));
        assert!(c.readiness_probe.is_some());
        let sysctls = spec
            .security_context
            .as_ref()
            .unwrap()
            .sysctls
            .as_ref()
            .unwrap();
        assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
    }

    #[test]
    fn missing_archives_name_the_image_script() {
        let images = NodeImages {
            netassay_archive: PathBuf::from("/nonexistent/netassay.oci.tar"),
            pause_archive: PathBuf::from("/nonexistent/pause.oci.tar"),
            netassay_names: Vec::new(),
        };
        let text = images.check().unwrap_err().to_string();
        assert!(text.contains(IMAGE_SCRIPT), "{text}");
        assert!(text.contains("/nonexistent/pause.oci.tar"), "{text}");
    }
}
