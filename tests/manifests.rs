//! The deployment manifests (manifests/*.yaml) parse, use only fields Kubernetes knows, run under
//! Pod Security "restricted", and grant netassay exactly the API calls its code makes: DESIGN §9
//! least privilege, checked both ways. `api_calls()` is the reviewed list; a scanner finds the
//! kube-rs calls in src/ and must find exactly that list; manifests/rbac.yaml must grant exactly
//! that list. Adding a call without a rule (or a rule without a call) fails here.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use netassay::cluster::lock::{LOCK_NAME, LOCK_NAMESPACE};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The identity every in-cluster manifest runs as and every binding names.
const SA_NAMESPACE: &str = "netassay";
const SA_NAME: &str = "netassay";

// ---------------------------------------------------------------------------------------------
// The reviewed list of API calls.

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// A cluster-scoped resource (namespaces, nodes).
    Cluster,
    /// A namespaced resource in namespaces not known in advance (the run's own, created at run
    /// time) or in all namespaces: only a ClusterRole can grant it.
    AnyNamespace,
    /// A namespaced resource in one namespace known in advance: a Role there.
    Namespace(String),
    /// A non-resource URL such as /version.
    NonResource,
}

/// One permission: (apiGroup, resource or URL, verb, scope); `name` is a resourceNames limit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    scope: Scope,
    name: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(
            f,
            "{} {group}/{} {:?}",
            self.verb, self.resource, self.scope
        )?;
        if let Some(n) = &self.name {
            write!(f, " name={n}")?;
        }
        Ok(())
    }
}

fn grant(group: &str, resource: &str, verb: &str, scope: Scope, name: Option<&str>) -> Grant {
    Grant {
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
        scope,
        name: name.map(str::to_string),
    }
}

/// Every API call netassay makes against a real cluster, and why. Derived from src/cluster/
/// (and cli/run.rs for the reachability check); `api_calls_in_the_code_are_exactly_the_list`
/// keeps it honest.
fn api_calls() -> Vec<Grant> {
    use Scope::*;
    let lock = || Namespace(LOCK_NAMESPACE.to_string());
    vec![
        // fixture.rs deploy; lock.rs creates the lock namespace when missing.
        grant("", "namespaces", "create", Cluster, None),
        // cleanup.rs: namespaces by the managed-by label.
        grant("", "namespaces", "list", Cluster, None),
        // fixture.rs: namespace label edits of a step, and their reset.
        grant("", "namespaces", "patch", Cluster, None),
        // fixture.rs teardown; cleanup.rs.
        grant("", "namespaces", "delete", Cluster, None),
        // fixture.rs: probe pods; wait_ready lists them for Ready and IPs; label edits.
        // inventory.rs also lists pods in all namespaces (hostPort, hostNetwork).
        grant("", "pods", "create", AnyNamespace, None),
        grant("", "pods", "list", AnyNamespace, None),
        grant("", "pods", "patch", AnyNamespace, None),
        // fixture.rs exec_batch: websocket GET ("get"), plus "create" checked since 1.35.
        grant("", "pods/exec", "create", AnyNamespace, None),
        grant("", "pods/exec", "get", AnyNamespace, None),
        // fixture.rs: one Service per pod, read back for its ClusterIP; NodePorts that select
        // a fixture pod (listed in its namespace) for probes from outside the cluster.
        grant("", "services", "create", AnyNamespace, None),
        grant("", "services", "get", AnyNamespace, None),
        // fixture.rs: the K8TRE web app's route through the gateway (an HTTPRoute or an
        // Ingress, as the profile config says), in the run's own namespace; it goes with it.
        grant(
            "networking.k8s.io",
            "ingresses",
            "create",
            AnyNamespace,
            None,
        ),
        grant(
            "gateway.networking.k8s.io",
            "httproutes",
            "create",
            AnyNamespace,
            None,
        ),
        // inventory.rs: the exposure inventory (K8TRE: external access only via the
        // ingress/gateway) lists Services (NodePort, LoadBalancer, externalIPs), Ingresses and
        // Gateways in all namespaces. Read-only.
        grant("", "services", "list", AnyNamespace, None),
        grant("networking.k8s.io", "ingresses", "list", AnyNamespace, None),
        grant(
            "gateway.networking.k8s.io",
            "gateways",
            "list",
            AnyNamespace,
            None,
        ),
        // fixture.rs: create-or-replace, step deletes, reset lists and deletes.
        grant(
            "networking.k8s.io",
            "networkpolicies",
            "create",
            AnyNamespace,
            None,
        ),
        grant(
            "networking.k8s.io",
            "networkpolicies",
            "get",
            AnyNamespace,
            None,
        ),
        grant(
            "networking.k8s.io",
            "networkpolicies",
            "list",
            AnyNamespace,
            None,
        ),
        grant(
            "networking.k8s.io",
            "networkpolicies",
            "update",
            AnyNamespace,
            None,
        ),
        grant(
            "networking.k8s.io",
            "networkpolicies",
            "delete",
            AnyNamespace,
            None,
        ),
        // fixture/cilium.rs: a scenario's CNPs, as its NetworkPolicies (create-or-replace, step
        // deletes, reset lists and deletes); they go with their namespace.
        grant(
            "cilium.io",
            "ciliumnetworkpolicies",
            "create",
            AnyNamespace,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumnetworkpolicies",
            "get",
            AnyNamespace,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumnetworkpolicies",
            "list",
            AnyNamespace,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumnetworkpolicies",
            "update",
            AnyNamespace,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumnetworkpolicies",
            "delete",
            AnyNamespace,
            None,
        ),
        // fixture/cilium.rs: a scenario's CCNPs, cluster-scoped, named per run; list by the
        // run's labels also tells whether the cluster serves the kind (cilium.rs `served`);
        // cleanup.rs lists and deletes those runs left behind.
        grant(
            "cilium.io",
            "ciliumclusterwidenetworkpolicies",
            "create",
            Cluster,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumclusterwidenetworkpolicies",
            "get",
            Cluster,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumclusterwidenetworkpolicies",
            "list",
            Cluster,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumclusterwidenetworkpolicies",
            "update",
            Cluster,
            None,
        ),
        grant(
            "cilium.io",
            "ciliumclusterwidenetworkpolicies",
            "delete",
            Cluster,
            None,
        ),
        // lock.rs: the run lock; create cannot be limited by name, the rest can.
        grant("coordination.k8s.io", "leases", "create", lock(), None),
        grant(
            "coordination.k8s.io",
            "leases",
            "get",
            lock(),
            Some(LOCK_NAME),
        ),
        grant(
            "coordination.k8s.io",
            "leases",
            "update",
            lock(),
            Some(LOCK_NAME),
        ),
        grant(
            "coordination.k8s.io",
            "leases",
            "delete",
            lock(),
            Some(LOCK_NAME),
        ),
        // facts.rs: node count, CNI from kube-system DaemonSets.
        grant("", "nodes", "list", Cluster, None),
        grant(
            "apps",
            "daemonsets",
            "list",
            Namespace("kube-system".into()),
            None,
        ),
        // cli/run.rs reachability check; facts.rs Kubernetes version.
        grant("", "/version", "get", NonResource, None),
    ]
}

/// The kinds netassay handles with `Api<Kind>`: (kind, apiGroup, resource, namespaced).
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("Namespace", "", "namespaces", false),
    ("Node", "", "nodes", false),
    ("Pod", "", "pods", true),
    ("Service", "", "services", true),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        true,
    ),
    ("Lease", "coordination.k8s.io", "leases", true),
    ("DaemonSet", "apps", "daemonsets", true),
    ("Ingress", "networking.k8s.io", "ingresses", true),
    // Through `Api<DynamicObject>` with an `ApiResource` literal (no k8s-openapi type).
    ("Gateway", "gateway.networking.k8s.io", "gateways", true),
    ("HTTPRoute", "gateway.networking.k8s.io", "httproutes", true),
    (
        "CiliumNetworkPolicy",
        "cilium.io",
        "ciliumnetworkpolicies",
        true,
    ),
    (
        "CiliumClusterwideNetworkPolicy",
        "cilium.io",
        "ciliumclusterwidenetworkpolicies",
        false,
    ),
];

/// The type of dynamic handles: their kind comes from the `ApiResource` they are built with.
const DYNAMIC: &str = "DynamicObject";

/// Resources that are namespaced, for reading RBAC rules (subresources included).
fn namespaced(resource: &str) -> bool {
    let base = resource.split('/').next().unwrap_or(resource);
    match KINDS.iter().find(|(_, _, r, _)| *r == base) {
        Some((_, _, _, ns)) => *ns,
        None => panic!("resource {resource:?} is not in KINDS: add it with its scope"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading manifests.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("manifests"))
        .expect("manifests/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML documents of a file (split on `---` lines), skipping documents that are only comments.
fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut chunks = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            chunks.push(String::new());
        } else {
            let last = chunks.last_mut().expect("one chunk");
            last.push_str(line);
            last.push('\n');
        }
    }
    chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|(i, c)| {
            serde_saphyr::from_str::<Value>(c).unwrap_or_else(|e| {
                panic!("{} document {}: not valid YAML: {e}", path.display(), i + 1)
            })
        })
        .collect()
}

