//! `--sandbox-node kubelet`: the real kubelet, containerd and runc as the reference cluster's
//! node (DESIGN §7c).
//! - a probe pod built by netassay's one manifest builder runs from netassay's image (its
//!   containerd knows the image under the pod's name and no other source), as user 65532;
//! - Pod Security `restricted` is enforced on netassay's namespaces: a privileged pod is refused;
//! - the kubelet's chains land in the node's network namespace, never the host's, and the
//!   machine-wide sysctls it would set stay as they are;
//! - stopping the sandbox leaves nothing: processes (containerd, its shims, the kubelet, every
//!   container), cgroups, mounts, the instance's folder with containerd's state;
//! - a killed owner's node is removed by the next sweep (`netassay sandbox down`).
//!
//! Needs root, the reference cluster's binaries with the kubelet
//! (scripts/reference-cluster/build.sh), containerd and runc (Debian), and the image archives
//! (scripts/image/build.sh). Without them each test says so and passes, unless `CI` is set.

mod run_common;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::PostParams;
use kube::Api;
use netassay::cluster::manifest;
use netassay_core::model::Topology;
use netassay_sandbox::kubelet_node::{
    cgroups, NodeImages, SandboxNode, KUBELET_BINARY, NETASSAY_IMAGE,
};
use netassay_sandbox::processes::process_start_time;
use netassay_sandbox::reference;
use netassay_sandbox::{ControlPlane, Sandbox, SandboxOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NETASSAY: &str = env!("CARGO_BIN_EXE_netassay");
/// The image name probe pods give (`run --image`'s default is a registry's; the node must not
/// need one).
const PROBE_IMAGE: &str = "ghcr.io/netassay/netassay:latest";

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        "the kubelet-node tests need root".to_string()
    } else if let Err(e) = reference::check_binaries(&reference::bin_dir(None), &[KUBELET_BINARY]) {
        e.to_string()
    } else if let Err(e) = NodeImages::locate(None, None).check() {
        e.to_string()
    } else if Command::new("containerd")
        .arg("--version")
        .output()
        .is_err()
    {
        "containerd is not installed (apt-get install containerd runc)".to_string()
    } else {
        return true;
    };
    assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
    eprintln!("skipped: {why}");
    false
}

/// Where an instance's traces would be: its folder, its cgroups in every hierarchy, host
/// mounts under its folder, and its network namespaces.
fn traces(instance: &str) -> Vec<String> {
    let mut found = Vec::new();
    let dir = Path::new("/run/netassay").join(instance);
    if dir.exists() {
        found.push(format!("folder {}", dir.display()));
    }
    for hierarchy in cgroups::hierarchies().expect("cgroup hierarchies") {
        let cgroup = cgroups::instance_cgroup(&hierarchy, instance);
        if cgroup.exists() {
            found.push(format!("cgroup {}", cgroup.display()));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&format!("/{instance}")))
            .map(|l| format!("mount {l}")),
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    found.extend(
        String::from_utf8_lossy(&netns.stdout)
            .lines()
            .filter(|l| l.starts_with(instance))
            .map(|l| format!("netns {l}")),
    );
    found
}

/// Processes by pid and start time (a pid the machine reuses meanwhile is another process).
fn identify(pids: &[u32]) -> Vec<(u32, u64)> {
    pids.iter()
        .filter_map(|p| Some((*p, process_start_time(*p)?)))
        .collect()
}

/// Those of `processes` that still run: a killed process whose parent (containerd's shim,
/// itself killed) has not been reaped yet is a zombie, which holds nothing but its pid.
fn alive(processes: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let zombie = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
                Some(state == "Z")
            })
            .unwrap_or(true)
    };
    processes
        .iter()
        .copied()
        .filter(|(p, start)| process_start_time(*p) == Some(*start) && !zombie(*p))
        .collect()
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn host_sysctls() -> Vec<String> {
    [
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
    ]
    .iter()
    .map(|s| std::fs::read_to_string(format!("/proc/sys/{s}")).unwrap_or_default())
    .collect()
}

