//! The one builder of every object netassay creates: fixture namespaces, probe pods, services.
//! Pure: objects in, objects out (DESIGN §9 labels, restricted Pod Security).

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, Namespace as K8sNamespace, Pod as K8sPod,
    PodSecurityContext, PodSpec, Probe, SeccompProfile, SecurityContext, Service, ServicePort,
    ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netassay_core::model::{Namespace, Pod, Protocol};
use std::collections::BTreeMap;

pub use netassay_core::objects::{MANAGED_BY, MANAGER, RUN_LABEL};
/// Names the pod a fixture Service selects; never used by scenario policies.
pub const POD_LABEL: &str = "netassay.io/pod";
/// RFC 3339 time after which `netassay cleanup --all-expired` may delete the namespace.
pub const EXPIRES_ANNOTATION: &str = "netassay.io/expires";
pub const READY_FILE: &str = "/tmp/netassay-ready.json";

/// What a fixture's objects look like beyond the topology.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub image: String,
    pub image_pull_secret: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// Expiry annotation value for namespaces.
    pub expires: String,
}

/// The labels on everything a run creates (DESIGN §9).
pub fn ownership(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (RUN_LABEL.to_string(), run.to_string()),
    ])
}

pub fn namespace(real: &str, ns: &Namespace, run: &str, opts: &FixtureOptions) -> K8sNamespace {
    let mut labels = ownership(run);
    for (k, v) in &ns.labels {
        // The API server sets the name label itself, to the real name.
        if k != netassay_core::model::NAMESPACE_NAME_LABEL {
            labels.insert(k.clone(), v.clone());
        }
    }
    labels.insert(
        "pod-security.kubernetes.io/enforce".into(),
        "restricted".into(),
    );
    K8sNamespace {
        metadata: ObjectMeta {
            name: Some(real.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                EXPIRES_ANNOTATION.to_string(),
                opts.expires.clone(),
            )])),
            ..ObjectMeta::default()
        },
        ..K8sNamespace::default()
    }
}

/// The `--listen` value for a pod's served ports: `tcp:80,udp:80,...`.
pub fn listen_arg(pod: &Pod) -> String {
    pod.serve
        .iter()
        .map(|p| format!("{}:{}", p.protocol.lower(), p.port))
        .collect::<Vec<_>>()
        .join(",")
}

/// A probe pod's labels in the cluster: the run's, the topology's, and [`POD_LABEL`].
pub fn pod_labels(pod: &Pod, run: &str) -> BTreeMap<String, String> {
    let mut labels = ownership(run);
    labels.extend(pod.labels.clone());
    labels.insert(POD_LABEL.into(), pod.id.name.clone());
    labels
}

pub fn pod(real_ns: &str, pod: &Pod, run: &str, opts: &FixtureOptions) -> K8sPod {
    let labels = pod_labels(pod, run);
    let mut ports: Vec<ContainerPort> = pod
        .serve
        .iter()
        .map(|p| ContainerPort {
            container_port: i32::from(p.port),
            name: p.name.clone(),
            protocol: Some(p.protocol.as_str().to_string()),
            ..ContainerPort::default()
        })
        .collect();
    if let Some(h) = pod.http {
        ports.push(ContainerPort {
            container_port: i32::from(h),
            name: Some(netassay_core::model::HTTP_PORT_NAME.into()),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        });
    }
    let mut command: Vec<String> = vec![
        "netassay".into(),
        "agent".into(),
        "serve".into(),
        "--identity".into(),
        pod.id.to_string(),
        "--listen".into(),
        listen_arg(pod),
        "--ready-file".into(),
        READY_FILE.into(),
    ];
    if let Some(h) = pod.http {
        command.extend(["--http".into(), h.to_string()]);
    }
    let readiness = pod
        .serve
        .iter()
        .find(|p| p.protocol == Protocol::Tcp)
        .map(|p| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(p.port)),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(1),
            ..Probe::default()
        });
    K8sPod {
        metadata: ObjectMeta {
            name: Some(pod.id.name.clone()),
            namespace: Some(real_ns.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            node_selector: (!opts.node_selector.is_empty()).then(|| opts.node_selector.clone()),
            image_pull_secrets: opts.image_pull_secret.as_ref().map(|s| {
                vec![k8s_openapi::api::core::v1::LocalObjectReference { name: s.clone() }]
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                // Lets the non-root agent bind ports 80/81 (a namespaced, "safe" sysctl).
                sysctls: Some(vec![k8s_openapi::api::core::v1::Sysctl {
                    name: "net.ipv4.ip_unprivileged_port_start".into(),
                    value: "0".into(),
                }]),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "agent".into(),
                image: Some(opts.image.clone()),
                // Never Always (the API's default for `:latest`, which the default --image is):
                // a node that already has the image (air-gapped, preloaded, or the sandbox's
                // real kubelet, which imports it) must not need a registry for each pod.
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(command),
                ports: Some(ports),
                readiness_probe: readiness,
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..K8sPod::default()
    }
}

/// A ClusterIP Service for one pod; every port targets the container port by name where it has one.
pub fn service(real_ns: &str, pod: &Pod, run: &str) -> Service {
    let ports = pod
        .serve
        .iter()
        .map(|p| ServicePort {
            name: Some(format!("{}-{}", p.protocol.lower(), p.port)),
            port: i32::from(p.port),
            protocol: Some(p.protocol.as_str().to_string()),
            target_port: Some(match &p.name {
                Some(n) => IntOrString::String(n.clone()),
                None => IntOrString::Int(i32::from(p.port)),
            }),
            ..ServicePort::default()
        })
        .chain(pod.http.map(|h| ServicePort {
            name: Some(netassay_core::model::HTTP_PORT_NAME.into()),
            port: i32::from(h),
            protocol: Some("TCP".into()),
            target_port: Some(IntOrString::String(
                netassay_core::model::HTTP_PORT_NAME.into(),
            )),
            ..ServicePort::default()
        }))
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(pod.id.name.clone()),
            namespace: Some(real_ns.to_string()),
            labels: Some(ownership(run)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                POD_LABEL.to_string(),
                pod.id.name.clone(),
            )])),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The host name of the route that exposes a pod's HTTP port through the gateway:
/// `<pod>-<real namespace>.<suffix>` (unique per run, a valid DNS name).
pub fn route_host(real_ns: &str, pod: &Pod, suffix: &str) -> String {
    format!("{}-{real_ns}.{suffix}", pod.id.name)
}

/// A Gateway API HTTPRoute that sends `host` to the pod's Service, HTTP port, attached to the
/// profile's Gateway.
pub fn http_route(
    real_ns: &str,
    pod: &Pod,
    run: &str,
    host: &str,
    parent: &crate::scenario::profile::ParentRef,
) -> serde_json::Value {
    let mut parent_ref = serde_json::json!({
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": parent.namespace,
        "name": parent.name,
    });
    if let Some(section) = &parent.section_name {
        parent_ref["sectionName"] = serde_json::Value::String(section.clone());
    }
    serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": pod.id.name,
            "namespace": real_ns,
            "labels": ownership(run),
        },
        "spec": {
            "parentRefs": [parent_ref],
            "hostnames": [host],
            "rules": [{
                "backendRefs": [{
                    "name": pod.id.name,
                    "port": pod.http.unwrap_or(80),
                }]
            }]
        }
    })
}

