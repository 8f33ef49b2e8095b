//! A real kubectl against `netassay sandbox up` (the emulator over the netns dataplane): the
//! commands people use while writing scenarios behave as on a real cluster. kubectl's typed
//! clients send protobuf (`create namespace`, `run`, `create service`, `auth can-i`), `get`
//! asks for server-side Tables, `describe` reads Events, `logs` reads pods/log.
//!
//! Needs root (network namespaces) and a kubectl (see `kubectl_common`); without either it says
//! it skipped, and fails when `CI` is set.

mod kubectl_common;
mod run_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `netassay sandbox up` as a child; SIGTERM on drop (it then removes everything it made).
struct SandboxUp {
    child: Child,
    kubeconfig: PathBuf,
}

impl SandboxUp {
    fn start() -> SandboxUp {
        let mut child = run_common::netassay()
            .args(["sandbox", "up"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("netassay sandbox up starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sandbox up prints its kubeconfig");
        let kubeconfig = PathBuf::from(line.trim());
        assert!(
            kubeconfig.is_file(),
            "sandbox up printed {line:?}, not a kubeconfig"
        );
        SandboxUp { child, kubeconfig }
    }

    /// SIGTERM, then its exit status (it stops cleanly).
    fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "sandbox up did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

impl Drop for SandboxUp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&self.child);
            let _ = self.child.wait();
        }
    }
}

struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// Runs and expects success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs and expects failure; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write manifest");
    path.to_string_lossy().into_owned()
}

