//! Sandbox presets: the cluster-wide configuration a real platform would bring, stood in for by
//! objects the emulator creates itself. One preset so far, `k8tre` (the K8TRE profile, issue 7):
//! a gateway as the only exposure, and in every persona namespace the NetworkPolicies a real TRE
//! selects by namespace label.
//!
//! With a [`PresetScale`] (`--sandbox-scale projects=N`) the preset also brings a TRE of its
//! own: N projects with their workspaces and shared services, and the platform's services.
//!
//! [`PresetFault`]s reproduce real mistakes found in TRE repositories (see
//! ../shared/tre-policies/SOURCES.md): they change what the preset creates, not the CNI.

use crate::addresses::MIRROR_ADDRESS;
use crate::gateway_api::SANDBOX_GATEWAY_CLASS;
use crate::object::Object;
use netassay_core::model::{Labels, NAMESPACE_NAME_LABEL};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

mod scale;
pub use scale::{
    PresetScale, ScaleParseError, PLATFORM_NAMESPACE, PLATFORM_SERVICES, SHARED_SERVICE,
    WORKLOAD_PORT, WORKSPACES_PER_PROJECT,
};

/// The namespace label whose value names a namespace's persona.
pub const PERSONA_LABEL: &str = "k8tre.io/resource-type";
/// The label every preset object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "netassay-sandbox-preset";

/// The gateway: namespace, pod, LoadBalancer Service and Gateway object (the last two share a
/// name), and its ports.
pub const GATEWAY_NAMESPACE: &str = "tre-gateway";
pub const GATEWAY_POD: &str = "gateway";
pub const GATEWAY_NAME: &str = "tre-gateway";
pub const GATEWAY_PORT: u16 = 80;
pub const GATEWAY_TARGET_PORT: u16 = 8080;
/// What the gateway pod answers as.
pub const GATEWAY_IDENTITY: &str = "tre-gateway/gateway";

/// A sandbox preset (`--sandbox-preset NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Preset {
    /// `k8tre`: the gateway, and the TRE's standard policies in every persona namespace.
    K8tre,
}

impl Preset {
    pub const ALL_NAMES: [&'static str; 1] = ["k8tre"];

    pub fn name(&self) -> &'static str {
        match self {
            Preset::K8tre => "k8tre",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Preset::K8tre => {
                "K8TRE: a gateway on the node address as the only exposure; default-deny, same-namespace, DNS, mirror and from-gateway policies in every namespace labelled k8tre.io/resource-type (project-namespace, infrastructure)"
            }
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sandbox preset {0:?}: expected one of {names}", names = Preset::ALL_NAMES.join(", "))]
pub struct PresetParseError(pub String);

impl FromStr for Preset {
    type Err = PresetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "k8tre" => Ok(Preset::K8tre),
            other => Err(PresetParseError(other.to_string())),
        }
    }
}

/// A mistake in the platform's own configuration, applied by the preset it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PresetFault {
    /// `k8tre-allow-all`: project namespaces also get an `allow-all` policy (cr8tor's allow-all
    /// next to narrow rules).
    AllowAll,
    /// `k8tre-ports-only-egress`: the mirror rule is written as two rules, the second with ports
    /// only (the K8TRE docs' separate toPorts rule), which opens 443 to every destination.
    PortsOnlyEgress,
    /// `k8tre-nodeport`: project namespaces also get Service `exposed-web` of type NodePort (an
    /// app exposed on every node, bypassing the gateway).
    NodePort,
}

impl PresetFault {
    /// The `--sandbox-fault` names, in the order `describe` lists them.
    pub const ALL_NAMES: [&'static str; 3] = [
        "k8tre-allow-all",
        "k8tre-ports-only-egress",
        "k8tre-nodeport",
    ];

