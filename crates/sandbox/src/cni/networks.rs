//! The pod networks the sandbox offers, and the files and folders a CNI network of one
//! instance owns. A third-party CNI is a conflist and the plugin binaries it names; which
//! process enforces policy on top of it is the node components' business, not the network's.

use crate::addresses::POD_CIDR;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where Debian's `containernetworking-plugins` (and most distributions) put CNI plugins.
pub const PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// The Debian package with bridge, host-local and loopback.
pub const PLUGIN_PACKAGE: &str = "containernetworking-plugins";

/// How pods get their network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PodNetwork {
    /// netassay's own: a veth per pod routed as a /32 from the node (Calico-style), no CNI.
    #[default]
    Routed,
    /// The reference CNI plugins: `bridge` (the node's bridge is the pods' gateway, hairpin on
    /// for a pod that reaches itself through a Service) with `host-local` IPAM over the pod
    /// range.
    Bridge,
    /// Cilium's own plugin (`cilium-cni`): a veth per pod handed to the Cilium agent, which
    /// attaches its eBPF datapath and allocates the address from the Node's podCIDR
    /// (`--ipam=kubernetes`). The plugin comes from the reference cluster's bin folder and
    /// talks to the instance's agent (see [`CiliumDirs`]).
    Cilium,
}

/// The folders of one instance's Cilium agent, under its instance folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiliumDirs {
    /// Bind-mounted over `/run/cilium` for the agent and for each `cilium-cni` invocation (in
    /// their own mount namespaces): the agent's API, monitor and Hubble sockets, its state and
    /// the plugin's delete queue land here, whatever paths Cilium hard-codes.
    pub run: PathBuf,
    /// `--lib-dir`: the datapath sources the agent compiles (and writes probed headers into).
    pub lib: PathBuf,
    /// `--bpf-root`: a bpffs of the instance's own, mounted in the host's mount namespace so
    /// that what the agent pins (programs, links, maps) outlives the agent as it does on a
    /// real node, where bpffs is the host's: a stopped agent leaves its datapath as it was.
    /// Unmounted with the instance ([`unmount_cilium_bpffs`]).
    pub bpffs: PathBuf,
}

impl CiliumDirs {
    pub fn under(instance_dir: &Path) -> CiliumDirs {
        let root = instance_dir.join("cilium");
        CiliumDirs {
            run: root.join("run"),
            lib: root.join("lib"),
            bpffs: root.join("bpffs"),
        }
    }

    /// The agent's API socket, as seen from the host.
    pub fn socket(&self) -> PathBuf {
        self.run.join("cilium.sock")
    }

    /// The plugin's own log (its default is the host's `/var/run/cilium/cilium-cni.log`).
    pub fn plugin_log(&self) -> PathBuf {
        self.run.join("cilium-cni.log")
    }
}

/// Where Cilium hard-codes its runtime folder; each agent and plugin invocation sees its
/// instance's [`CiliumDirs::run`] there, in a mount namespace of its own. On the host it is an
/// empty mount point.
pub const CILIUM_RUN_MOUNT_POINT: &str = "/run/cilium";

/// Unmounts the instance's bpffs ([`CiliumDirs::bpffs`]) if it is mounted: the kernel then
/// frees what the agent pinned there. Only that exact mount point is touched.
pub fn unmount_cilium_bpffs(instance_dir: &Path) -> std::io::Result<()> {
    let bpffs = CiliumDirs::under(instance_dir).bpffs;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let target = bpffs.display().to_string();
    // mountinfo's fifth field is the mount point (spaces escaped as \040).
    let mounted = mounts.lines().filter(|line| {
        line.split(' ').nth(4).map(|p| p.replace("\\040", " ")) == Some(target.clone())
    });
    for _ in mounted {
        let status = std::process::Command::new("umount").arg(&bpffs).status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("umount {target}: {status}")));
        }
    }
    Ok(())
}

/// Removes the empty mount point [`CILIUM_RUN_MOUNT_POINT`] once no instance in `state_dir`
/// runs Cilium any more (an instance's folder has `cilium/` while it does). A folder someone
/// else filled is left alone: only an empty one is removed.
pub fn release_cilium_mount_point(state_dir: &Path) -> std::io::Result<()> {
    let in_use = std::fs::read_dir(state_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().join("cilium").is_dir())
        })
        .unwrap_or(false);
    if in_use {
        return Ok(());
    }
    match std::fs::remove_dir(CILIUM_RUN_MOUNT_POINT) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The `cilium-cni` that the Cilium network's bin folder holds: a script that runs the real
