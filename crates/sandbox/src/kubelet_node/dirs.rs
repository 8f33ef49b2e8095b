//! Where the real node keeps its state: every folder and file under the instance's folder.

use std::path::{Path, PathBuf};

/// The real node's folders and files, under the instance's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDirs {
    pub root: PathBuf,
    pub containerd_root: PathBuf,
    pub containerd_state: PathBuf,
    pub containerd_temp: PathBuf,
    pub containerd_opt: PathBuf,
    pub containerd_socket: PathBuf,
    pub containerd_config: PathBuf,
    /// Seen at `/run/containerd` by the node's processes (the shims' sockets).
    pub containerd_run: PathBuf,
    pub runc_root: PathBuf,
    pub kubelet_root: PathBuf,
    pub kubelet_config: PathBuf,
    pub pod_logs: PathBuf,
    pub resolv_conf: PathBuf,
    /// The files shown over the machine-wide sysctls the kubelet would set.
    pub tunables: PathBuf,
    pub cni_bin: PathBuf,
    pub cni_conf: PathBuf,
}

impl NodeDirs {
    pub fn under(instance_dir: &Path) -> NodeDirs {
        let root = instance_dir.join("node");
        let containerd = root.join("containerd");
        let kubelet = root.join("kubelet");
        let cni = crate::cni::networks::CniDirs::under(instance_dir);
        NodeDirs {
            containerd_root: containerd.join("root"),
            containerd_state: containerd.join("state"),
            containerd_temp: containerd.join("tmp"),
            containerd_opt: containerd.join("opt"),
            containerd_socket: containerd.join("containerd.sock"),
            containerd_config: containerd.join("config.toml"),
            containerd_run: containerd.join("run"),
            runc_root: containerd.join("runc"),
            kubelet_root: kubelet.join("root"),
            kubelet_config: kubelet.join("config.json"),
            pod_logs: kubelet.join("pod-logs"),
            resolv_conf: kubelet.join("resolv.conf"),
            tunables: kubelet.join("tunables"),
            cni_bin: cni.bin_dir,
            cni_conf: cni.conf_dir,
            root,
        }
    }
}
