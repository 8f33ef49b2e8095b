//! A real kubectl against `netassay sandbox up` (the emulator over the netns dataplane): the
//! commands people use while writing scenarios behave as on a real cluster. kubectl's typed
//! clients send protobuf (`create namespace`, `run`, `create service`, `auth can-i`), `get`
//! asks for server-side Tables, `describe` reads Events, `logs` reads pods/log.
//!
//! The commands are the shared script (`kubectl_common::script`), which the reference-cluster
//! test also runs against the real control plane and compares with this backend's output; here
//! each answer is also checked against what it must say.
//!
//! Needs root (network namespaces) and a kubectl (see `kubectl_common`); without either it says
//! it skipped, and fails when `CI` is set.

mod kubectl_common;
mod run_common;

use kubectl_common::{header, row, script, Kubectl, SandboxUp};

#[test]
fn kubectl_works_against_sandbox_up() {
    let test = "kubectl_works_against_sandbox_up";
    if !run_common::root_or_skip(test) {
        return;
    }
    let Some(program) = kubectl_common::kubectl_or_skip(test) else {
        return;
    };
    let sandbox = SandboxUp::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    let k = Kubectl {
        program,
        kubeconfig: sandbox.kubeconfig.clone(),
        cache: dir.path().join("cache"),
    };
    let t = script::run_script(&k, &manifests);
    let out = |command: &str| t.stdout(command).to_string();
    let err = |command: &str| t.stderr(command).to_string();

    // Typed clients: protobuf bodies.
    assert!(out("create namespace demo").contains("namespace/demo created"));
    assert!(out("apply -f {dir}/pod.yaml").contains("pod/web created"));
    assert!(out("run bb -n demo --image=busybox -- sleep 3600").contains("pod/bb created"));
    assert!(out("-n demo create service clusterip web --tcp=80:80").contains("service/web created"));
    assert!(out("apply -f {dir}/policy.yaml")
        .contains("networkpolicy.networking.k8s.io/web-ingress created"));

    // Server-side Tables: upstream's columns, wide ones only with -o wide.
    let wide = out("-n demo get pods -o wide");
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
    let narrow = out("-n demo get pods");
    assert_eq!(
        header(&narrow),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{narrow}"
    );
    let services = out("-n demo get services -o wide");
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
    // The cluster DNS Service the sandbox creates for itself, and the API's own.
    let all = out("get services -A");
    let dns = row(&all, "kube-system");
    assert_eq!(
        (dns[1].as_str(), dns[3].as_str(), dns[5].as_str()),
        ("kube-dns", "10.96.0.10", "53/UDP,53/TCP"),
        "{all}"
    );
    let api = row(&all, "default");
    assert_eq!(
        (api[1].as_str(), api[3].as_str(), api[5].as_str()),
        ("kubernetes", "10.96.0.1", "443/TCP"),
        "{all}"
    );
    let namespaces = out("get namespaces");
    assert_eq!(header(&namespaces), ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&namespaces, "demo")[1], "Active");
    let nodes = out("get nodes -o wide");
    assert_eq!(
        header(&nodes)[..6],
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"],
        "{nodes}"
    );
    assert!(
        nodes.contains(" Ready ") && nodes.contains("control-plane"),
        "{nodes}"
    );
    let policies = out("-n demo get networkpolicies");
    assert_eq!(header(&policies), ["NAME", "POD-SELECTOR", "AGE"]);
    assert_eq!(row(&policies, "web-ingress")[1], "app=web");

    // Objects as YAML, describe with events.
    let yaml = out("-n demo get pod web -o yaml");
    assert!(
        yaml.contains("podIP: 10.244.") && yaml.contains("kind: Pod"),
        "{yaml}"
    );
    let yaml = out("-n demo get networkpolicy web-ingress -o yaml");
    assert!(yaml.contains("- Ingress"), "policyTypes defaulted: {yaml}");
    let described = out("-n demo describe pod web");
    for line in [
        "Status:",
        "Running",
        "Scheduled",
        "Started container agent",
        "tier=db",
    ] {
        assert!(described.contains(line), "no {line:?} in:\n{described}");
    }
    let described = out("-n demo describe pod bb");
    assert!(
        described.contains("ErrImagePull")
            && described.contains(
                "image busybox is not available in the sandbox: only the netassay image runs"
            ),
        "{described}"
    );
    let events = out("-n demo get events");
    assert!(
        events.contains("Failed to pull image \"busybox\""),
        "{events}"
    );

    // Label, exec, logs.
    assert!(out("-n demo label pod web tier=db").contains("labeled"));
    assert!(out("-n demo get pod web --show-labels").contains("app=web,tier=db"));
    assert_eq!(
        out("-n demo exec web -- netassay --version").trim(),
        format!("netassay {}", env!("CARGO_PKG_VERSION"))
    );
    let failed = t.get("-n demo exec web -- netassay no-such-command");
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    let logs = out("-n demo logs web");
    assert!(logs.contains("demo/web ready on tcp:80"), "{logs}");
    let dns = out("logs -n kube-system coredns");
    assert!(dns.contains("netassay agent dns: ready"), "{dns}");
    let last = out("logs -n kube-system coredns --tail=1");
    assert_eq!(last.lines().count(), 1, "{last}");
    let missing = err("-n demo logs nobody");
    assert!(missing.contains("NotFound"), "{missing}");
    let refused = err("-n demo logs bb");
    assert!(
        refused.contains("is waiting to start: ErrImagePull"),
        "{refused}"
    );

    // One user, who may do everything.
    assert_eq!(out("-n demo auth can-i create pods").trim(), "yes");
    assert_eq!(out("auth can-i delete namespaces").trim(), "yes");
    assert!(out("-n demo auth can-i --list").contains("*.*"));
    assert!(out("auth whoami").contains("netassay-sandbox"));

    // An invalid policy: 422 with the field path.
    let stderr = err("apply -f {dir}/bad.yaml -v=6");
    assert!(stderr.contains("422 Unprocessable Entity"), "{stderr}");
    for stderr in [stderr, err("apply -f {dir}/bad.yaml")] {
        assert!(
            stderr.contains("The NetworkPolicy \"bad\" is invalid")
                && stderr.contains("spec.ingress[0].ports[0].endPort"),
            "{stderr}"
        );
    }

    // Delete, down to the namespace.
    for command in [
        "-n demo delete pod bb",
        "-n demo delete networkpolicy web-ingress",
        "-n demo delete pod web",
        "delete namespace demo",
    ] {
        assert!(out(command).contains("deleted"), "{command}");
    }
    let gone = err("get namespace demo");
    assert!(gone.contains("NotFound"), "{gone}");
    let status = sandbox.stop();
    assert!(status.success(), "sandbox up exited with {status}");
}
