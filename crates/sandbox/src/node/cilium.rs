//! Cilium on the reference cluster's node (DESIGN §7c): `cilium-agent` as a native process in
//! the node's network namespace, as Cilium supports outside a DaemonSet.
//!
//! - **Prerequisites the operator would make**: Cilium's CRDs, applied from the pinned module's
//!   YAMLs (the operator cannot be built from the module proxy, and nothing else of it is
//!   needed: IPAM is `kubernetes`, kube-controller-manager gives the Node its podCIDR).
//! - **Identity**: ServiceAccount `cilium` with the chart's ClusterRole and its Role on
//!   kube-system's ConfigMaps, nothing more.
//! - **Containment**: the agent runs in a mount namespace of its own where `/run/cilium` (which
//!   Cilium hard-codes for its sockets and state) is the instance's run folder, its cgroup2 root
//!   is mounted under that run folder, and `/proc/sys/kernel` is read-only (the agent's writes of
//!   global `kernel.*` sysctls are best-effort in Cilium and fail there; the host's values
//!   stay). Its bpffs is the instance's own (mounted in its folder, unmounted with it), so what
//!   it pins outlives the agent as on a real node: a stopped agent leaves its datapath as it
//!   was, which the negative control relies on. Its links, routes and iptables rules are in the
//!   node's namespace, which the sandbox deletes.
//! - **Kube-proxy replacement** (`--sandbox-proxy cilium`): the agent serves Services itself,
//!   which always turns its socket load balancer on. That attaches to a cgroup, and the v2
//!   hierarchy is the whole machine's, so the agent's `--cgroup-root` is the instance's own
//!   empty cgroup bind-mounted there ([`crate::cgroup`]), never the hierarchy's root; with
//!   `--bpf-lb-sock-hostns-only` pods skip the socket hook anyway and are load-balanced per
//!   packet at their veth. Once the agent is up, the root is checked to carry none of its
//!   programs.
//! - **Ready** when `cilium-dbg status --brief` says `OK`.

use super::identity::{identity, install_record, Component, Rbac};
use crate::cni::networks::{CiliumDirs, CILIUM_RUN_MOUNT_POINT};
use crate::reference::{self, ReferenceCluster, ReferenceError};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The agent's process (and component) name.
pub const AGENT: &str = "cilium-agent";
/// What `scripts/reference-cluster/build.sh` builds for Cilium.
pub const BINARIES: [&str; 3] = [AGENT, "cilium-cni", "cilium-dbg"];
/// The image a real install runs (what the environment facts report).
const IMAGE: &str = "quay.io/cilium/cilium:v1.20.2";
/// The agent compiles its datapath with clang at start-up: slow on a busy 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Where Debian's clang-19 keeps the unversioned `clang` that the agent runs.
const LLVM_BIN: &str = "/usr/lib/llvm-19/bin";
/// Where the agent's script mounts the unified hierarchy for a moment (in its own mount
/// namespace, inside its run folder) to bind the instance's cgroup from it.
const CGROUP_STAGING: &str = "/run/cilium/cgroup2-staging";