/// plugin in a mount namespace of its own where `/run/cilium` is the instance's run folder, so
/// the plugin reaches this instance's agent, and its log and delete queue stay in the instance.
pub fn cilium_plugin_script(plugin: &Path, dirs: &CiliumDirs) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    format!(
        "#!/bin/sh
         # netassay sandbox: Cilium's CNI plugin, talking to this instance's agent.
         exec unshare --mount --propagation private sh -c 'mount --bind \"$0\" {mount} && exec \"$1\"' {run} {plugin}
",
        mount = CILIUM_RUN_MOUNT_POINT,
        run = quote(&dirs.run),
        plugin = quote(plugin),
    )
}

/// The folders a CNI network of one instance owns, all under its instance folder (never the
/// host's `/etc/cni` or `/opt/cni`): removed with the instance, also by the sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniDirs {
    /// The instance folder they are under.
    pub instance: PathBuf,
    /// The conflists (`--cni-conf-dir`).
    pub conf_dir: PathBuf,
    /// `CNI_PATH`: links to the plugin binaries the conflist names.
    pub bin_dir: PathBuf,
    /// host-local's allocations.
    pub ipam_dir: PathBuf,
}

impl CniDirs {
    pub fn under(instance_dir: &Path) -> CniDirs {
        let root = instance_dir.join("cni");
        CniDirs {
            instance: instance_dir.to_path_buf(),
            conf_dir: root.join("net.d"),
            bin_dir: root.join("bin"),
            ipam_dir: root.join("ipam"),
        }
    }
}

impl PodNetwork {
    /// The plugin binaries the conflist names (looked up in [`PLUGIN_DIRS`]); loopback is
    /// always one, for every pod's `lo`.
    pub fn plugins(self) -> &'static [&'static str] {
        match self {
            PodNetwork::Routed => &[],
            PodNetwork::Bridge => &["bridge", "host-local", "loopback"],
            PodNetwork::Cilium => &["loopback"],
        }
    }

    /// The conflist's file name and text; `None` for the routed network, which has none.
    pub fn conflist(self, dirs: &CniDirs, bridge: &str) -> Option<(String, Value)> {
        match self {
            PodNetwork::Routed => None,
            PodNetwork::Bridge => {
                Some(("10-bridge.conflist".into(), bridge_conflist(dirs, bridge)))
            }
            PodNetwork::Cilium => Some(("05-cilium.conflist".into(), cilium_conflist(dirs))),
        }
    }

    /// Whether pods get their network through CNI.
    pub fn is_cni(self) -> bool {
        self != PodNetwork::Routed
    }
}

/// The plain baseline: what containerd's example conflist and kubeadm's "bridge" docs set up.
fn bridge_conflist(dirs: &CniDirs, bridge: &str) -> Value {
    let (base, bits) = POD_CIDR;
    json!({
        "cniVersion": "1.0.0",
        "name": "netassay-bridge",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            // Pod traffic leaving the cluster is masqueraded by the node's egress table.
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{base}/{bits}")}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": dirs.ipam_dir,
            }
        }]
    })
}

/// What the agent itself writes with `--write-cni-conf-when-ready` (Cilium's chart default),
/// with the plugin's log kept in the instance.
fn cilium_conflist(dirs: &CniDirs) -> Value {
    let cilium = CiliumDirs::under(&dirs.instance);
    json!({
        "cniVersion": "1.0.0",
        "name": "cilium",
        "plugins": [{
            "type": "cilium-cni",
            "enable-debug": false,
            "log-file": cilium.plugin_log(),
        }]
    })
}