fn manifest(name: &str) -> Vec<Value> {
    documents(&root().join("manifests").join(name))
}

fn kind_of(doc: &Value) -> (&str, &str) {
    (
        doc["apiVersion"].as_str().unwrap_or(""),
        doc["kind"].as_str().unwrap_or(""),
    )
}

/// Deserializes into the k8s-openapi type and back: a field Kubernetes does not know (a typo)
/// or a value of the wrong type makes the two differ.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: does not deserialize as its Kubernetes type: {e}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    if let Some(path) = first_difference(doc, &back, String::new()) {
        panic!("{what}: {path} is lost in a round trip through its Kubernetes type (unknown or misspelt field, or a wrong type?)");
    }
    typed
}

/// The path of the first place where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let (va, vb) = (
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            );
            first_difference(va, vb, format!("{path}.{k}"))
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(if path.is_empty() { ".".into() } else { path }),
    }
}

fn check_typed(doc: &Value, what: &str) {
    match kind_of(doc) {
        ("v1", "Namespace") => drop(round_trip::<Namespace>(doc, what)),
        ("v1", "ServiceAccount") => drop(round_trip::<ServiceAccount>(doc, what)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            drop(round_trip::<ClusterRole>(doc, what))
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            drop(round_trip::<ClusterRoleBinding>(doc, what))
        }
        ("rbac.authorization.k8s.io/v1", "Role") => drop(round_trip::<Role>(doc, what)),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            drop(round_trip::<RoleBinding>(doc, what))
        }
        ("batch/v1", "Job") => drop(round_trip::<Job>(doc, what)),
        ("batch/v1", "CronJob") => drop(round_trip::<CronJob>(doc, what)),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            drop(round_trip::<ValidatingAdmissionPolicy>(doc, what))
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            drop(round_trip::<ValidatingAdmissionPolicyBinding>(doc, what))
        }
        (v, k) => panic!("{what}: {v} {k} has no typed check here; add one"),
    }
}

/// Sonobuoy's plugin definition header (sonobuoy pkg/plugin/manifest SonobuoyConfig).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)] // some fields are only validated, never read
struct SonobuoyConfig {
    driver: String,
    plugin_name: String,
    #[serde(default)]
    skip_cleanup: bool,
    #[serde(default)]
    result_format: Option<String>,
    #[serde(default)]
    result_files: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source_url: Option<String>,
    #[serde(default)]
    order: Option<i64>,
}

fn sonobuoy_plugin() -> (SonobuoyConfig, Container) {
    let docs = manifest("sonobuoy-plugin.yaml");
    assert_eq!(docs.len(), 1, "a plugin definition is one document");
    let doc = &docs[0];
    let keys: BTreeSet<&str> = doc
        .as_object()
        .expect("a mapping")
        .keys()
        .map(String::as_str)
        .collect();
    let allowed = [
        "sonobuoy-config",
        "spec",
        "extra-volumes",
        "podSpec",
        "config-map",
    ];
    for k in &keys {
        assert!(
            allowed.contains(k),
            "sonobuoy-plugin.yaml: unknown top-level key {k}"
        );
    }
    let config: SonobuoyConfig = serde_json::from_value(doc["sonobuoy-config"].clone())
        .unwrap_or_else(|e| panic!("sonobuoy-config: {e}"));
    let spec: Container = round_trip(&doc["spec"], "sonobuoy-plugin.yaml spec");
    (config, spec)
}

// ---------------------------------------------------------------------------------------------
// Manifests: shape, security, image.

#[test]
fn every_manifest_parses_and_uses_only_fields_kubernetes_knows() {
    let files = manifest_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "rbac.yaml",
        "job.yaml",
        "nightly-cronjob.yaml",
        "sonobuoy-plugin.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "manifests/{expected} missing"
        );
    }
    for f in &files {
        let docs = documents(f);
        assert!(!docs.is_empty(), "{}: no documents", f.display());
        if f.ends_with("sonobuoy-plugin.yaml") {
            sonobuoy_plugin();
            continue;
        }
        for (i, d) in docs.iter().enumerate() {
            check_typed(d, &format!("{} document {}", f.display(), i + 1));
        }
    }
}

/// The `--image` default of `netassay run`, read from src/cli/run/args.rs.
fn default_image() -> String {
    let text = read(&root().join("src/cli/run/args.rs"));
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("pub image: String"))
        .expect("RunArgs has `pub image: String`");
    lines[..at]
        .iter()
        .rev()
        .take(3)
        .find_map(|l| {
            let (_, rest) = l.split_once("default_value = \"")?;
            Some(rest.split('"').next()?.to_string())
        })
        .expect("the image flag has a default_value")
}