fn host_iptables() -> String {
    let out = Command::new("iptables-save").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubelet_node_runs_the_image_as_65532_under_pod_security_and_leaves_nothing() {
    if !usable() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sysctls_before = host_sysctls();
    let mut images = NodeImages::locate(None, None);
    images.netassay_names.push(PROBE_IMAGE.to_string());
    let options = SandboxOptions {
        control_plane: ControlPlane::Kubernetes,
        node: SandboxNode::Kubelet,
        node_images: Some(images),
        ..SandboxOptions::default()
    };
    let started = Instant::now();
    let sandbox = Sandbox::start_with_executable(options, NETASSAY.into())
        .await
        .expect("the kubelet sandbox starts");
    eprintln!("a kubelet node started in {:?}", started.elapsed());
    let instance = sandbox.instance().to_string();
    let socket = sandbox
        .containerd_socket()
        .expect("the node's containerd")
        .to_path_buf();

    // The kubelet's chains are the node's, and the host's sysctls are the host's.
    let node_rules = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{instance}-node"),
            "iptables-save",
        ])
        .output()
        .expect("iptables-save in the node");
    let node_rules = String::from_utf8_lossy(&node_rules.stdout);
    assert!(node_rules.contains("KUBE-FIREWALL"), "{node_rules}");
    assert!(
        !host_iptables().contains("KUBE-KUBELET-CANARY"),
        "the kubelet's canary chain is in the host's iptables"
    );
    assert_eq!(host_sysctls(), sysctls_before, "the host's sysctls changed");

    // A probe pod of netassay's own builder, in a namespace of its own builder.
    let admin = run_common::kube_client(sandbox.admin_kubeconfig()).await;
    let run = "kubelet-test";
    let topology = Topology::standard();
    let fixture = manifest::FixtureOptions {
        image: PROBE_IMAGE.into(),
        image_pull_secret: None,
        node_selector: Default::default(),
        expires: "2099-01-01T00:00:00Z".into(),
    };
    let ns_name = "netassay-kubelet-test-x";
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &manifest::namespace(ns_name, &topology.namespaces[0], run, &fixture),
        )
        .await
        .expect("the namespace");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns_name);
    let probe_pod = manifest::pod(ns_name, &topology.pods[0], run, &fixture);
    let name = probe_pod.metadata.name.clone().expect("a name");
    // kube-controller-manager makes the namespace's ServiceAccount first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match pods.create(&PostParams::default(), &probe_pod).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && e.to_string().contains("service account") => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the probe pod: {e}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let pod = loop {
        let pod = pods.get(&name).await.expect("the pod");
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break pod;
        }
        assert!(
            Instant::now() < deadline,
            "the probe pod is not Ready: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let status = pod.status.expect("status");
    let container = &status.container_statuses.expect("container statuses")[0];
    // The runtime reports the image by one of its names: the pod's or the sandbox's.
    assert!(
        [PROBE_IMAGE, NETASSAY_IMAGE].contains(&container.image.as_str()),
        "{}",
        container.image
    );
    // containerd has the image under the pod's name and the sandbox's, one and the same.
    let listed = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "k8s.io", "images", "ls"])
        .output()
        .expect("ctr images ls");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let digest_of = |name: &str| {
        listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_string)
    };
    assert!(digest_of(PROBE_IMAGE).is_some(), "{listed}");
    assert_eq!(
        digest_of(PROBE_IMAGE),
        digest_of(NETASSAY_IMAGE),
        "{listed}"
    );
    // The agent runs as 65532 (the restricted securityContext), and so does every task of
    // the pod's cgroup.
    let container_id = container
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("a containerd container id")
        .to_string();
    let tasks = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "k8s.io", "tasks", "ls"])
        .output()
        .expect("ctr tasks ls");
    let tasks = String::from_utf8_lossy(&tasks.stdout);
    let agent_pid: u32 = tasks
        .lines()
        .find(|l| l.starts_with(&container_id))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("the agent's task in {tasks}"));
    assert_eq!(uid_of(agent_pid), Some(65532), "the agent's uid");
    let cmdline = std::fs::read_to_string(format!("/proc/{agent_pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("netassay\0agent\0serve"), "{cmdline:?}");
    // Exec through kube-apiserver, the kubelet and containerd's stream server.
    let kubectl = reference::bin_dir(None).join("kubectl");
    let exec = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(sandbox.admin_kubeconfig())
        .args(["exec", "-n", ns_name, &name, "--", "netassay", "--version"])
        .output()
        .expect("kubectl exec");
    assert!(
        String::from_utf8_lossy(&exec.stdout).starts_with("netassay "),
        "{exec:?}"
    );

    // Pod Security restricted is enforced: a privileged pod is refused.
    let mut privileged = manifest::pod(ns_name, &topology.pods[1], run, &fixture);
    if let Some(spec) = privileged.spec.as_mut() {
        spec.containers[0].security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
            privileged: Some(true),
            ..Default::default()
        });
    }
    match pods.create(&PostParams::default(), &privileged).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains("violates PodSecurity \"restricted"),
                "{s:?}"
            );
        }
        other => panic!("a privileged pod was not refused: {other:?}"),
    }

    // Everything the node started is in the instance's cgroups; stopping removes it all.
    let tasks = cgroups::tasks(&instance).expect("the instance's tasks");
    assert!(tasks.contains(&agent_pid), "{tasks:?}");
    assert!(
        tasks.len() >= 4,
        "containerd, the kubelet, a shim, pause: {tasks:?}"
    );
    let tasks = identify(&tasks);
    sandbox.stop().await;
    assert_eq!(alive(&tasks), Vec::new(), "tasks outlived the sandbox");
    assert_eq!(traces(&instance), Vec::<String>::new());
    assert_eq!(host_sysctls(), sysctls_before, "the host's sysctls changed");
}