    pub const ALL: [PresetFault; 3] = [
        PresetFault::AllowAll,
        PresetFault::PortsOnlyEgress,
        PresetFault::NodePort,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            PresetFault::AllowAll => "k8tre-allow-all",
            PresetFault::PortsOnlyEgress => "k8tre-ports-only-egress",
            PresetFault::NodePort => "k8tre-nodeport",
        }
    }

    /// The preset the fault needs.
    pub fn preset(&self) -> Preset {
        Preset::K8tre
    }

    /// What the fault does, in one line.
    pub fn describe(&self) -> &'static str {
        match self {
            PresetFault::AllowAll => {
                "project namespaces also get an allow-all NetworkPolicy next to the narrow ones"
            }
            PresetFault::PortsOnlyEgress => {
                "the mirror egress rule is split in two, and its ports-only half opens TCP 443 to every destination"
            }
            PresetFault::NodePort => {
                "project namespaces also get a NodePort Service exposed-web (app=web, port 80), bypassing the gateway"
            }
        }
    }
}

impl fmt::Display for PresetFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no preset fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset fault {0:?}: expected one of {names}", names = PresetFault::ALL_NAMES.join(", "))]
pub struct PresetFaultParseError(pub String);

impl FromStr for PresetFault {
    type Err = PresetFaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PresetFault::ALL
            .into_iter()
            .find(|f| f.name() == s.trim())
            .ok_or_else(|| PresetFaultParseError(s.trim().to_string()))
    }
}

/// The kinds of namespace a TRE distinguishes by its persona label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// `k8tre.io/resource-type: project-namespace`
    Project,
    /// `k8tre.io/resource-type: infrastructure`
    Infrastructure,
}

/// The persona a namespace's labels give it, if any.
pub fn persona(labels: &Labels) -> Option<Persona> {
    match labels.get(PERSONA_LABEL).map(String::as_str) {
        Some("project-namespace") => Some(Persona::Project),
        Some("infrastructure") => Some(Persona::Infrastructure),
        _ => None,
    }
}

/// A preset with the faults of it that are switched on: what the emulator applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetProfile {
    pub preset: Preset,
    /// Sorted, distinct, all of `preset`.
    pub faults: Vec<PresetFault>,
    /// The preset's own projects (`--sandbox-scale`); `None`: none, as without the flag.
    pub scale: Option<PresetScale>,
}

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a preset object is well-formed")
}

fn managed_labels() -> Value {
    json!({MANAGED_BY_LABEL: MANAGED_BY})
}

fn policy(namespace: &str, name: &str, spec: Value) -> Object {
    Object::NetworkPolicy(object(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": managed_labels()},
        "spec": spec,
    })))
}

/// The namespaces, pods and Services of a scaled TRE: the platform's infrastructure namespace
/// with its services, then each project with its workspaces and shared service; namespaces
/// before what is in them. No policy: the preset adds its own to every persona namespace.
pub fn scaled_tre_objects(scale: &PresetScale) -> Vec<Object> {
    let mut out = vec![persona_namespace(PLATFORM_NAMESPACE, "infrastructure")];
    for svc in PLATFORM_SERVICES {
        out.push(workload(PLATFORM_NAMESPACE, svc, svc));
        out.push(cluster_ip(PLATFORM_NAMESPACE, svc, svc));
    }
    for ns in scale.project_namespaces() {
        out.push(persona_namespace(&ns, "project-namespace"));
        for w in 1..=WORKSPACES_PER_PROJECT {
            out.push(workload(&ns, &format!("workspace-{w}"), "workspace"));
        }
        out.push(workload(&ns, SHARED_SERVICE, "shared-service"));
        out.push(cluster_ip(&ns, SHARED_SERVICE, "shared-service"));
    }
    out
}

fn persona_namespace(name: &str, persona: &str) -> Object {
    let mut labels = managed_labels();
    labels[PERSONA_LABEL] = json!(persona);
    Object::Namespace(object(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    })))
}