/// Every pod-running manifest: (what, pod spec, containers).
fn workloads() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for d in manifest("job.yaml") {
        assert_eq!(kind_of(&d), ("batch/v1", "Job"));
        out.push((
            "job.yaml".to_string(),
            d["spec"]["template"]["spec"].clone(),
        ));
    }
    for d in manifest("nightly-cronjob.yaml") {
        assert_eq!(kind_of(&d), ("batch/v1", "CronJob"));
        out.push((
            "nightly-cronjob.yaml".to_string(),
            d["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone(),
        ));
    }
    assert_eq!(out.len(), 2, "one Job and one CronJob");
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag` in a command line.
fn flag_value<'a>(command: &'a [String], flag: &str) -> Option<&'a str> {
    let at = command.iter().position(|a| a == flag)?;
    command.get(at + 1).map(String::as_str)
}

/// Pod Security "restricted" for a container, with the pod's securityContext as fallback.
fn assert_restricted(what: &str, pod: &Value, container: &Value) {
    let psc = &pod["securityContext"];
    let csc = &container["securityContext"];
    let either = |field: &str| {
        if csc[field].is_null() {
            psc[field].clone()
        } else {
            csc[field].clone()
        }
    };
    assert_eq!(
        either("runAsNonRoot"),
        Value::Bool(true),
        "{what}: runAsNonRoot"
    );
    if let Some(uid) = either("runAsUser").as_i64() {
        assert_ne!(uid, 0, "{what}: runAsUser 0");
    }
    assert_eq!(
        csc["allowPrivilegeEscalation"],
        Value::Bool(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert!(
        strings(&csc["capabilities"]["drop"]).contains(&"ALL".to_string()),
        "{what}: capabilities must drop ALL"
    );
    assert!(
        csc["capabilities"]["add"].is_null(),
        "{what}: no added capabilities"
    );
    assert_eq!(
        either("seccompProfile")["type"],
        Value::String("RuntimeDefault".into()),
        "{what}: seccompProfile RuntimeDefault"
    );
    assert_ne!(csc["privileged"], Value::Bool(true), "{what}: privileged");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], Value::Bool(true), "{what}: {host}");
    }
    let allowed = [
        "name",
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for v in pod["volumes"].as_array().into_iter().flatten() {
        for k in v.as_object().expect("volume mapping").keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "{what}: volume type {k} is not allowed by Pod Security restricted"
            );
        }
    }
}

#[test]
fn in_cluster_runs_use_the_service_account_and_pass_pod_security_restricted() {
    let image = default_image();
    for (what, pod) in workloads() {
        assert_eq!(
            pod["serviceAccountName"],
            Value::String(SA_NAME.into()),
            "{what}"
        );
        assert_eq!(
            pod["restartPolicy"],
            Value::String("Never".into()),
            "{what}"
        );
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{what}: one container");
        let c = &containers[0];
        assert_restricted(&what, &pod, c);
        let command = strings(&c["command"]);
        assert_eq!(
            command[..2],
            ["netassay".to_string(), "run".to_string()],
            "{what}"
        );
        assert_eq!(flag_value(&command, "--profile"), Some("core"), "{what}");
        assert_eq!(
            flag_value(&command, "--report-dir"),
            Some("/reports"),
            "{what}"
        );
        // The probe pods' image is spelt out, so an air-gapped override is one visible edit.
        assert_eq!(
            flag_value(&command, "--image"),
            Some(image.as_str()),
            "{what}"
        );
        assert_eq!(c["image"], Value::String(image.clone()), "{what}");
        let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
        let reports = mounts
            .iter()
            .find(|m| m["mountPath"] == "/reports")
            .unwrap_or_else(|| panic!("{what}: /reports is mounted"));
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == reports["name"])
            .unwrap_or_else(|| panic!("{what}: the /reports volume exists"));
        assert!(
            volume["emptyDir"].is_object(),
            "{what}: /reports is an emptyDir"
        );
    }
    for d in manifest("job.yaml")
        .iter()
        .chain(manifest("nightly-cronjob.yaml").iter())
    {
        assert_eq!(
            d["metadata"]["namespace"],
            Value::String(SA_NAMESPACE.into())
        );
    }
}

#[test]
fn the_nightly_run_is_at_two_and_never_overlaps() {
    let docs = manifest("nightly-cronjob.yaml");
    let spec = &docs[0]["spec"];
    assert_eq!(spec["schedule"], "0 2 * * *");
    // Two runs at once would collide on the run lock.
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(spec["jobTemplate"]["spec"]["backoffLimit"], 0);
}

#[test]
fn the_sonobuoy_plugin_follows_the_plugin_contract() {
    let (config, spec) = sonobuoy_plugin();
    assert_eq!(config.driver, "Job");
    assert_eq!(config.plugin_name, "netassay");
    assert_eq!(config.result_format.as_deref(), Some("junit"));
    assert_eq!(config.result_files, ["junit.xml"]);
    let command = spec.command.clone().unwrap_or_default();
    assert_eq!(command[..2], ["netassay".to_string(), "run".to_string()]);
    assert_eq!(flag_value(&command, "--profile"), Some("core"));
    assert!(command.iter().any(|a| a == "--sonobuoy"));
    let image = default_image();
    assert_eq!(spec.image.as_deref(), Some(image.as_str()));
    assert_eq!(flag_value(&command, "--image"), Some(image.as_str()));
    let env: BTreeMap<String, String> = spec
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        env.get("SONOBUOY_RESULTS_DIR").map(String::as_str),
        Some("/tmp/sonobuoy/results")
    );
    // Sonobuoy adds an emptyDir named "results" to the pod and mounts it in its worker.
    let mounts = spec.volume_mounts.clone().unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "results" && m.mount_path == "/tmp/sonobuoy/results"),
        "the results volume is mounted at SONOBUOY_RESULTS_DIR"
    );
    let container = serde_json::to_value(&spec).expect("serializes");
    assert_restricted("sonobuoy-plugin.yaml", &Value::Null, &container);
}

#[test]
fn manifests_use_only_flags_that_netassay_run_accepts() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_netassay"))
        .args(["run", "--help"])
        .output()
        .expect("netassay runs");
    assert!(help.status.success(), "netassay run --help failed");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut commands: Vec<(String, Vec<String>)> = workloads()
        .into_iter()
        .map(|(what, pod)| (what, strings(&pod["containers"][0]["command"])))
        .collect();
    let (_, plugin) = sonobuoy_plugin();
    commands.push((
        "sonobuoy-plugin.yaml".into(),
        plugin.command.unwrap_or_default(),
    ));
    for (what, command) in commands {
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{what}: `netassay run` has no flag {flag}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC: what manifests/rbac.yaml grants.

/// Every permission the file grants to system:serviceaccount:netassay:netassay.
fn rbac_grants() -> BTreeSet<Grant> {
    let docs = manifest("rbac.yaml");
    let mut cluster_roles = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for d in &docs {
        let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
        match kind_of(d).1 {
            "ClusterRole" => {
                cluster_roles.insert(name, round_trip::<ClusterRole>(d, "ClusterRole"));
            }
            "Role" => {
                let ns = d["metadata"]["namespace"]
                    .as_str()
                    .expect("a Role has a namespace")
                    .to_string();
                roles.insert((ns, name), round_trip::<Role>(d, "Role"));
            }
            _ => {}
        }
    }
    let is_ours = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        let subjects = subjects.clone().unwrap_or_default();
        for s in &subjects {
            assert!(
                s.kind == "ServiceAccount"
                    && s.name == SA_NAME
                    && s.namespace.as_deref() == Some(SA_NAMESPACE),
                "bindings name only the netassay ServiceAccount, not {s:?}"
            );
        }
        !subjects.is_empty()
    };
    let mut bound = BTreeSet::new();
    let mut out = BTreeSet::new();
    let mut expand = |rules: &[k8s_openapi::api::rbac::v1::PolicyRule], ns: Option<&str>| {
        for r in rules {
            for url in r.non_resource_urls.iter().flatten() {
                assert!(ns.is_none(), "nonResourceURLs only work in a ClusterRole");
                for v in &r.verbs {
                    out.insert(grant("", url, v, Scope::NonResource, None));
                }
            }
            let names: Vec<Option<&str>> = match &r.resource_names {
                Some(n) if !n.is_empty() => n.iter().map(|s| Some(s.as_str())).collect(),
                _ => vec![None],
            };
            for g in r.api_groups.iter().flatten() {
                for res in r.resources.iter().flatten() {
                    let scope = match (ns, namespaced(res)) {
                        (_, false) => {
                            assert!(
                                ns.is_none(),
                                "{res} is cluster-scoped: a Role cannot grant it"
                            );
                            Scope::Cluster
                        }
                        (None, true) => Scope::AnyNamespace,
                        (Some(ns), true) => Scope::Namespace(ns.to_string()),
                    };
                    for v in &r.verbs {
                        for n in &names {
                            out.insert(grant(g, res, v, scope.clone(), *n));
                        }
                    }
                }
            }
        }
    };
    for d in &docs {
        match kind_of(d).1 {
            "ClusterRoleBinding" => {
                let b = round_trip::<ClusterRoleBinding>(d, "ClusterRoleBinding");
                if is_ours(&b.subjects) {
                    assert_eq!(b.role_ref.kind, "ClusterRole");
                    let role = cluster_roles
                        .get(&b.role_ref.name)
                        .unwrap_or_else(|| panic!("no ClusterRole {}", b.role_ref.name));
                    expand(role.rules.as_deref().unwrap_or_default(), None);
                    bound.insert(("ClusterRole".to_string(), b.role_ref.name.clone()));
                }
            }
            "RoleBinding" => {
                let b = round_trip::<RoleBinding>(d, "RoleBinding");
                let ns = b.metadata.namespace.clone().expect("namespaced binding");
                if is_ours(&b.subjects) {
                    let rules = match b.role_ref.kind.as_str() {
                        "Role" => roles
                            .get(&(ns.clone(), b.role_ref.name.clone()))
                            .unwrap_or_else(|| panic!("no Role {ns}/{}", b.role_ref.name))
                            .rules
                            .clone(),
                        _ => cluster_roles
                            .get(&b.role_ref.name)
                            .unwrap_or_else(|| panic!("no ClusterRole {}", b.role_ref.name))
                            .rules
                            .clone(),
                    };
                    expand(rules.as_deref().unwrap_or_default(), Some(&ns));
                    let key = if b.role_ref.kind == "Role" {
                        format!("{ns}/{}", b.role_ref.name)
                    } else {
                        b.role_ref.name.clone()
                    };
                    bound.insert((b.role_ref.kind.clone(), key));
                }
            }
            _ => {}
        }
    }
    for name in cluster_roles.keys() {
        assert!(
            bound.contains(&("ClusterRole".to_string(), name.clone())),
            "ClusterRole {name} is bound to nothing"
        );
    }
    for (ns, name) in roles.keys() {
        assert!(
            bound.contains(&("Role".to_string(), format!("{ns}/{name}"))),
            "Role {ns}/{name} is bound to nothing"
        );
    }
    out
}

fn diff(what: &str, left: &BTreeSet<Grant>, right: &BTreeSet<Grant>) -> String {
    left.difference(right)
        .map(|g| format!("\n  {what}: {g}"))
        .collect()
}

#[test]
fn rbac_grants_exactly_the_api_calls_netassay_makes() {
    let granted = rbac_grants();
    let needed: BTreeSet<Grant> = api_calls().into_iter().collect();
    assert!(
        granted == needed,
        "manifests/rbac.yaml and api_calls() disagree:{}{}",
        diff("needed but not granted", &needed, &granted),
        diff("granted but never used", &granted, &needed)
    );
}

#[test]
fn rbac_has_no_wildcards_and_no_escalation() {
    for d in manifest("rbac.yaml") {
        let Some(rules) = d["rules"].as_array() else {
            continue;
        };
        for r in rules {
            for field in [
                "apiGroups",
                "resources",
                "verbs",
                "resourceNames",
                "nonResourceURLs",
            ] {
                for v in strings(&r[field]) {
                    assert!(!v.contains('*'), "{field}: wildcard {v:?} in {r}");
                }
            }
            for v in strings(&r["verbs"]) {
                assert!(
                    ![
                        "escalate",
                        "bind",
                        "impersonate",
                        "watch",
                        "deletecollection"
                    ]
                    .contains(&v.as_str()),
                    "verb {v} is never needed"
                );
            }
            for res in strings(&r["resources"]) {
                assert!(
                    ![
                        "secrets",
                        "roles",
                        "clusterroles",
                        "rolebindings",
                        "clusterrolebindings"
                    ]
                    .contains(&res.as_str()),
                    "{res} is never needed"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner: which API calls the code makes.
//
// How it works, and its limits (heuristic by design; a miss is a false pass, so the rules below
// err towards failing loudly):
// - It reads every .rs file of the product (src/) and of the core and agent crates; not the
//   sandbox crate (an API *server*, and a node that uses the cluster's admin identity).
//   Comments are ignored and `#[cfg(test)] mod … { … }` blocks removed.
// - Typed handles: `Api<Kind>` / `Api::<Kind>` anywhere; every Kind must be in KINDS.
// - A call `RECV.method(…)` counts when RECV resolves to an `Api<Kind>` handle:
//   a `let x: Api<K> = …` or `let x = Api::<K>::…` binding (the nearest `let x` before the call,
//   so shadowing across functions is resolved by position, not by scope); a parameter or struct
//   field `x: Api<K>` (for `self.x`); a call of a local `fn f(…) -> Api<K>`; or an inline
//   `Api::<K>::all(…)`. Handles passed through other expressions (closures, tuples, Option,
//   `.clone()`) are not followed.
// - Scope: `Api::all` is cluster-wide; `Api::namespaced(_, "lit")` or a `const X: &str = "lit"`
//   is that namespace; any other namespace expression means "namespaces not known in advance".
//   A struct field takes every scope the file constructs that Kind with.
// - Methods: create, get, get_opt, list, patch, replace (update), delete, exec (pods/exec get and
//   create), and `apiserver_version` (GET /version) on any receiver.
// - Failing loudly: a kube-rs method on a receiver it cannot resolve whose arguments carry
//   kube-rs params (`PostParams`, `ListParams`, `WatchParams`, …), or any unresolved `.exec(`
//   in a file that uses kube; kube-rs methods it has no verbs for (watch, patch_status, logs,
//   portforward, …) on an Api handle; and raw access (`watcher(`, `.request::<`,
//   `request_text`, discovery) in a file that uses kube. When that happens, teach the scanner
//   or restructure the call.
// - Dynamic handles (`Api<DynamicObject>`, for kinds without a k8s-openapi type such as the
//   Gateway API's): the kind is read from the `ApiResource` they are built with, which must be
//   a call of `fn NAME() -> ApiResource { ApiResource { group: "…".into(), …, kind: "…".into(),
//   plural: "…".into() } }` (string literals only; kind, group and plural as in KINDS), passed
//   as the last argument of `Api::all_with` / `Api::namespaced_with`. Any other mention of
//   `ApiResource` outside `use` (discovery, `ApiResource::from_gvk`, a parameter, a computed
//   field) fails, and so does a call on an `Api<DynamicObject>` whose resource is not known
//   (a struct field, a parameter, an unresolved constructor).
// - Not seen: a call on a handle the scanner cannot follow whose arguments carry no params
//   type (e.g. `h.pods().get(name)` through some other struct), and verbs of calls made by a
//   dependency on netassay's behalf (kube-rs itself makes none beyond the called method).

/// A source file with comments blanked (`code`) and, in `masked`, string contents too; both
/// keep every byte offset and newline.
struct Source {
    file: String,
    code: String,
    masked: String,
}

fn lex(src: &str) -> (String, String) {
    let b = src.as_bytes();
    let mut code = b.to_vec();
    let mut masked = b.to_vec();
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut v[from..to] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or(0);
        if c == b'/' && next == b'/' {
            let end = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut code, i, end);
            blank(&mut masked, i, end);
            i = end;
        } else if c == b'/' && next == b'*' {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            blank(&mut masked, i, j);
            i = j;
        } else if c == b'r'
            && (next == b'"' || next == b'#')
            && (i == 0 || !is_ident(b[i - 1]))
            && raw_string_end(b, i + 1).is_some()
        {
            let (open_end, end) = raw_string_end(b, i + 1).expect("checked");
            blank(&mut masked, open_end, end);
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut masked, i + 1, j.min(b.len()));
            i = j + 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\''), else a lifetime.
            if next == b'\\' {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                blank(&mut masked, i + 1, j);
                i = j + 1;
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + len) == Some(&b'\'') {
                    blank(&mut masked, i + 1, i + 1 + len);
                    i += len + 2;
                } else {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    let s = |v: Vec<u8>| String::from_utf8(v).expect("blanking keeps UTF-8");
    (s(code), s(masked))
}