/// The header line of a table, split into column names (multi-word names kept whole).
fn header(table: &str) -> Vec<String> {
    let line = table.lines().next().unwrap_or("");
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The cells of the row whose first cell is `name`.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

#[test]
fn kubectl_works_against_sandbox_up() {
    let test = "kubectl_works_against_sandbox_up";
    if !run_common::root_or_skip(test) {
        return;
    }
    let Some(program) = kubectl_common::kubectl_or_skip(test) else {
        return;
    };
    let sandbox = SandboxUp::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kubectl {
        program,
        kubeconfig: sandbox.kubeconfig.clone(),
        cache: dir.path().join("cache"),
    };

    // Typed clients: protobuf bodies.
    assert!(k
        .ok(&["create", "namespace", "demo"])
        .contains("namespace/demo created"));
    let pod = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: demo, labels: {app: web}}\n\
         spec:\n  containers:\n  - name: agent\n    image: ghcr.io/netassay/netassay:latest\n    \
         command: [netassay, agent, serve, --identity, demo/web, --listen, 'tcp:80']\n    \
         ports: [{containerPort: 80, name: web}]\n",
    );
    assert!(k.ok(&["apply", "-f", &pod]).contains("pod/web created"));
    assert!(k
        .ok(&[
            "run",
            "bb",
            "-n",
            "demo",
            "--image=busybox",
            "--",
            "sleep",
            "3600"
        ])
        .contains("pod/bb created"));
    assert!(k
        .ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "demo",
            "--tcp=80:80"
        ])
        .contains("service/web created"));
    let policy = write(
        dir.path(),
        "policy.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-ingress, namespace: demo}\n\
         spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: web}]}]\n",
    );
    assert!(k
        .ok(&["apply", "-f", &policy])
        .contains("networkpolicy.networking.k8s.io/web-ingress created"));

    // The sandbox serves no watch, so no `kubectl wait`: poll as netassay does.
    let deadline = Instant::now() + Duration::from_secs(60);
    while k.ok(&[
        "get",
        "pod",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]) != "True"
    {
        assert!(Instant::now() < deadline, "pod web never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Server-side Tables: upstream's columns, wide ones only with -o wide.
    let wide = k.ok(&["get", "pods", "-n", "demo", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{wide}"
    );
    let web = row(&wide, "web");
    assert_eq!(&web[1..4], ["1/1", "Running", "0"], "{wide}");
    assert!(web[5].starts_with("10.244."), "{wide}");
    assert!(web[6].ends_with("-node"), "{wide}");
    assert_eq!(&web[7..], ["<none>", "<none>"], "{wide}");
    let bb = row(&wide, "bb");
    assert_eq!(&bb[1..3], ["0/1", "ErrImagePull"], "{wide}");
    let narrow = k.ok(&["get", "pods", "-n", "demo"]);
    assert_eq!(
        header(&narrow),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{narrow}"
    );
    let services = k.ok(&["get", "services", "-n", "demo", "-o", "wide"]);
    assert_eq!(
        header(&services),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ],
        "{services}"
    );
    let svc = row(&services, "web");
    assert_eq!(svc[1], "ClusterIP");
    assert!(svc[2].starts_with("10.96."), "{services}");
    assert_eq!((svc[3].as_str(), svc[4].as_str()), ("<none>", "80/TCP"));
    assert_eq!(svc[6], "app=web");
    // The cluster DNS Service the sandbox creates for itself.
    let all = k.ok(&["get", "services", "-A"]);
    let dns = row(&all, "kube-system");
    assert_eq!(
        (dns[1].as_str(), dns[3].as_str(), dns[5].as_str()),
        ("kube-dns", "10.96.0.10", "53/UDP,53/TCP"),
        "{all}"
    );
    let namespaces = k.ok(&["get", "namespaces"]);
    assert_eq!(header(&namespaces), ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&namespaces, "demo")[1], "Active");
    let nodes = k.ok(&["get", "nodes", "-o", "wide"]);
    assert_eq!(
        header(&nodes)[..6],
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"],
        "{nodes}"
    );
    assert!(
        nodes.contains(" Ready ") && nodes.contains("control-plane"),
        "{nodes}"
    );
    let policies = k.ok(&["get", "networkpolicies", "-n", "demo"]);
    assert_eq!(header(&policies), ["NAME", "POD-SELECTOR", "AGE"]);
    assert_eq!(row(&policies, "web-ingress")[1], "app=web");

    // Objects as YAML, describe with events.
    let yaml = k.ok(&["get", "pod", "web", "-n", "demo", "-o", "yaml"]);
    assert!(
        yaml.contains("podIP: 10.244.") && yaml.contains("kind: Pod"),
        "{yaml}"
    );
    let described = k.ok(&["describe", "pod", "web", "-n", "demo"]);
    for line in ["Status:", "Running", "Scheduled", "Started container agent"] {
        assert!(described.contains(line), "no {line:?} in:\n{described}");
    }
    let described = k.ok(&["describe", "pod", "bb", "-n", "demo"]);
    assert!(
        described.contains("ErrImagePull")
            && described.contains(
                "image busybox is not available in the sandbox: only the netassay image runs"
            ),
        "{described}"
    );
    let events = k.ok(&["get", "events", "-n", "demo"]);
    assert!(
        events.contains("Failed to pull image \"busybox\""),
        "{events}"
    );

    // Label, exec, logs.
    assert!(k
        .ok(&["label", "pod", "web", "-n", "demo", "tier=db"])
        .contains("labeled"));
    assert!(k
        .ok(&["get", "pod", "web", "-n", "demo", "--show-labels"])
        .contains("app=web,tier=db"));
    let version = k.ok(&["exec", "-n", "demo", "web", "--", "netassay", "--version"]);
    assert_eq!(
        version.trim(),
        format!("netassay {}", env!("CARGO_PKG_VERSION"))
    );
    let described = k.ok(&["describe", "pod", "web", "-n", "demo"]);
    assert!(described.contains("tier=db"), "{described}");
    let logs = k.ok(&["logs", "-n", "demo", "web"]);
    assert!(logs.contains("demo/web ready on tcp:80"), "{logs}");
    let dns = k.ok(&["logs", "-n", "kube-system", "coredns"]);
    assert!(dns.contains("netassay agent dns: ready"), "{dns}");
    let last = k.ok(&["logs", "-n", "kube-system", "coredns", "--tail=1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    let missing = k.fails(&["logs", "-n", "demo", "nobody"]);
    assert!(missing.contains("NotFound"), "{missing}");
    let refused = k.fails(&["logs", "-n", "demo", "bb"]);
    assert!(
        refused.contains("is waiting to start: ErrImagePull"),
        "{refused}"
    );

    // One user, who may do everything.
    assert_eq!(
        k.ok(&["auth", "can-i", "create", "pods", "-n", "demo"])
            .trim(),
        "yes"
    );
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "namespaces"]).trim(),
        "yes"
    );
    assert!(k
        .ok(&["auth", "can-i", "--list", "-n", "demo"])
        .contains("*.*"));
    assert!(k.ok(&["auth", "whoami"]).contains("netassay-sandbox"));

    // An invalid policy: 422 with the field path.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: demo}\n\
         spec: {podSelector: {}, ingress: [{ports: [{port: web, endPort: 81}]}]}\n",
    );
    let stderr = k.fails(&["apply", "-f", &bad, "-v=6"]);
    assert!(stderr.contains("422 Unprocessable Entity"), "{stderr}");
    assert!(
        stderr.contains("The NetworkPolicy \"bad\" is invalid")
            && stderr.contains("spec.ingress[0].ports[0].endPort"),
        "{stderr}"
    );

    // Delete, down to the namespace.
    assert!(k
        .ok(&["delete", "pod", "bb", "-n", "demo"])
        .contains("deleted"));
    assert!(k
        .ok(&["delete", "networkpolicy", "web-ingress", "-n", "demo"])
        .contains("deleted"));
    assert!(k.ok(&["delete", "namespace", "demo"]).contains("deleted"));
    let gone = k.fails(&["get", "namespace", "demo"]);
    assert!(gone.contains("NotFound"), "{gone}");
    let status = sandbox.stop();
    assert!(status.success(), "sandbox up exited with {status}");
}
