//! The files the real node runs on, as pure functions of the instance's folders: containerd's
//! private configuration (TOML) and the kubelet's configuration (JSON, which the kubelet reads
//! as the YAML subset it is).

use super::dirs::NodeDirs;
use crate::addresses::NODE_ADDRESS;
use crate::system::{CLUSTER_DOMAIN, DNS_SERVICE_IP};
use serde_json::{json, Value};
use std::path::Path;

/// The sysctls a kubelet sets on the whole machine unless they already hold its values
/// (`setupKernelTunables`: `vm.overcommit_memory=1`, `kernel.panic=10`,
/// `kernel.panic_on_oops=1`; the others it wants are the kernel's defaults). None of them is
/// per network namespace, so the sandbox shows the kubelet files with these values over them,
/// in the node's mount namespace only, and the host's stay as they are.
pub const KUBELET_KERNEL_TUNABLES: [(&str, &str); 3] = [
    ("vm/overcommit_memory", "1"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
];

/// A TOML string (basic string, escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_string(p: &Path) -> String {
    toml_string(&p.display().to_string())
}

/// containerd's configuration: its own root, state, temp folder, sockets and `opt` folder under
/// the instance; the CRI plugin with the instance's CNI folders, `sandbox_image` set to the
/// locally imported pause image, pod network namespaces under its state folder, runc with the
/// cgroupfs driver and its state under the instance. Plugins that would probe the host's
/// filesystems (btrfs, zfs, devmapper, aufs) are off.
///
/// `restrict_oom_score_adj`: without `CAP_SYS_RESOURCE` (this machine's root lacks it: bit 24 of
/// `CapEff`), runc cannot lower a container's `oom_score_adj` (the kubelet asks -998 for pod
/// sandboxes; runc's nsexec fails with "failed to update /proc/self/oom_score_adj: Permission
/// denied"); containerd then keeps every score at or above its own, as it does when rootless.
pub fn containerd_toml(dirs: &NodeDirs, pause_image: &str, restrict_oom_score_adj: bool) -> String {
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"# netassay sandbox: one instance's own containerd (--sandbox-node kubelet)
version = 2
root = {root}
state = {state}
temp = {temp}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[{cri}]
  sandbox_image = {pause}
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false
  restrict_oom_score_adj = {restrict_oom_score_adj}
  disable_tcp_service = true
  systemd_cgroup = false
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = {runc_root}

[{cri}.cni]
  bin_dir = {cni_bin}
  conf_dir = {cni_conf}
  max_conf_num = 1

[{cri}.registry]
  config_path = ""
"#,
        root = path_string(&dirs.containerd_root),
        state = path_string(&dirs.containerd_state),
        temp = path_string(&dirs.containerd_temp),
        socket = path_string(&dirs.containerd_socket),
        ttrpc = toml_string(&format!("{}.ttrpc", dirs.containerd_socket.display())),
        opt = path_string(&dirs.containerd_opt),
        pause = toml_string(pause_image),
        restrict_oom_score_adj = restrict_oom_score_adj,
        runc_root = path_string(&dirs.runc_root),
        cni_bin = path_string(&dirs.cni_bin),
        cni_conf = path_string(&dirs.cni_conf),
    )
}

/// Whether this process may lower `oom_score_adj` (`CAP_SYS_RESOURCE` in its effective set).
pub fn can_lower_oom_score() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// The kubelet's settings that depend on the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSettings {
    /// Its port on 127.0.0.1 inside the node's network namespace (relayed to the same port on
    /// the host's loopback, where kube-apiserver reaches it).
    pub port: u16,
    /// The cgroup (relative to every hierarchy's root) it puts pods under; made beforehand.
    pub cgroup_root: String,
    /// The control plane's CA (clients the kubelet trusts: kube-apiserver).
    pub client_ca: String,
    pub tls_cert: String,
    pub tls_key: String,
}