/// For a raw string whose `r` is just before `at`: (end of the opening quote, end after closing).
fn raw_string_end(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let hashes = b[at..].iter().take_while(|&&x| x == b'#').count();
    let open = at + hashes;
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut j = open + 1;
    while j < b.len() {
        if b[j] == b'"'
            && b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&x| x == b'#')
                .count()
                == hashes
        {
            return Some((open + 1, j + 1 + hashes));
        }
        j += 1;
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Source {
    fn new(file: &str, text: &str) -> Source {
        let (mut code, mut masked) = lex(text);
        // Remove `#[cfg(test)] mod name { ... }`.
        let mut from = 0;
        while let Some(p) = masked[from..].find("#[cfg(test)]") {
            let at = from + p;
            let after = at + "#[cfg(test)]".len();
            let rest = masked[after..].trim_start();
            let start = masked.len() - rest.len();
            if rest.starts_with("mod ") {
                if let Some(open) = masked[start..].find('{').map(|o| start + o) {
                    let close = matching(masked.as_bytes(), open);
                    let blank = |s: &mut String| {
                        let mut v = std::mem::take(s).into_bytes();
                        for x in &mut v[at..=close] {
                            if *x != b'\n' {
                                *x = b' ';
                            }
                        }
                        *s = String::from_utf8(v).expect("UTF-8");
                    };
                    blank(&mut code);
                    blank(&mut masked);
                }
            }
            from = after;
        }
        Source {
            file: file.to_string(),
            code,
            masked,
        }
    }

    fn line(&self, at: usize) -> usize {
        self.masked[..at].matches('\n').count() + 1
    }

    fn uses_kube(&self) -> bool {
        self.masked.contains("kube::")
    }
}

/// The index of the bracket closing the one at `open` (or the end).
fn matching(b: &[u8], open: usize) -> usize {
    let (o, c) = match b[open] {
        b'(' => (b'(', b')'),
        b'[' => (b'[', b']'),
        b'{' => (b'{', b'}'),
        b'<' => (b'<', b'>'),
        x => panic!("not a bracket: {}", x as char),
    };
    let mut depth = 0;
    for (i, &x) in b.iter().enumerate().skip(open) {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    b.len() - 1
}

/// The index of the bracket opening the one at `close`.
fn matching_back(b: &[u8], close: usize) -> usize {
    let (o, c) = match b[close] {
        b')' => (b'(', b')'),
        b']' => (b'[', b']'),
        b'}' => (b'{', b'}'),
        x => panic!("not a bracket: {}", x as char),
    };
    let mut depth = 0;
    for i in (0..=close).rev() {
        if b[i] == c {
            depth += 1;
        } else if b[i] == o {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    0
}

fn skip_ws_back(b: &[u8], mut at: usize) -> usize {
    while at > 0 && b[at - 1].is_ascii_whitespace() {
        at -= 1;
    }
    at
}

/// The identifier ending at `end` (exclusive): (start, text).
fn ident_before(s: &str, end: usize) -> (usize, &str) {
    let b = s.as_bytes();
    let mut start = end;
    while start > 0 && is_ident(b[start - 1]) {
        start -= 1;
    }
    (start, &s[start..end])
}

/// The kind in `Api<K>` / `Api::<K>` starting at `at` (which points at `Api`).
fn api_kind_at(masked: &str, at: usize) -> Option<(String, usize)> {
    let b = masked.as_bytes();
    if at > 0 && is_ident(b[at - 1]) {
        return None;
    }
    let rest = &masked[at..];
    let lt = if rest.starts_with("Api<") {
        at + 3
    } else if rest.starts_with("Api::<") {
        at + 5
    } else {
        return None;
    };
    let gt = matching(b, lt);
    let inner: String = masked[lt + 1..gt].split_whitespace().collect();
    let kind = inner.rsplit("::").next().unwrap_or(&inner).to_string();
    Some((kind, gt + 1))
}

/// Every `Api<K>` / `Api::<K>` in a source: (offset, kind).
fn api_types(src: &Source) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = src.masked[from..].find("Api") {
        let at = from + p;
        if let Some((kind, _)) = api_kind_at(&src.masked, at) {
            out.push((at, kind));
        }
        from = at + 3;
    }
    out
}

/// The top-level arguments of the call whose `(` is at `open` in `masked`: (start, end) spans.
fn call_args(masked: &str, open: usize) -> Vec<(usize, usize)> {
    let close = matching(masked.as_bytes(), open);
    let mut out = Vec::new();
    let mut depth = 0;
    let mut from = open + 1;
    for (i, c) in masked[open + 1..close].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push((from, open + 1 + i));
                from = open + 2 + i;
            }
            _ => {}
        }
    }
    if !masked[from..close].trim().is_empty() {
        out.push((from, close));
    }
    out
}