fn component() -> Component {
    Component {
        binary: AGENT,
        service_account: "cilium",
        // install/kubernetes/cilium/templates/cilium-agent/clusterrole.yaml of v1.20.2.
        rbac: Rbac::Rules(json!([
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces", "services", "pods", "nodes", "secrets"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create", "get", "update", "list", "delete"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
             "verbs": ["list", "watch", "get"]},
            {"apiGroups": ["cilium.io"], "resources": [
                "ciliumloadbalancerippools", "ciliumbgpnodeconfigs", "ciliumbgpadvertisements",
                "ciliumbgppeerconfigs", "ciliumclusterwideenvoyconfigs",
                "ciliumclusterwidenetworkpolicies", "ciliumegressgatewaypolicies",
                "ciliumendpoints", "ciliumendpointslices", "ciliumenvoyconfigs",
                "ciliumidentities", "ciliumlocalredirectpolicies", "ciliumnetworkpolicies",
                "ciliumnodes", "ciliumnodeconfigs", "ciliumcidrgroups",
                "ciliuml2announcementpolicies", "ciliumpodippools", "ciliumdatapathplugins"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumidentities", "ciliumendpoints", "ciliumnodes"],
             "verbs": ["create"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumidentities"], "verbs": ["update"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumendpoints"], "verbs": ["delete", "get"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumnodes", "ciliumnodes/status"],
             "verbs": ["get", "update"]},
            {"apiGroups": ["cilium.io"], "resources": [
                "ciliumendpoints/status", "ciliumendpoints", "ciliuml2announcementpolicies/status",
                "ciliumbgpnodeconfigs/status"],
             "verbs": ["patch"]},
            {"apiGroups": ["policy.networking.k8s.io"], "resources": ["clusternetworkpolicies"],
             "verbs": ["get", "list", "watch"]},
        ])),
        // Not read: the agent's readiness is its own status (see `wait_ready`).
        table: ("ip", "filter"),
        chain: None,
    }
}

/// Applies the CRDs, gives the agent its identity, starts it on `devices` (the node's links)
/// and waits until it reports itself healthy. `kube_proxy_replacement`: the agent serves
/// Services (`--sandbox-proxy cilium`).
pub async fn start(
    client: &kube::Client,
    cluster: &mut ReferenceCluster,
    node_netns: &str,
    node_name: &str,
    devices: &[String],
    enforcement_off: bool,
    kube_proxy_replacement: bool,
) -> Result<(), ReferenceError> {
    let bin = cluster.bin().to_path_buf();
    for crd in crds(&bin.join("cilium-crds"))? {
        reference::create_object(client, crd).await?;
    }
    let c = component();
    let credentials = identity(client, cluster, &c).await?;
    // The chart's Role: the agent reads its ConfigMap in kube-system.
    reference::create_object(
        client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "cilium-config-agent", "namespace": "kube-system"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                          "verbs": ["get", "list", "watch"]}]}),
    )
    .await?;
    reference::create_object(
        client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "cilium-config-agent", "namespace": "kube-system"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "cilium-config-agent"},
               "subjects": [{"kind": "ServiceAccount", "name": "cilium",
                             "namespace": "kube-system"}]}),
    )
    .await?;

    let instance = cluster
        .dir()
        .parent()
        .unwrap_or(cluster.dir())
        .to_path_buf();
    let dirs = CiliumDirs::under(&instance);
    std::fs::create_dir_all(&dirs.run)?;
    std::fs::create_dir_all(CILIUM_RUN_MOUNT_POINT)?;
    std::fs::create_dir_all(&dirs.bpffs)?;
    mount_bpffs(&dirs.bpffs).await?;
    copy_tree(&bin.join("cilium-bpf"), &dirs.lib.join("bpf"))?;
    // The agent's --cgroup-root inside its run folder: the instance's own cgroup is bound there
    // under the kube-proxy replacement (else the agent mounts cgroup2 there itself and only
    // detaches).
    std::fs::create_dir_all(dirs.run.join("cgroupv2"))?;
    std::fs::create_dir_all(dirs.run.join("cgroup2-staging"))?;
    let cgroup = if kube_proxy_replacement {
        let name = instance
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::cgroup::create(&name).map_err(|e| {
            ReferenceError::Unsupported(format!(
                "Cilium's kube-proxy replacement attaches its socket load balancer to a cgroup; \
                 making the instance's own under the unified (cgroup v2) hierarchy failed: {e}"
            ))
        })?;
        Some(crate::cgroup::relative(&name))
    } else {
        None
    };

    let script = agent_script(
        &bin.join(AGENT),
        &dirs,
        &credentials.join("kubeconfig"),
        devices,
        enforcement_off,
        cgroup.as_deref(),
    );
    let path = format!(
        "{LLVM_BIN}:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
    );
    let env = [
        ("K8S_NODE_NAME".to_string(), node_name.to_string()),
        ("PATH".to_string(), path),
    ];
    cluster.spawn_script_in_netns(node_netns, AGENT, &script, &env)?;
    wait_ready(cluster, &bin.join("cilium-dbg"), &dirs).await?;
    if cgroup.is_some() {
        nothing_at_the_cgroup_root(cluster)?;
    }
    let mut mode = String::from("native routing, kubernetes IPAM, eBPF datapath (TCX), ");
    mode.push_str(if cgroup.is_some() {
        "kube-proxy replacement on (socket LB on the host's namespace only, in an empty cgroup; \
         legacy host routing)"
    } else {
        "kube-proxy replacement off"
    });
    if enforcement_off {
        mode.push_str(", policy enforcement never");
    }
    // The chart's DaemonSet name, which is what tells a cluster's CNI.
    install_record(client, &c, "cilium", IMAGE, &mode).await
}