/// A pod running `agent serve` on [`WORKLOAD_PORT`], TCP and UDP, answering as
/// `namespace/name`.
fn workload(namespace: &str, name: &str, app: &str) -> Object {
    let mut labels = managed_labels();
    labels["app"] = json!(app);
    Object::Pod(object(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{
            "name": "app",
            "image": "netassay:sandbox",
            "command": [
                "netassay", "agent", "serve",
                "--identity", format!("{namespace}/{name}"),
                "--listen", format!("tcp:{WORKLOAD_PORT},udp:{WORKLOAD_PORT}"),
            ],
            "ports": [
                {"name": "web", "containerPort": WORKLOAD_PORT, "protocol": "TCP"},
                {"name": "web-udp", "containerPort": WORKLOAD_PORT, "protocol": "UDP"},
            ],
        }]},
    })))
}

fn cluster_ip(namespace: &str, name: &str, app: &str) -> Object {
    Object::Service(object(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": managed_labels()},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": app},
            "ports": [{"name": "web", "protocol": "TCP", "port": WORKLOAD_PORT, "targetPort": WORKLOAD_PORT}],
        },
    })))
}

impl PresetProfile {
    /// `preset` with those of `faults` (the run's preset faults) that belong to it.
    pub fn new(preset: Preset, faults: &[PresetFault]) -> PresetProfile {
        PresetProfile {
            preset,
            faults: faults
                .iter()
                .copied()
                .filter(|f| f.preset() == preset)
                .collect(),
            scale: None,
        }
    }

    /// This profile with the preset's own projects.
    pub fn with_scale(mut self, scale: Option<PresetScale>) -> PresetProfile {
        self.scale = scale;
        self
    }

    fn has(&self, fault: PresetFault) -> bool {
        self.faults.contains(&fault)
    }

