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
}

/// The folders a CNI network of one instance owns, all under its instance folder (never the
/// host's `/etc/cni` or `/opt/cni`): removed with the instance, also by the sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniDirs {
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
        }
    }

    /// The conflist's file name and text; `None` for the routed network, which has none.
    pub fn conflist(self, dirs: &CniDirs, bridge: &str) -> Option<(String, Value)> {
        match self {
            PodNetwork::Routed => None,
            PodNetwork::Bridge => {
                Some(("10-bridge.conflist".into(), bridge_conflist(dirs, bridge)))
            }
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
}