/// Fails when a program of Cilium's (`cil_*`) is attached at the unified hierarchy's root,
/// where it would load-balance the `connect()` of every process on the machine.
fn nothing_at_the_cgroup_root(cluster: &ReferenceCluster) -> Result<(), ReferenceError> {
    let Some(root) = crate::cgroup::unified_root() else {
        return Ok(());
    };
    let attached = crate::cgroup::attached(&root).map_err(|e| {
        ReferenceError::Unsupported(format!(
            "asking the kernel what is attached to the cgroup root {}: {e}",
            root.display()
        ))
    })?;
    let ciliums: Vec<String> = attached
        .iter()
        .filter(|a| a.name.starts_with("cil_"))
        .map(|a| format!("{} (id {}, attach type {})", a.name, a.id, a.attach_type))
        .collect();
    if ciliums.is_empty() {
        Ok(())
    } else {
        Err(cluster.component_error(
            AGENT,
            format!(
                "attached programs at the host's cgroup root {}, which would reach every \
                 process on the machine: {}",
                root.display(),
                ciliums.join(", ")
            ),
        ))
    }
}

/// The agent's command line, as `sh` runs it in the agent's own mount namespace.
fn agent_script(
    agent: &Path,
    dirs: &CiliumDirs,
    kubeconfig: &Path,
    devices: &[String],
    enforcement_off: bool,
    cgroup: Option<&str>,
) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let (pods, bits) = crate::addresses::POD_CIDR;
    let mut args = vec![
        format!("--k8s-kubeconfig-path={}", kubeconfig.display()),
        // What the chart sets; the binary's default is a kvstore.
        "--identity-allocation-mode=crd".into(),
        "--ipam=kubernetes".into(),
        "--routing-mode=native".into(),
        format!("--ipv4-native-routing-cidr={pods}/{bits}"),
        "--enable-ipv4=true".into(),
        "--enable-ipv6=false".into(),
        format!("--kube-proxy-replacement={}", cgroup.is_some()),
        // The node's egress table masquerades pod traffic leaving the cluster.
        "--enable-ipv4-masquerade=false".into(),
        format!("--devices={}", devices.join(",")),
        format!("--bpf-root={}", dirs.bpffs.display()),
        format!("--cgroup-root={CILIUM_RUN_MOUNT_POINT}/cgroupv2"),
        format!("--lib-dir={}", dirs.lib.display()),
        format!("--state-dir={CILIUM_RUN_MOUNT_POINT}"),
        // The DNS proxy (toFQDNs and DNS rules) is the agent's own and needs the L7 proxy on
        // (with it off, the agent drops every policy that has DNS rules, whole). Envoy is
        // started only for HTTP/Kafka rules, CiliumEnvoyConfig, Ingress and Gateway, none of
        // which the sandbox uses, so there is none and its version is not checked.
        "--enable-l7-proxy=true".into(),
        "--disable-envoy-version-check=true".into(),
        "--enable-health-checking=false".into(),
        "--enable-endpoint-health-checking=false".into(),
        "--enable-hubble=true".into(),
        format!("--hubble-socket-path={CILIUM_RUN_MOUNT_POINT}/hubble.sock"),
        // The largest ring Hubble allows (2^16 - 1 flows, default 4095): a failing cell's flows
        // are looked up after its step, when a large step has probed thousands of others since.
        "--hubble-event-buffer-capacity=65535".into(),
        "--cluster-name=default".into(),
        // The sandbox writes the conflist itself (the same one) into the instance's net.d.
        "--write-cni-conf-when-ready=".into(),
        // Inside the node's namespace, on its loopback.
        "--agent-health-port=9879".into(),
    ];
    if enforcement_off {
        // The negative control (`--sandbox-fault enforcement-off`).
        args.push("--enable-policy=never".into());
    }
    let mut bind_cgroup = String::new();
    if let Some(cgroup) = cgroup {
        // The socket load balancer (always on under the replacement) for sockets of the node's
        // namespace only: pods get theirs per packet at their veth.
        args.push("--bpf-lb-sock-hostns-only=true".into());
        // Pod traffic leaving the cluster goes through the node's netfilter, whose egress
        // table masquerades it (as the chart's default, iptables masquerading, does; Cilium
        // then falls back to legacy host routing itself: kpr/initializer/
        // kube_proxy_replacement.go:46-58). BPF host routing would hand it to the node's links
        // past that table, with the pod's address, which the external host cannot answer.
        args.push("--enable-host-legacy-routing=true".into());
        // The instance's empty cgroup as the agent's cgroup root, a cgroup2 mount point (a
        // plain folder would have the agent mount the whole machine's hierarchy over it). The
        // host's /sys/fs/cgroup is not in `ip netns exec`'s mount namespace (it mounts a /sys
        // of its own): the hierarchy is mounted for a moment, in this namespace only, to bind
        // the instance's cgroup out of it.
        bind_cgroup = format!(
            "mount -t cgroup2 cgroup2 {staging}\n\
             mount --bind {staging}/{cgroup} {CILIUM_RUN_MOUNT_POINT}/cgroupv2\n\
             umount {staging}\n",
            staging = CGROUP_STAGING,
            cgroup = quote(cgroup),
        );
    }
    let mut script = format!(
        "set -e\n\
         mount --bind {run} {mount}\n\
         {bind_cgroup}\
         mount --bind /proc/sys/kernel /proc/sys/kernel\n\
         mount -o remount,bind,ro /proc/sys/kernel\n\
         exec {agent}",
        run = quote(&dirs.run.display().to_string()),
        mount = CILIUM_RUN_MOUNT_POINT,
        agent = quote(&agent.display().to_string()),
    );
    for a in &args {
        script.push(' ');
        script.push_str(&quote(a));
    }
    script.push('\n');
    script
}