/// The network every pod's `lo` is brought up with, as containerd does before the pod network.
pub fn loopback_conflist() -> Value {
    json!({"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]})
}

/// Where plugin `name` is installed on this host, if it is.
pub fn locate_plugin(name: &str) -> Option<PathBuf> {
    PLUGIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The reference plugins' project and version (`containernetworking-plugins`, `1.1.1`): the
/// version the `bridge` binary prints, else the Debian package's; `unknown` when neither says.
pub fn plugins_version() -> (&'static str, String) {
    let printed = locate_plugin("bridge").and_then(|bridge| {
        let out = std::process::Command::new(bridge)
            .env_remove("CNI_COMMAND")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find_map(|l| l.strip_prefix("CNI bridge plugin "))
            .map(|v| v.trim().trim_start_matches("version").trim().to_string())
            .filter(|v| !v.is_empty() && v != "unknown")
    });
    let packaged = || {
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", PLUGIN_PACKAGE])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        // 1.1.1+ds1-3+b5 -> 1.1.1
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let upstream = text.split(['+', '-', '~']).next()?.trim().to_string();
        (!upstream.is_empty()).then_some(upstream)
    };
    let version = printed
        .or_else(packaged)
        .map(|v| format!("v{}", v.trim_start_matches('v')))
        .unwrap_or_else(|| "unknown".into());
    (PLUGIN_PACKAGE, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cni_folder_is_the_instances_own() {
        let dirs = CniDirs::under(Path::new("/run/netassay/na1234"));
        for dir in [&dirs.conf_dir, &dirs.bin_dir, &dirs.ipam_dir] {
            assert!(
                dir.starts_with("/run/netassay/na1234/cni"),
                "{}",
                dir.display()
            );
        }
    }

    #[test]
    fn the_bridge_conflist_names_its_bridge_the_pod_range_and_the_instances_ipam_folder() {
        let dirs = CniDirs::under(Path::new("/run/netassay/na1234"));
        let (file, conflist) = PodNetwork::Bridge.conflist(&dirs, "na1234br").unwrap();
        assert_eq!(file, "10-bridge.conflist");
        let plugin = &conflist["plugins"][0];
        assert_eq!(plugin["type"], "bridge");
        assert_eq!(plugin["bridge"], "na1234br");
        assert_eq!(plugin["hairpinMode"], true);
        assert_eq!(plugin["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/16");
        assert_eq!(plugin["ipam"]["dataDir"], "/run/netassay/na1234/cni/ipam");
        // Every plugin the conflist names is one the network links into its bin folder.
        let named = ["bridge", "host-local"];
        assert!(named
            .iter()
            .all(|p| PodNetwork::Bridge.plugins().contains(p)));
        assert!(PodNetwork::Routed.conflist(&dirs, "x").is_none());
    }

    // Cilium's conflist is the one its agent writes, with the plugin's log in the instance;
    // the plugin in the bin folder is a script that binds the instance's run folder over
    // /run/cilium before running the real plugin, so it reaches this instance's agent.
    #[test]
    fn the_cilium_network_reaches_its_own_instances_agent() {
        let dirs = CniDirs::under(Path::new("/run/netassay/na1234"));
        let (file, conflist) = PodNetwork::Cilium.conflist(&dirs, "unused").unwrap();
        assert_eq!(file, "05-cilium.conflist");
        assert_eq!(conflist["plugins"][0]["type"], "cilium-cni");
        assert_eq!(
            conflist["plugins"][0]["log-file"],
            "/run/netassay/na1234/cilium/run/cilium-cni.log"
        );
        assert_eq!(PodNetwork::Cilium.plugins(), ["loopback"]);
        let cilium = CiliumDirs::under(&dirs.instance);
        assert_eq!(
            cilium.socket(),
            Path::new("/run/netassay/na1234/cilium/run/cilium.sock")
        );
        let script = cilium_plugin_script(Path::new("/opt/it's/cilium-cni"), &cilium);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.contains("unshare --mount --propagation private"),
            "{script}"
        );
        assert!(
            script.contains(r"'/run/netassay/na1234/cilium/run' '/opt/it'\''s/cilium-cni'"),
            "{script}"
        );
    }

    // The host's /run/cilium mount point goes once no instance runs Cilium, and never while
    // one does; a folder with something in it is not ours to remove.
    #[test]
    fn the_cilium_mount_point_is_released_only_when_no_instance_uses_it() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("na1/cilium")).unwrap();
        let before = Path::new(CILIUM_RUN_MOUNT_POINT).exists();
        // In use: nothing happens whatever the host has.
        release_cilium_mount_point(state.path()).unwrap();
        assert_eq!(Path::new(CILIUM_RUN_MOUNT_POINT).exists(), before);
    }
}