/// An Ingress that sends `host` to the pod's Service, HTTP port.
pub fn ingress(
    real_ns: &str,
    pod: &Pod,
    run: &str,
    host: &str,
    class: Option<&str>,
) -> k8s_openapi::api::networking::v1::Ingress {
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
        IngressServiceBackend, IngressSpec, ServiceBackendPort,
    };
    Ingress {
        metadata: ObjectMeta {
            name: Some(pod.id.name.clone()),
            namespace: Some(real_ns.to_string()),
            labels: Some(ownership(run)),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: class.map(str::to_string),
            rules: Some(vec![IngressRule {
                host: Some(host.to_string()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: pod.id.name.clone(),
                                port: Some(ServiceBackendPort {
                                    number: pod.http.map(i32::from),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netassay_core::model::Topology;

    fn opts() -> FixtureOptions {
        FixtureOptions {
            image: "registry.local/netassay:1".into(),
            image_pull_secret: Some("pull".into()),
            node_selector: BTreeMap::new(),
            expires: "2026-11-26T12:00:00Z".into(),
        }
    }

    #[test]
    fn probe_pods_pass_restricted_pod_security_and_carry_run_labels() {
        let t = Topology::standard();
        let p = pod("netassay-r1-x", &t.pods[0], "r1", &opts());
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(MANAGED_BY).map(String::as_str), Some("netassay"));
        assert_eq!(labels.get(RUN_LABEL).map(String::as_str), Some("r1"));
        assert_eq!(labels.get("pod").map(String::as_str), Some("a"));
        let spec = p.spec.expect("spec");
        assert_eq!(spec.termination_grace_period_seconds, Some(0));
        let psc = spec.security_context.expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.map(|s| s.type_),
            Some("RuntimeDefault".into())
        );
        let c = &spec.containers[0];
        let sc = c
            .security_context
            .clone()
            .expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(c.image.as_deref(), Some("registry.local/netassay:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let cmd = c.command.clone().unwrap_or_default().join(" ");
        assert!(
            cmd.starts_with(
                "netassay agent serve --identity x/a --listen tcp:80,udp:80,sctp:80,tcp:81"
            ),
            "{cmd}"
        );
        let names: Vec<_> = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone())
            .collect();
        assert!(names.contains(&"serve-81-udp".to_string()));
        assert!(c.readiness_probe.is_some());
    }

    #[test]
    fn services_target_named_ports() {
        let t = Topology::standard();
        let s = service("netassay-r1-x", &t.pods[0], "r1");
        let spec = s.spec.expect("spec");
        assert_eq!(
            spec.selector.and_then(|s| s.get(POD_LABEL).cloned()),
            Some("a".into())
        );
        let p = &spec.ports.expect("ports")[0];
        assert_eq!(
            p.target_port,
            Some(IntOrString::String("serve-80-tcp".into()))
        );
    }

    #[test]
    fn namespaces_keep_topology_labels_but_not_the_logical_name_label() {
        let t = Topology::standard();
        let n = namespace("netassay-r1-x", &t.namespaces[0], "r1", &opts());
        let labels = n.metadata.labels.expect("labels");
        assert!(!labels.contains_key(netassay_core::model::NAMESPACE_NAME_LABEL));
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        assert!(n
            .metadata
            .annotations
            .expect("annotations")
            .contains_key(EXPIRES_ANNOTATION));
    }
}