    /// What a namespace with these labels gets: nothing unless it has a persona.
    pub fn namespace_objects(&self, namespace: &str, labels: &Labels) -> Vec<Object> {
        let Some(persona) = persona(labels) else {
            return Vec::new();
        };
        let mirror = format!("{MIRROR_ADDRESS}/32");
        let https = json!([{"protocol": "TCP", "port": 443}]);
        let mirror_egress = if self.has(PresetFault::PortsOnlyEgress) {
            json!([{"to": [{"ipBlock": {"cidr": mirror}}]}, {"ports": https}])
        } else {
            json!([{"to": [{"ipBlock": {"cidr": mirror}}], "ports": https}])
        };
        let name_is = |ns: &str| json!({"matchLabels": {NAMESPACE_NAME_LABEL: ns}});
        let mut out = vec![
            policy(
                namespace,
                "k8tre-default-deny",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            ),
            policy(
                namespace,
                "k8tre-allow-same-namespace",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                    "egress": [{"to": [{"podSelector": {}}]}],
                }),
            ),
            policy(
                namespace,
                "k8tre-allow-dns",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{
                            "namespaceSelector": name_is("kube-system"),
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }],
                }),
            ),
            policy(
                namespace,
                "k8tre-allow-mirror",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": mirror_egress}),
            ),
            policy(
                namespace,
                "k8tre-allow-from-gateway",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": name_is(GATEWAY_NAMESPACE)}]}],
                }),
            ),
        ];
        if persona == Persona::Project && self.has(PresetFault::AllowAll) {
            out.push(policy(
                namespace,
                "allow-all",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{}],
                    "egress": [{}],
                }),
            ));
        }
        if persona == Persona::Project && self.has(PresetFault::NodePort) {
            out.push(Object::Service(object(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "exposed-web", "namespace": namespace, "labels": managed_labels()},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}],
                },
            }))));
        }
        out
    }

    /// The gateway: its namespace (no persona label), the pod running `agent gateway` on
    /// `routes_file`, the LoadBalancer Service exposing it at the node's address, port 80 (and
    /// nowhere else: no node ports), and the Gateway object describing it. With a scale, then
    /// the TRE's own platform services and projects ([`PresetScale::objects`]).
    pub fn bootstrap_objects(&self, routes_file: &Path) -> Vec<Object> {
        let mut out = self.gateway_objects(routes_file);
        if let Some(scale) = &self.scale {
            out.extend(scaled_tre_objects(scale));
        }
        out
    }

    fn gateway_objects(&self, routes_file: &Path) -> Vec<Object> {
        let app = json!({"app": GATEWAY_NAME});
        let mut labels = managed_labels();
        labels["app"] = json!(GATEWAY_NAME);
        vec![
            Object::Namespace(object(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": GATEWAY_NAMESPACE, "labels": managed_labels()},
            }))),
            Object::Pod(object(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": GATEWAY_POD, "namespace": GATEWAY_NAMESPACE, "labels": labels},
                "spec": {"containers": [{
                    "name": "gateway",
                    "image": "netassay:sandbox",
                    "command": [
                        "netassay", "agent", "gateway",
                        "--listen", format!("0.0.0.0:{GATEWAY_TARGET_PORT}"),
                        "--routes", routes_file.display().to_string(),
                        "--identity", GATEWAY_IDENTITY,
                    ],
                    "ports": [{"name": "http", "containerPort": GATEWAY_TARGET_PORT, "protocol": "TCP"}],
                }]},
            }))),
            Object::Service(object(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE, "labels": managed_labels()},
                "spec": {
                    "type": "LoadBalancer",
                    "allocateLoadBalancerNodePorts": false,
                    "selector": app,
                    "ports": [{"name": "http", "protocol": "TCP", "port": GATEWAY_PORT, "targetPort": GATEWAY_TARGET_PORT}],
                },
            }))),
            Object::Gateway(object(json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE, "labels": managed_labels()},
                "spec": {
                    "gatewayClassName": SANDBOX_GATEWAY_CLASS,
                    "listeners": [{
                        "name": "http",
                        "port": GATEWAY_PORT,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }],
                },
            }))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use netassay_core::policy::validate::validate_network_policy;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn profile(faults: &str) -> PresetProfile {
        PresetProfile::new(
            Preset::K8tre,
            crate::fault::FaultSet::from_str(faults)
                .expect("faults")
                .preset_faults(),
        )
    }

    fn policies(objects: &[Object]) -> Vec<&NetworkPolicy> {
        objects
            .iter()
            .filter_map(|o| match o {
                Object::NetworkPolicy(np) => Some(np),
                _ => None,
            })
            .collect()
    }

    fn names(objects: &[Object]) -> Vec<String> {
        objects.iter().map(Object::describe).collect()
    }

    const PROJECT: (&str, &str) = (PERSONA_LABEL, "project-namespace");
    const INFRA: (&str, &str) = (PERSONA_LABEL, "infrastructure");

    #[test]
    fn presets_parse_and_print_by_name() {
        assert_eq!("k8tre".parse::<Preset>(), Ok(Preset::K8tre));
        assert_eq!(Preset::K8tre.to_string(), "k8tre");
        let err = "k8s".parse::<Preset>().unwrap_err();
        assert!(err.to_string().contains("k8tre"), "{err}");
        for (name, fault) in PresetFault::ALL_NAMES.iter().zip(PresetFault::ALL) {
            assert_eq!(name.parse::<PresetFault>(), Ok(fault));
            assert_eq!(fault.to_string(), *name);
            assert!(!fault.describe().is_empty());
        }
    }

    // Contract: whenever a namespace is labelled with a persona, it gets these five policies,
    // labelled as the preset's.
    #[test]
    fn every_persona_namespace_gets_the_five_standard_policies() {
        for persona in [PROJECT, INFRA] {
            let objects = profile("").namespace_objects("p1", &labels(&[persona]));
            assert_eq!(
                names(&objects),
                [
                    "NetworkPolicy p1/k8tre-default-deny",
                    "NetworkPolicy p1/k8tre-allow-same-namespace",
                    "NetworkPolicy p1/k8tre-allow-dns",
                    "NetworkPolicy p1/k8tre-allow-mirror",
                    "NetworkPolicy p1/k8tre-allow-from-gateway"
                ]
            );
            for np in policies(&objects) {
                assert_eq!(
                    np.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
                    MANAGED_BY
                );
                assert_eq!(validate_network_policy(np), vec![], "{np:?}");
            }
        }
        assert!(profile("k8tre-allow-all,k8tre-nodeport")
            .namespace_objects("x", &labels(&[(PERSONA_LABEL, "other"), ("team", "a")]))
            .is_empty());
    }

    #[test]
    fn the_standard_policies_say_what_the_contract_says() {
        let objects = profile("").namespace_objects("p1", &labels(&[PROJECT]));
        let specs: Vec<Value> = policies(&objects)
            .iter()
            .map(|np| serde_json::to_value(np.spec.as_ref().unwrap()).unwrap())
            .collect();
        assert_eq!(
            specs[0],
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        );
        assert_eq!(
            specs[1]["ingress"],
            json!([{"from": [{"podSelector": {}}]}])
        );
        assert_eq!(specs[1]["egress"], json!([{"to": [{"podSelector": {}}]}]));
        assert_eq!(
            specs[2]["egress"],
            json!([{
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }])
        );
        assert_eq!(
            specs[3]["egress"],
            json!([{"to": [{"ipBlock": {"cidr": "203.0.113.20/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}])
        );
        assert_eq!(
            specs[4]["ingress"],
            json!([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tre-gateway"}}}]}])
        );
    }

    // k8tre-allow-all and k8tre-nodeport add objects to project namespaces only.
    #[test]
    fn allow_all_and_nodeport_faults_add_to_project_namespaces_only() {
        let p = profile("k8tre-allow-all,k8tre-nodeport");
        let project = p.namespace_objects("p1", &labels(&[PROJECT]));
        assert_eq!(
            names(&project)[5..],
            ["NetworkPolicy p1/allow-all", "Service p1/exposed-web"]
        );
        let allow_all = serde_json::to_value(&policies(&project)[5].spec).unwrap();
        assert_eq!(
            allow_all,
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]})
        );
        let Object::Service(svc) = &project[6] else {
            panic!("a Service")
        };
        let spec = serde_json::to_value(svc.spec.as_ref().unwrap()).unwrap();
        assert_eq!(spec["type"], "NodePort");
        assert_eq!(spec["selector"], json!({"app": "web"}));
        assert_eq!(
            spec["ports"],
            json!([{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}])
        );
        assert_eq!(p.namespace_objects("i1", &labels(&[INFRA])).len(), 5);
    }

    // k8tre-ports-only-egress: the mirror rule becomes [{to: ipBlock}, {ports: 443}].
    #[test]
    fn the_ports_only_fault_splits_the_mirror_rule() {
        for persona in [PROJECT, INFRA] {
            let objects =
                profile("k8tre-ports-only-egress").namespace_objects("n", &labels(&[persona]));
            let mirror = policies(&objects)[3];
            assert_eq!(mirror.metadata.name.as_deref(), Some("k8tre-allow-mirror"));
            assert_eq!(
                serde_json::to_value(&mirror.spec.as_ref().unwrap().egress).unwrap(),
                json!([{"to": [{"ipBlock": {"cidr": "203.0.113.20/32"}}]}, {"ports": [{"protocol": "TCP", "port": 443}]}])
            );
        }
    }

    // Without a scale the preset is the gateway alone; with one, the gateway and then the
    // scaled TRE, whose persona namespaces get the five standard policies like any other.
    #[test]
    fn a_scaled_preset_adds_its_projects_after_the_gateway() {
        let routes = Path::new("/run/x/gateway.routes");
        let plain = profile("").bootstrap_objects(routes);
        assert_eq!(plain.len(), 4);
        let scale = PresetScale { projects: 3 };
        let scaled = profile("")
            .with_scale(Some(scale))
            .bootstrap_objects(routes);
        assert_eq!(names(&scaled[..4]), names(&plain));
        assert_eq!(names(&scaled[4..]), names(&scaled_tre_objects(&scale)));
        let policies: usize = scaled
            .iter()
            .filter_map(|o| match o {
                Object::Namespace(ns) => Some(profile("").namespace_objects(
                    ns.metadata.name.as_deref().unwrap(),
                    ns.metadata.labels.as_ref().unwrap(),
                )),
                _ => None,
            })
            .map(|objs| policies(&objs).len())
            .sum();
        // 3 projects and the platform namespace; the gateway's namespace has no persona.
        assert_eq!(policies, 5 * (3 + 1));
    }

    // Contract: N projects of two workspaces and a shared service (pod and Service) each, and
    // the platform's namespace with its services; namespaces carry their persona label.
    #[test]
    fn a_scale_of_n_projects_has_n_project_namespaces_and_three_pods_in_each() {
        let objects = scaled_tre_objects(&PresetScale { projects: 12 });
        let count = |kind: &str| {
            objects
                .iter()
                .filter(|o| o.describe().starts_with(kind))
                .count()
        };
        assert_eq!(count("Namespace "), 12 + 1);
        assert_eq!(count("Pod "), 12 * 3 + 2);
        assert_eq!(count("Service "), 12 + 2);
        assert_eq!(objects.len(), 13 + 38 + 14);
        let names = names(&objects);
        assert_eq!(
            names[..10],
            [
                "Namespace tre-platform",
                "Pod tre-platform/identity",
                "Service tre-platform/identity",
                "Pod tre-platform/hub",
                "Service tre-platform/hub",
                "Namespace project-001",
                "Pod project-001/workspace-1",
                "Pod project-001/workspace-2",
                "Pod project-001/shared-storage",
                "Service project-001/shared-storage",
            ]
        );
        assert_eq!(names.last().unwrap(), "Service project-012/shared-storage");
        for o in &objects {
            if let Object::Namespace(ns) = o {
                let want = if ns.metadata.name.as_deref() == Some(PLATFORM_NAMESPACE) {
                    Persona::Infrastructure
                } else {
                    Persona::Project
                };
                assert_eq!(persona(ns.metadata.labels.as_ref().unwrap()), Some(want));
            }
        }
    }

    #[test]
    fn scaled_workloads_serve_tcp_and_udp_8080_and_answer_as_themselves() {
        let objects = scaled_tre_objects(&PresetScale { projects: 2 });
        let Some(Object::Pod(pod)) = objects
            .iter()
            .find(|o| o.describe() == "Pod project-002/shared-storage")
        else {
            panic!("the shared service's pod")
        };
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.command.as_deref().unwrap(),
            [
                "netassay",
                "agent",
                "serve",
                "--identity",
                "project-002/shared-storage",
                "--listen",
                "tcp:8080,udp:8080"
            ]
        );
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["app"],
            "shared-service"
        );
    }

    #[test]
    fn the_gateway_is_a_pod_a_load_balancer_service_and_a_gateway_object() {
        let objects = profile("").bootstrap_objects(Path::new("/run/x/gateway.routes"));
        assert_eq!(
            names(&objects),
            [
                "Namespace tre-gateway",
                "Pod tre-gateway/gateway",
                "Service tre-gateway/tre-gateway",
                "Gateway tre-gateway/tre-gateway"
            ]
        );
        let Object::Pod(pod) = &objects[1] else {
            panic!("a Pod")
        };
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0]
                .command
                .as_deref()
                .unwrap(),
            [
                "netassay",
                "agent",
                "gateway",
                "--listen",
                "0.0.0.0:8080",
                "--routes",
                "/run/x/gateway.routes",
                "--identity",
                "tre-gateway/gateway"
            ]
        );
        let Object::Namespace(ns) = &objects[0] else {
            panic!("a Namespace")
        };
        assert_eq!(persona(ns.metadata.labels.as_ref().unwrap()), None);
    }
}