/// `netassay sandbox up` with a kubelet node; its process and the instance's folder once it
/// has printed its kubeconfig (its first stdout line, once everything runs).
fn sandbox_up_kubelet() -> (std::process::Child, PathBuf) {
    let (up, kubeconfig) = run_common::sandbox_up_reference(&["--sandbox-node", "kubelet"]);
    // /run/netassay/naXXXX/control-plane/admin.kubeconfig
    let instance = kubeconfig
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no kubeconfig path in {kubeconfig:?}"))
        .to_path_buf();
    (up, instance)
}

/// SIGKILL of the owner: containerd and the kubelet die with it (they are its supervisor's
/// children), while containerd's shims and the containers, which no longer have a parent of
/// ours, are still running; the next sweep kills exactly those (they are in the instance's
/// cgroups) and removes the cgroups, the instance's folder and its namespaces.
#[test]
fn a_killed_owner_of_a_kubelet_sandbox_leaves_nothing_behind() {
    if !usable() {
        return;
    }
    let (mut up, folder) = sandbox_up_kubelet();
    let instance = folder
        .file_name()
        .expect("the instance's name")
        .to_string_lossy()
        .into_owned();
    let tasks = identify(&cgroups::tasks(&instance).expect("the instance's tasks"));
    let comm = |(p, _): &(u32, u64)| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default()
    };
    let shims: Vec<(u32, u64)> = tasks
        .iter()
        .copied()
        .filter(|p| comm(p).trim() == "containerd-shim")
        .collect();
    assert!(!shims.is_empty(), "a shim runs the DNS pod: {tasks:?}");
    up.kill().expect("kill");
    let _ = up.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&tasks)
        .iter()
        .any(|p| matches!(comm(p).trim(), "containerd" | "kubelet"))
    {
        assert!(
            Instant::now() < deadline,
            "containerd or the kubelet outlived their owner"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(&shims).is_empty(),
        "the shims outlive the owner: only the sweep can remove them"
    );
    let down = Command::new(NETASSAY)
        .args(["sandbox", "down"])
        .output()
        .expect("sandbox down");
    assert!(down.status.success(), "{down:?}");
    assert_eq!(alive(&tasks), Vec::new(), "tasks outlived the sweep");
    assert_eq!(traces(&instance), Vec::<String>::new());
}