/// Where the handle an expression constructs points (`expr_code`: comments blanked, strings
/// kept); `None` when the expression constructs no handle the scanner understands.
fn constructor_scopes(expr_code: &str, consts: &BTreeMap<String, String>) -> Option<Scope> {
    let (_, masked) = lex(expr_code);
    let find = |what: &str| masked.find(what);
    if find("::all(").is_some() || find("::all_with(").is_some() {
        return Some(Scope::AnyNamespace); // Cluster, for cluster-scoped kinds (see calls_of)
    }
    // `namespaced(client, ns)` and `namespaced_with(client, ns, &resource)`: the namespace is
    // the second argument.
    let namespaced = find("::namespaced(")
        .map(|p| p + "::namespaced".len())
        .or_else(|| find("::namespaced_with(").map(|p| p + "::namespaced_with".len()));
    if let Some(open) = namespaced {
        let (from, to) = *call_args(&masked, open).get(1)?;
        let arg = expr_code[from..to].trim();
        let arg = arg.trim_start_matches('&');
        if let Some(lit) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            return Some(Scope::Namespace(lit.to_string()));
        }
        let ident = arg.rsplit("::").next().unwrap_or(arg);
        if let Some(v) = consts.get(ident) {
            return Some(Scope::Namespace(v.clone()));
        }
        return Some(Scope::AnyNamespace);
    }
    if find("::default_namespaced(").is_some() {
        return Some(Scope::AnyNamespace);
    }
    None
}

/// The kind of an `Api<DynamicObject>` an expression constructs: its `ApiResource` (the last
/// argument of `Api::all_with` / `Api::namespaced_with`) must be a call of a fn that returns an
/// `ApiResource` literal (`resources`: fn name -> kind). `None` otherwise.
fn dynamic_kind(expr_code: &str, resources: &BTreeMap<String, String>) -> Option<String> {
    let (_, masked) = lex(expr_code);
    let open = masked
        .find("::all_with(")
        .map(|p| p + "::all_with".len())
        .or_else(|| {
            masked
                .find("::namespaced_with(")
                .map(|p| p + "::namespaced_with".len())
        })?;
    let (from, to) = *call_args(&masked, open).last()?;
    // Exactly `&f()` / `&path::f()` (the `&` optional): nothing before or after the call.
    let b = masked.as_bytes();
    let mut a = from;
    while a < to && (b[a].is_ascii_whitespace() || b[a] == b'&') {
        a += 1;
    }
    let mut paren = a;
    while paren < to && (is_ident(b[paren]) || b[paren] == b':') {
        paren += 1;
    }
    if paren == a
        || b.get(paren) != Some(&b'(')
        || !masked[matching(b, paren) + 1..to].trim().is_empty()
    {
        return None;
    }
    let path = &masked[a..paren];
    let name = path.rsplit("::").next().unwrap_or(path);
    resources.get(name).cloned()
}