/// Mounts a bpffs at `at` in the host's mount namespace (see [`CiliumDirs::bpffs`]).
async fn mount_bpffs(at: &Path) -> Result<(), ReferenceError> {
    let out = tokio::process::Command::new("mount")
        .args(["-t", "bpf", "netassay-bpffs"])
        .arg(at)
        .output()
        .await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ReferenceError::Unsupported(format!(
            "mounting a bpffs at {} for the Cilium agent failed: {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Polls the agent's own health until it says OK; fails early when the agent exits.
async fn wait_ready(
    cluster: &ReferenceCluster,
    dbg: &Path,
    dirs: &CiliumDirs,
) -> Result<(), ReferenceError> {
    let started = tokio::time::Instant::now();
    loop {
        if let Some((component, how)) = cluster.exited() {
            return Err(cluster.component_error(&component, format!("exited ({how})")));
        }
        let out = tokio::process::Command::new(dbg)
            .args(["status", "--brief"])
            .env("CILIUM_SOCK", dirs.socket())
            .kill_on_drop(true)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && text == "OK" {
            return Ok(());
        }
        let last = if text.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            text
        };
        if started.elapsed() >= READY_TIMEOUT {
            return Err(cluster.component_error(
                AGENT,
                format!(
                    "not healthy within {}s; `cilium-dbg status --brief` said: {last}",
                    READY_TIMEOUT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Cilium's CRDs (the `v2` and `v2alpha1` folders the build copied from the module).
fn crds(dir: &Path) -> Result<Vec<serde_json::Value>, ReferenceError> {
    let mut out = Vec::new();
    for version in ["v2", "v2alpha1"] {
        let folder = dir.join(version);
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map_err(|e| {
                ReferenceError::Unsupported(format!(
                    "Cilium's CRDs are not in {} ({e}): run scripts/reference-cluster/build.sh",
                    folder.display()
                ))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            let value: serde_json::Value = serde_saphyr::from_str(&text)
                .map_err(|e| ReferenceError::Api(format!("reading {}: {e}", file.display())))?;
            out.push(value);
        }
    }
    Ok(out)
}

/// Copies a folder tree (the datapath sources into the agent's lib folder, which it writes
/// into), files writable by their owner.
fn copy_tree(from: &Path, to: &Path) -> Result<(), ReferenceError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| {
        ReferenceError::Unsupported(format!(
            "Cilium's datapath sources are not in {} ({e}): run scripts/reference-cluster/build.sh",
            from.display()
        ))
    })? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)?.permissions().mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o200))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent's script for instance `na1234` on two links.
    fn script_for(enforcement_off: bool, cgroup: Option<&str>) -> String {
        agent_script(
            Path::new("/bin/cilium-agent"),
            &CiliumDirs::under(Path::new("/run/netassay/na1234")),
            Path::new("/run/netassay/na1234/control-plane/cilium-agent/kubeconfig"),
            &["na1234x".into(), "na1234o".into()],
            enforcement_off,
            cgroup,
        )
    }

    // Everything the agent writes lands in the instance: its run folder is bound over the path
    // Cilium hard-codes, its lib folder and its bpffs are the instance's.
    #[test]
    fn the_agent_runs_contained_in_its_instance() {
        let script = script_for(false, None);
        assert!(script.contains("mount --bind '/run/netassay/na1234/cilium/run' /run/cilium"));
        assert!(script.contains("'--bpf-root=/run/netassay/na1234/cilium/bpffs'"));
        assert!(script.contains("'--lib-dir=/run/netassay/na1234/cilium/lib'"));
        assert!(script.contains("'--devices=na1234x,na1234o'"));
        assert!(script.contains("'--ipam=kubernetes'"));
        assert!(script.contains("'--identity-allocation-mode=crd'"));
        assert!(script.contains("mount -o remount,bind,ro /proc/sys/kernel"));
        assert!(!script.contains("--enable-policy"));
        assert!(script.contains("'--kube-proxy-replacement=false'"));
        assert!(!script.contains("cgroupv2\n"), "{script}");
        // The DNS proxy (toFQDNs, DNS rules) needs the L7 proxy: without it the agent drops
        // every policy with DNS rules, whole. No Envoy, so no version check of one.
        assert!(script.contains("'--enable-l7-proxy=true'"), "{script}");
        assert!(
            script.contains("'--disable-envoy-version-check=true'"),
            "{script}"
        );
        let off = script_for(true, None);
        assert!(off.contains("'--enable-policy=never'"), "{off}");
    }

    // Under the kube-proxy replacement the agent's cgroup root is the instance's own cgroup,
    // bound at the path it is told (so it is a cgroup2 mount point, not a folder it would
    // mount the machine's hierarchy over), and its socket load balancer skips pods.
    #[test]
    fn the_replacement_attaches_in_the_instances_own_cgroup() {
        let script = script_for(false, Some("netassay/na1234"));
        assert!(
            script.contains("'--kube-proxy-replacement=true'"),
            "{script}"
        );
        assert!(
            script.contains("'--bpf-lb-sock-hostns-only=true'"),
            "{script}"
        );
        assert!(
            script.contains("'--enable-host-legacy-routing=true'"),
            "{script}"
        );
        assert!(
            script.contains("'--cgroup-root=/run/cilium/cgroupv2'"),
            "{script}"
        );
        let run = script.find("mount --bind '/run/netassay/na1234/cilium/run' /run/cilium\n");
        let cgroup = script.find(
            "mount -t cgroup2 cgroup2 /run/cilium/cgroup2-staging\n\
             mount --bind /run/cilium/cgroup2-staging/'netassay/na1234' /run/cilium/cgroupv2\n\
             umount /run/cilium/cgroup2-staging\n",
        );
        assert!(
            matches!((run, cgroup), (Some(r), Some(c)) if r < c),
            "the cgroup is bound inside the bound run folder: {script}"
        );
    }
}