/// The kubelet's configuration: on this host's cgroup v1 (`failCgroupV1: false`) with the
/// cgroupfs driver under the instance's own `cgroupRoot`, swap tolerated, its endpoint on the
/// node's loopback with the control plane's CA and webhook authorization (as kubeadm sets it
/// up), cluster DNS at the sandbox's, pod logs under the instance, no static pods, and no image
/// garbage collection or disk eviction (the node's filesystem is the instance's tmpfs, and the
/// images were imported, not pulled).
pub fn kubelet_config(dirs: &NodeDirs, settings: &KubeletSettings) -> Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": settings.port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "enableServer": true,
        "tlsCertFile": settings.tls_cert,
        "tlsPrivateKeyFile": settings.tls_key,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": settings.client_ca},
        },
        "authorization": {"mode": "Webhook"},
        "failCgroupV1": false,
        "failSwapOn": false,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": true,
        "cgroupRoot": settings.cgroup_root,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": format!("unix://{}", dirs.containerd_socket.display()),
        "imageServiceEndpoint": format!("unix://{}", dirs.containerd_socket.display()),
        "podLogsDir": dirs.pod_logs,
        "resolvConf": dirs.resolv_conf,
        "clusterDNS": [DNS_SERVICE_IP.to_string()],
        "clusterDomain": CLUSTER_DOMAIN,
        "registerNode": true,
        "protectKernelDefaults": false,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "imagefs.available": "0%",
        },
        "serializeImagePulls": false,
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "nodeStatusUpdateFrequency": "10s",
        "kubeAPIQPS": 100,
        "kubeAPIBurst": 200,
        "maxPods": 250,
        "localStorageCapacityIsolation": false,
        "logging": {"format": "text", "verbosity": 1},
    })
}

/// The resolv.conf the kubelet hands pods with `dnsPolicy: Default` and bases cluster DNS
/// pods' search on: the node has no resolver of its own but the cluster's.
pub fn node_resolv_conf() -> String {
    format!("nameserver {DNS_SERVICE_IP}\n")
}

/// The kubelet's command line besides `--config`.
pub fn kubelet_args(dirs: &NodeDirs, node_name: &str, kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--config={}", dirs.kubelet_config.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--root-dir={}", dirs.kubelet_root.display()),
        format!("--cert-dir={}", dirs.kubelet_root.join("pki").display()),
        format!("--hostname-override={node_name}"),
        format!("--node-ip={NODE_ADDRESS}"),
        "--v=1".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> NodeDirs {
        NodeDirs::under(Path::new("/run/netassay/na1234"))
    }

    #[test]
    fn containerd_keeps_everything_under_the_instance() {
        let text = containerd_toml(&dirs(), "registry.k8s.io/pause:3.10", false);
        for line in text.lines() {
            let line = line.trim();
            // Every path it is given is the instance's; none of the host's defaults remain.
            if line.contains("= \"/") {
                assert!(line.contains("\"/run/netassay/na1234/"), "{line}");
            }
        }
        assert!(
            text.contains("netns_mounts_under_state_dir = true"),
            "{text}"
        );
        assert!(text.contains("sandbox_image = \"registry.k8s.io/pause:3.10\""));
        assert!(text.contains("SystemdCgroup = false"));
        assert!(text.contains("bin_dir = \"/run/netassay/na1234/cni/bin\""));
        assert!(text.contains("conf_dir = \"/run/netassay/na1234/cni/net.d\""));
        assert!(!text.contains("/var/lib/containerd") && !text.contains("/opt/"));
        assert!(text.contains("restrict_oom_score_adj = false"));
        let restricted = containerd_toml(&dirs(), "p", true);
        assert!(restricted.contains("restrict_oom_score_adj = true"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn the_kubelet_runs_on_cgroup_v1_with_cgroupfs_under_its_own_root() {
        let c = kubelet_config(
            &dirs(),
            &KubeletSettings {
                port: 10444,
                cgroup_root: "/netassay/na1234/pods".into(),
                client_ca: "/ca.crt".into(),
                tls_cert: "/k.crt".into(),
                tls_key: "/k.key".into(),
            },
        );
        assert_eq!(c["failCgroupV1"], false);
        assert_eq!(c["failSwapOn"], false);
        assert_eq!(c["cgroupDriver"], "cgroupfs");
        assert_eq!(c["cgroupRoot"], "/netassay/na1234/pods");
        assert_eq!(c["address"], "127.0.0.1");
        assert_eq!(c["port"], 10444);
        assert_eq!(
            c["containerRuntimeEndpoint"],
            "unix:///run/netassay/na1234/node/containerd/containerd.sock"
        );
        assert_eq!(c["clusterDNS"][0], "10.96.0.10");
        assert!(c["staticPodPath"].is_null());
    }
}