/// The value of a field in an `ApiResource` literal: a string literal, as is or with
/// `.into()`, `.to_string()`, `.to_owned()`, or `String::from("…")`.
fn literal_string(code: &str) -> Option<String> {
    let (_, masked) = lex(code);
    let t = masked.trim();
    let lead = masked.len() - masked.trim_start().len();
    let code = &code[lead..lead + t.len()];
    let (inner, rest) = if let Some(arg) = t
        .strip_prefix("String::from(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let at = "String::from(".len();
        (&code[at..at + arg.len()], "")
    } else {
        let end = t.get(1..)?.find('"')? + 2;
        (&code[..end], &t[end..])
    };
    if !inner.starts_with('"') || !inner.ends_with('"') || inner.len() < 2 {
        return None;
    }
    if !["", ".into()", ".to_string()", ".to_owned()"].contains(&rest.trim()) {
        return None;
    }
    Some(inner[1..inner.len() - 1].to_string())
}

/// Every `fn NAME(…) -> ApiResource { ApiResource { group: "…".into(), …, kind: "…".into(),
/// plural: "…".into() } }` in the sources: NAME -> kind, checked against KINDS. Every other
/// mention of `ApiResource` outside a `use` (from discovery, `ApiResource::from_gvk`, a
/// parameter, a non-literal field) is a resource the scanner cannot read: a problem.
fn api_resources(sources: &[Source], problems: &mut Vec<String>) -> BTreeMap<String, String> {
    const AR: &str = "ApiResource";
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for s in sources {
        let at = |p: usize| format!("{}:{}", s.file, s.line(p));
        let b = s.masked.as_bytes();
        // `use …;` spans.
        let mut uses = Vec::new();
        let mut from = 0;
        while let Some(p) = s.masked[from..].find("use ") {
            let u = from + p;
            from = u + 4;
            if u > 0 && is_ident(b[u - 1]) {
                continue;
            }
            let end = s.masked[u..].find(';').map_or(b.len(), |e| u + e);
            uses.push((u, end));
        }
        let mut read_literals = BTreeSet::new();
        let mut from = 0;
        while let Some(p) = s.masked[from..].find(AR) {
            let at_ar = from + p;
            from = at_ar + AR.len();
            let after = at_ar + AR.len();
            if (at_ar > 0 && is_ident(b[at_ar - 1])) || b.get(after).is_some_and(|&c| is_ident(c)) {
                continue;
            }
            if uses.iter().any(|(u, e)| *u <= at_ar && at_ar < *e) || read_literals.contains(&at_ar)
            {
                continue;
            }
            let refuse = |problems: &mut Vec<String>| {
                problems.push(format!(
                    "{}: an `ApiResource` the scanner cannot read; build it in \
                     `fn name() -> ApiResource {{ ApiResource {{ group: \"…\".into(), …, \
                     kind: \"…\".into(), plural: \"…\".into() }} }}`",
                    at(at_ar)
                ))
            };
            // A return type: `fn NAME(…) -> ApiResource { ApiResource { … } }`.
            if !s.masked[..at_ar].trim_end().ends_with("->") {
                refuse(problems);
                continue;
            }
            let body = s.masked[after..].trim_start();
            let open = b.len() - body.len();
            let Some(fn_at) = s.masked[..at_ar].rfind("fn ") else {
                refuse(problems);
                continue;
            };
            let (name_end, name) = {
                let start = fn_at + 3;
                let end = start
                    + s.masked[start..]
                        .bytes()
                        .take_while(|&c| is_ident(c))
                        .count();
                (end, s.masked[start..end].to_string())
            };
            if !body.starts_with('{') || name_end == fn_at + 3 {
                refuse(problems);
                continue;
            }
            let close = matching(b, open);
            let inner = s.masked[open + 1..close].trim();
            let lit_at = open
                + 1
                + (s.masked[open + 1..close].len() - s.masked[open + 1..close].trim_start().len());
            let lit_open = lit_at + AR.len();
            let lit_open =
                lit_open + (s.masked[lit_open..].len() - s.masked[lit_open..].trim_start().len());
            if !inner.starts_with(AR)
                || b.get(lit_open) != Some(&b'{')
                || matching(b, lit_open) + 1 != lit_at + inner.len()
            {
                refuse(problems);
                continue;
            }
            read_literals.insert(lit_at);
            let lit_close = matching(b, lit_open);
            let mut fields: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut all_literal = true;
            let mut piece_from = lit_open + 1;
            let mut depth = 0;
            for (i, &c) in b.iter().enumerate().take(lit_close + 1).skip(lit_open + 1) {
                match c {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' if i < lit_close => depth -= 1,
                    _ => {}
                }
                if (c == b',' && depth == 0) || i == lit_close {
                    let piece = s.masked[piece_from..i].trim();
                    if !piece.is_empty() {
                        let colon = s.masked[piece_from..i].find(':');
                        match colon {
                            Some(c) if !s.masked[piece_from..piece_from + c].contains('.') => {
                                let field = s.masked[piece_from..piece_from + c].trim();
                                let value = literal_string(&s.code[piece_from + c + 1..i]);
                                all_literal &= value.is_some();
                                fields.insert(field.to_string(), value);
                            }
                            _ => all_literal = false, // `..base`, shorthand `group,`
                        }
                    }
                    piece_from = i + 1;
                }
            }
            let field = |f: &str| fields.get(f).cloned().flatten();
            let (Some(group), Some(kind), Some(plural), true) =
                (field("group"), field("kind"), field("plural"), all_literal)
            else {
                refuse(problems);
                continue;
            };
            match KINDS.iter().find(|(k, ..)| *k == kind) {
                Some((_, g, r, _)) if *g == group && *r == plural => {}
                _ => {
                    problems.push(format!(
                        "{}: ApiResource {kind} ({group}/{plural}): add it to KINDS (and its \
                         calls to api_calls())",
                        at(at_ar)
                    ));
                    continue;
                }
            }
            match out.get(&name) {
                Some(k) if *k != kind => problems.push(format!(
                    "{}: fn {name} returns ApiResource {kind} here and {k} elsewhere; rename one",
                    at(at_ar)
                )),
                _ => {
                    out.insert(name, kind);
                }
            }
        }
    }
    out
}

/// What a name refers to at some point of a file.
#[derive(Debug, Clone)]
struct Decl {
    name: String,
    at: usize,
    /// `Some` for Api handles: the kind and every scope it may have.
    api: Option<(String, BTreeSet<Scope>)>,
    /// Declared as `name: Api<K>` outside a `let`: a struct field (reached through `self.`)
    /// or a parameter.
    typed: bool,
}

/// One API call found in the code.
#[derive(Debug, Clone)]
struct Found {
    at: String,
    grant: Grant,
}

const METHODS: &[(&str, &[&str])] = &[
    ("create", &["create"]),
    ("get", &["get"]),
    ("get_opt", &["get"]),
    ("list", &["list"]),
    ("patch", &["patch"]),
    ("replace", &["update"]),
    ("delete", &["delete"]),
    ("exec", &["create", "get"]),
];

/// kube-rs Api methods the scanner does not map to verbs yet: they must fail loudly.
const OTHER_KUBE_METHODS: &[&str] = &[
    "watch",
    "watch_metadata",
    "get_metadata",
    "get_metadata_opt",
    "list_metadata",
    "patch_metadata",
    "get_status",
    "patch_status",
    "replace_status",
    "get_subresource",
    "create_subresource",
    "patch_subresource",
    "replace_subresource",
    "delete_collection",
    "evict",
    "logs",
    "log_stream",
    "portforward",
    "attach",
    "get_scale",
    "patch_scale",
    "replace_scale",
    "restart",
    "entry",
];

/// Text that means API access the scanner cannot attribute.
const UNATTRIBUTABLE: &[&str] = &[
    "watcher(",
    "metadata_watcher(",
    "reflector(",
    "Controller::",
    "Discovery::",
    "pinned_kind(",
    "pinned_group(",
    "oneshot::",
    ".request::<",
    ".request(",
    ".request_text(",
    ".request_stream(",
    ".request_status(",
    ".request_events(",
    ".list_api_groups(",
    ".list_core_api_versions(",
    ".list_api_group_resources(",
    ".list_core_api_resources(",
];

const KUBE_PARAMS: &[&str] = &[
    "PostParams",
    "ListParams",
    "DeleteParams",
    "PatchParams",
    "AttachParams",
    "GetParams",
    "WatchParams",
    "LogParams",
    "EvictParams",
];

/// The grants one resolved call needs, one per verb and scope.
fn calls_of(at: &str, kind: &str, scopes: &BTreeSet<Scope>, method: &str) -> Vec<Found> {
    let Some((_, group, resource, namespaced)) = KINDS.iter().find(|(k, ..)| *k == kind) else {
        return Vec::new(); // the caller checks the kind first
    };
    let verbs = METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let resource = if method == "exec" {
        format!("{resource}/exec")
    } else {
        resource.to_string()
    };
    let mut out = Vec::new();
    for scope in scopes {
        let scope = if *namespaced {
            scope.clone()
        } else {
            Scope::Cluster
        };
        for v in verbs {
            out.push(Found {
                at: at.to_string(),
                grant: grant(group, &resource, v, scope.clone(), None),
            });
        }
    }
    out
}

/// The handle an initializer expression (`masked[from..to]`) makes: `Api::<K>::all(…)` /
/// `Api::namespaced(…)` (kind from the binding's type when not turbofished) or a call of a
/// local fn returning `Api<K>`. `None` when it is neither.
fn handle_of(
    s: &Source,
    from: usize,
    to: usize,
    fns: &BTreeMap<String, (String, BTreeSet<Scope>)>,
    consts: &BTreeMap<String, String>,
) -> Option<(String, Scope)> {
    let masked = &s.masked[from..to];
    if masked.starts_with("Api::") || masked.starts_with("kube::Api::") {
        let kind = api_kind_at(&s.masked, from + masked.find("Api")?)
            .map(|(k, _)| k)
            .unwrap_or_default();
        return constructor_scopes(&s.code[from..to], consts).map(|sc| (kind, sc));
    }
    let f = masked
        .trim_start_matches("self.")
        .trim_start_matches("Self::");
    let name: String = f
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !f[name.len()..].trim_start().starts_with('(') {
        return None;
    }
    let (kind, scopes) = fns.get(&name)?;
    Some((kind.clone(), scopes.iter().next()?.clone()))
}

/// The API calls in a set of sources, or the reasons the scanner gave up.
fn scan(sources: &[Source]) -> Result<Vec<Found>, Vec<String>> {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    // `fn NAME() -> ApiResource { ApiResource { … } }` across all files, for dynamic handles.
    let resources = api_resources(sources, &mut problems);
    // `const NAME: &str = "value";` across all files, for namespace arguments.
    let mut consts = BTreeMap::new();
    for s in sources {
        let mut from = 0;
        while let Some(p) = s.masked[from..].find("const ") {
            let at = from + p + "const ".len();
            from = at;
            let (end, name) = {
                let b = s.masked.as_bytes();
                let mut e = at;
                while e < b.len() && is_ident(b[e]) {
                    e += 1;
                }
                (e, &s.masked[at..e])
            };
            let rest = s.masked[end..].trim_start();
            if !rest.starts_with(": &str") && !rest.starts_with(": &'static str") {
                continue;
            }
            let Some(eq) = s.masked[end..].find('=') else {
                continue;
            };
            let Some(semi) = s.masked[end + eq..].find(';') else {
                continue;
            };
            let value = s.code[end + eq + 1..end + eq + semi].trim();
            if let Some(v) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                consts.insert(name.to_string(), v.to_string());
            }
        }
    }
    for s in sources {
        let at = |p: usize| format!("{}:{}", s.file, s.line(p));
        let b = s.masked.as_bytes();
        for pat in UNATTRIBUTABLE.iter().filter(|_| s.uses_kube()) {
            if let Some(p) = s.masked.find(pat) {
                problems.push(format!(
                    "{}: `{pat}` is API access the scanner cannot attribute",
                    at(p)
                ));
            }
        }
        let types = api_types(s);
        let known_kind = |k: &str| KINDS.iter().any(|(kind, ..)| *kind == k);
        for (p, kind) in &types {
            // A dynamic handle's kind is its ApiResource's, resolved where it is built.
            if !known_kind(kind) && kind != DYNAMIC {
                problems.push(format!(
                    "{}: Api<{kind}>: add {kind} to KINDS and its calls to api_calls()",
                    at(*p)
                ));
            }
        }
        // Functions returning an Api handle: name -> (kind, scope).
        let mut fns: BTreeMap<String, (String, BTreeSet<Scope>)> = BTreeMap::new();
        let mut from = 0;
        while let Some(p) = s.masked[from..].find("-> Api") {
            let arrow = from + p;
            from = arrow + 2;
            let Some((kind, after)) = api_kind_at(&s.masked, arrow + 3) else {
                continue;
            };
            let Some(fn_at) = s.masked[..arrow].rfind("fn ") else {
                continue;
            };
            let name_start = fn_at + 3;
            let name_end = name_start
                + s.masked[name_start..]
                    .bytes()
                    .take_while(|&c| is_ident(c))
                    .count();
            let Some(open) = s.masked[after..].find('{').map(|o| after + o) else {
                continue;
            };
            let close = matching(b, open);
            let scope = constructor_scopes(&s.code[open..=close], &consts);
            let kind = if kind == DYNAMIC {
                match dynamic_kind(&s.code[open..=close], &resources) {
                    Some(k) => k,
                    None => {
                        problems.push(format!(
                            "{}: cannot tell which resource the Api<{DYNAMIC}> of this fn is",
                            at(arrow)
                        ));
                        continue;
                    }
                }
            } else {
                kind
            };
            match scope {
                Some(sc) => {
                    fns.insert(
                        s.masked[name_start..name_end].to_string(),
                        (kind, BTreeSet::from([sc])),
                    );
                }
                None => problems.push(format!(
                    "{}: cannot tell where the Api<{kind}> of this fn points",
                    at(arrow)
                )),
            }
        }
        // Every scope the file constructs each kind with (for struct fields and parameters).
        let mut kind_scopes: BTreeMap<String, BTreeSet<Scope>> = BTreeMap::new();
        // Declarations: `let` bindings and `name: Api<K>` fields and parameters.
        let mut decls: Vec<Decl> = Vec::new();
        let mut from = 0;
        while let Some(p) = s.masked[from..].find("let ") {
            let at_let = from + p;
            from = at_let + 4;
            if at_let > 0 && is_ident(b[at_let - 1]) {
                continue;
            }
            let mut name_start = at_let + 4;
            if s.masked[name_start..].starts_with("mut ") {
                name_start += 4;
            }
            let name_end = name_start
                + s.masked[name_start..]
                    .bytes()
                    .take_while(|&c| is_ident(c))
                    .count();
            if name_end == name_start {
                continue; // a pattern: `let (a, b) = ...`, `let Some(x) = ...`
            }
            let name = s.masked[name_start..name_end].to_string();
            // The statement: to the `;` at depth 0.
            let mut depth = 0i32;
            let mut end = name_end;
            while end < b.len() {
                match b[end] {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth -= 1,
                    b';' if depth == 0 => break,
                    _ => {}
                }
                if depth < 0 {
                    break;
                }
                end += 1;
            }
            let stmt = &s.masked[name_end..end];
            // `: Type` before the first `=`, the initializer after it.
            let eq = stmt.find('=');
            let ty = &stmt[..eq.unwrap_or(stmt.len())];
            let ty_kind = ty
                .trim_start()
                .starts_with(':')
                .then(|| ty.find("Api"))
                .flatten()
                .and_then(|a| api_kind_at(&s.masked, name_end + a).map(|(k, _)| k));
            let init_abs = eq.map(|e| {
                let from = name_end + e + 1;
                from + (s.masked[from..end].len() - s.masked[from..end].trim_start().len())
            });
            let init = init_abs.map(|i| handle_of(s, i, end, &fns, &consts));
            let api = match (ty_kind, init.flatten()) {
                (Some(kind), Some(_)) | (None, Some((kind, _))) if kind == DYNAMIC => {
                    let expr = &s.code[init_abs.unwrap_or(end)..end];
                    let scope = constructor_scopes(expr, &consts);
                    match (dynamic_kind(expr, &resources), scope) {
                        (Some(k), Some(sc)) => Some((k, BTreeSet::from([sc]))),
                        _ => {
                            problems.push(format!(
                                "{}: cannot tell which resource this Api<{DYNAMIC}> is; build it \
                                 with Api::all_with / Api::namespaced_with from a fn returning \
                                 an ApiResource literal",
                                at(at_let)
                            ));
                            None
                        }
                    }
                }
                (Some(kind), Some((_, scope))) => Some((kind, BTreeSet::from([scope]))),
                (None, Some((kind, _))) if kind.is_empty() => {
                    problems.push(format!(
                        "{}: an Api handle without a visible kind; write `let x: Api<Kind>`",
                        at(at_let)
                    ));
                    None
                }
                (None, Some((kind, scope))) => Some((kind, BTreeSet::from([scope]))),
                (Some(kind), None) => {
                    problems.push(format!(
                        "{}: cannot tell where this Api<{kind}> points",
                        at(at_let)
                    ));
                    None
                }
                (None, None) => None,
            };
            if let Some((kind, scopes)) = &api {
                kind_scopes
                    .entry(kind.clone())
                    .or_default()
                    .extend(scopes.iter().cloned());
            }
            decls.push(Decl {
                name,
                at: at_let,
                api,
                typed: false,
            });
        }
        for (kind, (_, scopes)) in fns.iter().map(|(n, v)| (v.0.clone(), (n, v.1.clone()))) {
            kind_scopes.entry(kind).or_default().extend(scopes);
        }
        for (p, kind) in &types {
            // `name: Api<K>` or `name: &Api<K>`, not in a `let`.
            let before = s.masked[..*p].trim_end().trim_end_matches('&').trim_end();
            let Some(before) = before.strip_suffix(':') else {
                continue;
            };
            let before = before.trim_end();
            let (start, name) = ident_before(&s.masked, before.len());
            let prefix = s.masked[..start].trim_end();
            if name.is_empty() || prefix.ends_with("let") || prefix.ends_with("mut") {
                continue;
            }
            decls.push(Decl {
                name: name.to_string(),
                at: start,
                api: Some((kind.clone(), BTreeSet::new())),
                typed: true,
            });
        }
        // Fields and parameters take every scope the file gives their kind.
        for d in decls.iter_mut().filter(|d| d.typed) {
            if let Some((kind, scopes)) = &mut d.api {
                *scopes = kind_scopes.get(kind).cloned().unwrap_or_default();
                if scopes.is_empty() {
                    scopes.insert(Scope::AnyNamespace);
                }
            }
        }
        // Calls.
        let mut i = 0;
        while let Some(p) = s.masked[i..].find('.') {
            let dot = i + p;
            i = dot + 1;
            let name_start = dot
                + 1
                + s.masked[dot + 1..]
                    .bytes()
                    .take_while(|c| c.is_ascii_whitespace())
                    .count();
            let name_end = name_start
                + s.masked[name_start..]
                    .bytes()
                    .take_while(|&c| is_ident(c))
                    .count();
            let method = &s.masked[name_start..name_end];
            let after = s.masked[name_end..].trim_start();
            if !after.starts_with('(') && !after.starts_with("::<") {
                continue;
            }
            if method == "apiserver_version" {
                found.push(Found {
                    at: at(dot),
                    grant: grant("", "/version", "get", Scope::NonResource, None),
                });
                continue;
            }
            let known = METHODS.iter().any(|(m, _)| *m == method);
            let other = OTHER_KUBE_METHODS.contains(&method);
            if !known && !other {
                continue;
            }
            let args_open = name_end + (s.masked[name_end..].len() - after.len());
            let args = if after.starts_with('(') {
                &s.masked[args_open..=matching(b, args_open)]
            } else {
                ""
            };
            // The receiver.
            let end = skip_ws_back(b, dot);
            let resolved: Option<(String, BTreeSet<Scope>)> = if end > 0 && b[end - 1] == b')' {
                let open = matching_back(b, end - 1);
                let head_end = skip_ws_back(b, open);
                let mut head_start = head_end;
                while head_start > 0
                    && (is_ident(b[head_start - 1]) || b"<>:".contains(&b[head_start - 1]))
                {
                    head_start -= 1;
                }
                let head = &s.masked[head_start..head_end];
                if head.starts_with("Api::<") {
                    let expr = &s.code[head_start..end];
                    let kind = api_kind_at(&s.masked, head_start).map(|(k, _)| k);
                    let kind = match kind {
                        Some(k) if k == DYNAMIC => dynamic_kind(expr, &resources),
                        k => k,
                    };
                    let scope = constructor_scopes(expr, &consts);
                    match (kind, scope) {
                        (Some(k), Some(sc)) => Some((k, BTreeSet::from([sc]))),
                        _ => None,
                    }
                } else {
                    let fname = head.rsplit("::").next().unwrap_or(head);
                    fns.get(fname).cloned()
                }
            } else {
                let (start, name) = ident_before(&s.masked, end);
                let via_self = start > 0 && b[start - 1] == b'.';
                let named = decls.iter().filter(|d| d.name == name);
                if via_self {
                    // `self.name`: a struct field, wherever it is declared.
                    named.filter(|d| d.typed).find_map(|d| d.api.clone())
                } else {
                    // A local: the nearest declaration before the call.
                    named
                        .filter(|d| d.at < dot)
                        .max_by_key(|d| d.at)
                        .and_then(|d| d.api.clone())
                }
            };
            match resolved {
                Some((kind, scopes)) if known && known_kind(&kind) => {
                    found.extend(calls_of(&at(dot), &kind, &scopes, method))
                }
                Some((kind, _)) if known => problems.push(format!(
                    "{}: .{method}( on an Api<{kind}> the scanner cannot map to a resource \
                     (a dynamic handle passed around, or a kind missing from KINDS)",
                    at(dot)
                )),
                Some((kind, _)) => problems.push(format!(
                    "{}: Api<{kind}>::{method} is not mapped to RBAC verbs by the scanner",
                    at(dot)
                )),
                None if KUBE_PARAMS.iter().any(|k| args.contains(k)) => {
                    problems.push(format!(
                        "{}: .{method}( with kube-rs params on a receiver the scanner cannot resolve to an Api<Kind>",
                        at(dot)
                    ))
                }
                None if method == "exec" && s.uses_kube() => problems.push(format!(
                    "{}: .exec( on a receiver the scanner cannot resolve to an Api<Kind>",
                    at(dot)
                )),
                None => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn code_sources() -> Vec<Source> {
    // The product and the crates that run as netassay: the sandbox crate is left out, it is an
    // API server and a node (with the cluster's own admin identity), never netassay's client.
    let mut files = Vec::new();
    for dir in ["src", "crates/core/src", "crates/agent/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
            Source::new(&rel, &read(f))
        })
        .collect()
}

fn keys(grants: impl IntoIterator<Item = Grant>) -> BTreeSet<Grant> {
    grants
        .into_iter()
        .map(|g| Grant { name: None, ..g })
        .collect()
}

#[test]
fn api_calls_in_the_code_are_exactly_the_list() {
    let sources = code_sources();
    let cluster: Vec<&Source> = sources
        .iter()
        .filter(|s| s.file.starts_with("src/cluster/"))
        .collect();
    assert!(cluster.len() >= 5, "src/cluster/*.rs found");
    let found = scan(&sources).unwrap_or_else(|problems| {
        panic!(
            "the scanner cannot account for these calls:\n  {}",
            problems.join("\n  ")
        )
    });
    let in_code = keys(found.iter().map(|f| f.grant.clone()));
    let listed = keys(api_calls());
    let mut msg = String::new();
    for g in in_code.difference(&listed) {
        let wheres: Vec<&str> = found
            .iter()
            .filter(|f| keys([f.grant.clone()]).contains(g))
            .map(|f| f.at.as_str())
            .collect();
        msg.push_str(&format!(
            "\n  called but not in api_calls() (and so not in rbac.yaml): {g} at {}",
            wheres.join(", ")
        ));
    }
    for g in listed.difference(&in_code) {
        msg.push_str(&format!(
            "\n  in api_calls() but never called (drop it from the list and rbac.yaml): {g}"
        ));
    }
    assert!(
        msg.is_empty(),
        "API calls and the checked list disagree:{msg}"
    );
}

// The scanner itself, on the patterns the code uses and the ones it must refuse.

fn scan_snippet(text: &str) -> Result<BTreeSet<String>, Vec<String>> {
    scan(&[Source::new("snippet.rs", text)]).map(|found| {
        found
            .into_iter()
            .map(|f| f.grant.to_string())
            .collect::<BTreeSet<_>>()
    })
}

#[test]
fn scanner_attributes_calls_through_every_kind_of_handle() {
    let found = scan_snippet(
        r#"
        use kube::Api;
        pub const HOME: &str = "home";
        struct Lock { api: Api<Lease> }
        fn lock(client: kube::Client) -> Lock {
            let api: Api<Lease> = Api::namespaced(client, HOME);
            Lock { api }
        }
        impl Lock {
            async fn renew(&self) { self.api.replace("l", &PostParams::default(), &x).await; }
        }
        fn policies(&self, ns: &str) -> Api<NetworkPolicy> {
            Api::namespaced(self.client.clone(), self.names.real(ns))
        }
        async fn step(&self, client: kube::Client) {
            self.policies(&d.namespace).delete(&d.name, &DeleteParams::default()).await;
            let api = self.policies(&ns);
            api.get_opt(&name).await;
            let n = Api::<Node>::all(client.clone())
                .list(&ListParams::default()).await;
            let ds = Api::<DaemonSet>::namespaced(client.clone(), "kube-system");
            ds.list(&ListParams::default()).await;
            let pods: Api<Pod> = Api::namespaced(client.clone(), &real);
            pods.exec("a", ["netassay"], &ap).await;
            // pods.delete("a", &DeleteParams::default()) in a comment does not count
            let text = "nor api.create(&PostParams::default(), &x) in a string";
            let map = BTreeMap::new();
            map.get(&key);
            client.apiserver_version().await;
        }
        #[cfg(test)]
        mod tests {
            fn t(api: Api<Pod>) { api.delete("x", &DeleteParams::default()); }
        }
        "#,
    )
    .expect("every call attributed");
    let expected: BTreeSet<String> = [
        "update coordination.k8s.io/leases Namespace(\"home\")",
        "delete networking.k8s.io/networkpolicies AnyNamespace",
        "get networking.k8s.io/networkpolicies AnyNamespace",
        "list core/nodes Cluster",
        "list apps/daemonsets Namespace(\"kube-system\")",
        "create core/pods/exec AnyNamespace",
        "get core/pods/exec AnyNamespace",
        "get core//version NonResource",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn scanner_attributes_dynamic_handles_to_their_api_resource_literal() {
    let found = scan_snippet(
        r#"
        use kube::core::{ApiResource, DynamicObject};
        use kube::Api;
        fn gateways() -> ApiResource {
            ApiResource {
                group: "gateway.networking.k8s.io".into(),
                version: "v1".into(),
                api_version: String::from("gateway.networking.k8s.io/v1"),
                kind: "Gateway".to_string(),
                plural: "gateways".into(),
            }
        }
        fn home_gateways(c: kube::Client) -> Api<DynamicObject> {
            Api::namespaced_with(c, "home", &gateways())
        }
        async fn f(c: kube::Client, ns: &str) {
            let all: Api<DynamicObject> = Api::all_with(c.clone(), &gateways());
            all.list(&ListParams::default()).await;
            let one = Api::<DynamicObject>::namespaced_with(c.clone(), ns, &self::gateways());
            one.create(&PostParams::default(), &obj).await;
            Api::<DynamicObject>::all_with(c.clone(), &gateways())
                .get("x")
                .await;
            home_gateways(c.clone()).delete("x", &DeleteParams::default()).await;
            let gw: &DynamicObject = &list.items[0]; // data, not access
        }
        "#,
    )
    .expect("every dynamic call attributed");
    let expected: BTreeSet<String> = [
        "list gateway.networking.k8s.io/gateways AnyNamespace",
        "create gateway.networking.k8s.io/gateways AnyNamespace",
        "get gateway.networking.k8s.io/gateways AnyNamespace",
        "delete gateway.networking.k8s.io/gateways Namespace(\"home\")",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn scanner_refuses_calls_it_cannot_attribute() {
    let cases = [
        // A new kind.
        "use kube::Api; fn f(c: kube::Client) { let s: Api<Secret> = Api::all(c); s.list(&ListParams::default()); }",
        // A handle it cannot follow.
        "use kube::Api; fn f(h: &Handles) { h.pods().create(&PostParams::default(), &p); }",
        // A kube-rs method with no verb mapping.
        "use kube::Api; fn f(c: kube::Client) { let p: Api<Pod> = Api::all(c); p.watch(&WatchParams::default(), \"0\"); }",
        // A handle whose kind is left to inference.
        "use kube::Api; fn f(c: kube::Client) { let p = Api::namespaced(c, \"x\"); p.list(&ListParams::default()); }",
        // Dynamic access whose resource the scanner cannot read: from elsewhere, from
        // discovery, from a GVK, with a field that is not a literal, of a kind not in KINDS,
        // with struct update syntax, through a field, or built inline from something else.
        "use kube::core::{ApiResource, DynamicObject}; fn f(c: kube::Client, ar: &ApiResource) { let d: Api<DynamicObject> = Api::all_with(c, ar); d.list(&ListParams::default()); }",
        "use kube::discovery; fn f(c: kube::Client) { let (ar, _) = discovery::pinned_kind(&c, &gvk).await; let d: Api<DynamicObject> = Api::all_with(c, &ar); d.list(&ListParams::default()); }",
        "use kube::core::ApiResource; fn ar() -> ApiResource { ApiResource::from_gvk(&gvk) } fn f(c: kube::Client) { let d: Api<DynamicObject> = Api::all_with(c, &ar()); d.list(&ListParams::default()); }",
        r#"use kube::core::ApiResource; fn ar(g: &str) -> ApiResource { ApiResource { group: g.into(), version: "v1".into(), api_version: "gateway.networking.k8s.io/v1".into(), kind: "Gateway".into(), plural: "gateways".into() } } fn f(c: kube::Client) { let d: Api<DynamicObject> = Api::all_with(c, &ar("x")); d.list(&ListParams::default()); }"#,
        r#"use kube::core::ApiResource; fn routes() -> ApiResource { ApiResource { group: "gateway.networking.k8s.io".into(), version: "v1".into(), api_version: "gateway.networking.k8s.io/v1".into(), kind: "GRPCRoute".into(), plural: "grpcroutes".into() } } fn f(c: kube::Client) { let d: Api<DynamicObject> = Api::all_with(c, &routes()); d.list(&ListParams::default()); }"#,
        r#"use kube::core::ApiResource; fn gw() -> ApiResource { ApiResource { group: "gateway.networking.k8s.io".into(), kind: "Gateway".into(), plural: "gateways".into(), ..base() } } fn f(c: kube::Client) { let d: Api<DynamicObject> = Api::all_with(c, &gw()); d.list(&ListParams::default()); }"#,
        "use kube::Api; struct S { gw: Api<DynamicObject> } impl S { async fn f(&self) { self.gw.list(&ListParams::default()).await; } }",
        "use kube::Api; fn f(c: kube::Client) { Api::<DynamicObject>::all_with(c, &ars[0]).list(&ListParams::default()); }",
        // Raw access.
        "fn f(c: kube::Client) { c.request::<Status>(req); }",
    ];
    for text in cases {
        assert!(
            scan_snippet(text).is_err(),
            "the scanner should refuse: {text}"
        );
    }
}
