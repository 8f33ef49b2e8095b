//! What the API server does to each kind before storing it: defaulting, validation, immutable fields.

use super::field_error::{forbidden, invalid_int, invalid_str, not_supported, required};
use super::status::ApiError;
use super::store::{Key, Kind, Store, METADATA_NAME_LABEL};
use super::table;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    HostIP, LoadBalancerIngress, LoadBalancerStatus, Namespace, NamespaceSpec, NamespaceStatus,
    Pod, PodCondition, PodStatus, Service, ServicePort, ServiceStatus,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use netassay_core::policy::validate::{
    is_dns1123_label, is_dns1123_subdomain, validate_labels, validate_network_policy, FieldError,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

// The `kubernetes` Service's address is never allocated and refused when asked for; cluster
// DNS's is never allocated, only given when asked for (kube-dns asks for it).
use crate::addresses::SERVICE_CIDR;
use crate::system::{DNS_SERVICE_IP, KUBERNETES_SERVICE_IP};

const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const SERVICE_TYPES: [&str; 3] = ["ClusterIP", "NodePort", "LoadBalancer"];
/// The API server's default `--service-node-port-range`.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Name (on create) and label checks shared by the kinds without their own meta validator.
pub(super) fn check_meta(
    meta: &ObjectMeta,
    creating: bool,
    name_rule: fn(&str) -> Vec<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = meta.name.as_deref().unwrap_or("");
    if creating {
        for m in name_rule(name) {
            errs.push(invalid_str("metadata.name", name, &m));
        }
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
}

pub(super) fn reject<K: Resource>(
    meta: &ObjectMeta,
    errs: Vec<FieldError>,
) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            K::GROUP,
            K::KIND,
            meta.name.as_deref().unwrap_or(""),
            &errs,
        ))
    }
}

/// IsDNS1035Label (Service names): a DNS-1123 label that starts with a letter.
pub(super) fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = is_dns1123_label(s);
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) && errs.is_empty() {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

impl Kind for Namespace {
    const COLUMNS: &'static [table::Column] = table::NAMESPACE_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::namespace_cells(self, now)
    }

    const NAMESPACED: bool = false;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = false;
    const FIELDS: &'static [&'static str] = &["metadata.name", "status.phase"];

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.namespaces
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.namespaces
    }

    fn admit(_: &Store, ns: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        check_meta(&ns.metadata, old.is_none(), is_dns1123_label, &mut errs);
        reject::<Self>(&ns.metadata, errs)?;
        // The server owns this label: it always equals the name, whatever the client sent.
        let name = ns.metadata.name.clone().unwrap_or_default();
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(METADATA_NAME_LABEL.to_string(), name);
        match old {
            Some(old) => {
                ns.spec = old.spec.clone();
                ns.status = old.status.clone();
            }
            None => {
                ns.spec = Some(NamespaceSpec {
                    finalizers: Some(vec!["kubernetes".to_string()]),
                });
                ns.status = Some(NamespaceStatus {
                    phase: Some("Active".to_string()),
                    ..Default::default()
                });
            }
        }
        Ok(())
    }

    fn stored(store: &mut Store, ns: &Self) {
        store.apply_preset(ns);
    }

    fn field(&self, label: &str) -> String {
        match label {
            "metadata.name" => self.metadata.name.clone().unwrap_or_default(),
            "status.phase" => self
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// Whether kubelet would pull an image always: its tag is `latest`, or it has neither tag nor
/// digest (the API server then defaults `imagePullPolicy` to `Always`).
fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// Where the ServiceAccount admission plugin mounts the token volume.
const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the real API server adds to a new pod beyond the fields above, so that `get -o yaml`
/// and `describe` read the same on both control planes: the remaining defaults
/// (`enableServiceLinks`, priority, `securityContext`, each container's `resources` and
/// termination message), the ServiceAccount admission plugin's `default` account and its
/// `kube-api-access-*` projected volume (mounted read-only in every container, unless
/// `automountServiceAccountToken: false`), and the DefaultTolerationSeconds plugin's
/// tolerations. The sandbox puts no token in that volume, on either control plane: its pods run
/// netassay, which never calls the API from inside a pod.
fn default_pod_spec(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
        ObjectFieldSelector, PodSecurityContext, ProjectedVolumeSource, ResourceRequirements,
        ServiceAccountTokenProjection, Toleration, Volume, VolumeMount, VolumeProjection,
    };
    spec.enable_service_links.get_or_insert(true);
    spec.preemption_policy
        .get_or_insert_with(|| "PreemptLowerPriority".to_string());
    spec.priority.get_or_insert(0);
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    let account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .unwrap_or_else(|| "default".to_string());
    spec.service_account_name = Some(account.clone());
    spec.service_account = Some(account);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        c.resources
            .get_or_insert_with(ResourceRequirements::default);
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".to_string());
        c.termination_message_policy
            .get_or_insert_with(|| "File".to_string());
    }
    let mounted = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT);
    if spec.automount_service_account_token != Some(false) && !mounted {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..5)
            .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
            .collect();
        let name = format!("kube-api-access-{suffix}");
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: name.clone(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            expiration_seconds: Some(3607),
                            path: "token".to_string(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".to_string(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".to_string(),
                                path: "ca.crt".to_string(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".to_string(),
                                field_ref: Some(ObjectFieldSelector {
                                    api_version: Some("v1".to_string()),
                                    field_path: "metadata.namespace".to_string(),
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: name.clone(),
                    mount_path: SERVICE_ACCOUNT_MOUNT.to_string(),
                    read_only: Some(true),
                    ..Default::default()
                });
        }
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key)
                || t.key.is_none() && t.operator.as_deref() == Some("Exists"))
                && matches!(t.effect.as_deref(), None | Some("NoExecute"))
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some("NoExecute".to_string()),
                toleration_seconds: Some(300),
                ..Default::default()
            });
        }
    }
}

impl Kind for Pod {
    const COLUMNS: &'static [table::Column] = table::POD_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::pod_cells(self, now)
    }

    const NAMESPACED: bool = true;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = false;
    const FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
        "status.podIP",
    ];

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.pods
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.pods
    }

    fn admit(store: &Store, pod: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        check_meta(
            &pod.metadata,
            old.is_none(),
            is_dns1123_subdomain,
            &mut errs,
        );
        if let Some(old) = old {
            if pod.spec != old.spec {
                errs.push(forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
            reject::<Self>(&pod.metadata, errs)?;
            // Status belongs to the kubelet (here: the pod lifecycle), not to clients.
            pod.status = old.status.clone();
            return Ok(());
        }
        match pod.spec.as_mut() {
            None => errs.push(required("spec.containers", "")),
            Some(spec) => {
                if spec.containers.is_empty() {
                    errs.push(required("spec.containers", ""));
                }
                for (i, c) in spec.containers.iter_mut().enumerate() {
                    let path = format!("spec.containers[{i}]");
                    if c.name.is_empty() {
                        errs.push(required(&format!("{path}.name"), ""));
                    }
                    if c.image.as_deref().unwrap_or("").is_empty() {
                        errs.push(required(&format!("{path}.image"), ""));
                    }
                    let always = image_tag_is_latest(c.image.as_deref().unwrap_or(""));
                    c.image_pull_policy.get_or_insert_with(|| {
                        if always { "Always" } else { "IfNotPresent" }.to_string()
                    });
                    for (j, p) in c.ports.iter_mut().flatten().enumerate() {
                        let ppath = format!("{path}.ports[{j}]");
                        if !(1..=65535).contains(&p.container_port) {
                            errs.push(invalid_int(
                                &format!("{ppath}.containerPort"),
                                p.container_port.into(),
                                "must be between 1 and 65535, inclusive",
                            ));
                        }
                        let protocol = p.protocol.get_or_insert_with(|| "TCP".to_string());
                        if !PROTOCOLS.contains(&protocol.as_str()) {
                            errs.push(not_supported(
                                &format!("{ppath}.protocol"),
                                protocol,
                                &PROTOCOLS,
                            ));
                        }
                    }
                }
                spec.node_name = Some(store.node.name.clone());
                spec.restart_policy
                    .get_or_insert_with(|| "Always".to_string());
                spec.dns_policy
                    .get_or_insert_with(|| "ClusterFirst".to_string());
                spec.scheduler_name
                    .get_or_insert_with(|| "default-scheduler".to_string());
                spec.termination_grace_period_seconds.get_or_insert(30);
                default_pod_spec(spec);
            }
        }
        reject::<Self>(&pod.metadata, errs)?;
        pod.metadata.generation = Some(1);
        let host_ip = store.node.address.to_string();
        pod.status = Some(PodStatus {
            phase: Some("Pending".to_string()),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![HostIP { ip: host_ip }]),
            qos_class: Some("BestEffort".to_string()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_string(),
                status: "True".to_string(),
                last_transition_time: Some(super::store::now()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Ok(())
    }

    fn field(&self, label: &str) -> String {
        let status = self.status.as_ref();
        match label {
            "metadata.name" => self.metadata.name.clone().unwrap_or_default(),
            "metadata.namespace" => self.metadata.namespace.clone().unwrap_or_default(),
            "spec.nodeName" => self
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            "status.phase" => status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// The first free address of the Service range (sequential, so runs are reproducible), never
/// one of the reserved addresses (the `kubernetes` Service's and cluster DNS's).
fn allocate_cluster_ip(used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let base = u32::from(SERVICE_CIDR.0);
    let size = 1u32 << (32 - SERVICE_CIDR.1);
    // .0 is the network, the last one broadcast.
    (1..size - 1)
        .map(|offset| Ipv4Addr::from(base + offset))
        .find(|ip| !used.contains(ip) && *ip != KUBERNETES_SERVICE_IP && *ip != DNS_SERVICE_IP)
}

fn in_service_range(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - SERVICE_CIDR.1);
    u32::from(ip) & mask == u32::from(SERVICE_CIDR.0)
}

fn used_cluster_ips(store: &Store) -> BTreeSet<Ipv4Addr> {
    let mut used: BTreeSet<Ipv4Addr> = store
        .services
        .values()
        .filter_map(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .collect();
    used.insert(KUBERNETES_SERVICE_IP);
    used
}

/// Node ports of every Service but `(namespace, name)`.
fn used_node_ports(store: &Store, namespace: &str, name: &str) -> BTreeSet<u16> {
    store
        .services
        .iter()
        .filter(|((ns, n), _)| !(ns == namespace && n == name))
        .flat_map(|(_, s)| s.spec.iter().flat_map(|spec| spec.ports.iter().flatten()))
        .filter_map(|p| u16::try_from(p.node_port?).ok())
        .collect()
}

/// Node ports the way the API server's Service REST storage assigns them: kept when given (422
/// when out of range or taken), carried over from the stored object on update, shared between
/// two ports of one number (TCP and UDP), otherwise the first free one; cleared when the type no
/// longer has them.
fn assign_node_ports(
    store: &Store,
    meta: &ObjectMeta,
    ports: &mut [ServicePort],
    old: Option<&[ServicePort]>,
    wanted: NodePorts,
    errs: &mut Vec<FieldError>,
) {
    let taken = used_node_ports(
        store,
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
    );
    let old = old.unwrap_or(&[]);
    // (port, protocol, node port) assigned so far in this object.
    let mut mine: Vec<(i32, String, u16)> = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let path = format!("spec.ports[{i}].nodePort");
        let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
        let given = p.node_port.filter(|n| *n != 0);
        if wanted == NodePorts::Never {
            match given {
                // Left over from the old type (upstream drops type-dependent fields).
                Some(n) if old.iter().any(|o| o.node_port == Some(n)) => p.node_port = None,
                Some(_) => errs.push(forbidden(
                    &path,
                    "may not be used when `type` is 'ClusterIP'",
                )),
                None => p.node_port = None,
            }
            continue;
        }
        let free = |n: u16, mine: &[(i32, String, u16)]| {
            !taken.contains(&n)
                && !mine
                    .iter()
                    .any(|(_, proto, m)| *m == n && *proto == protocol)
        };
        let assigned = match given {
            Some(n) => match u16::try_from(n).ok().filter(|n| NODE_PORTS.contains(n)) {
                None => {
                    errs.push(invalid_int(
                        &path,
                        n.into(),
                        &format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            NODE_PORTS.start(),
                            NODE_PORTS.end()
                        ),
                    ));
                    continue;
                }
                Some(n) if !free(n, &mine) => {
                    errs.push(invalid_int(
                        &path,
                        n.into(),
                        "provided port is already allocated",
                    ));
                    continue;
                }
                Some(n) => n,
            },
            None if wanted == NodePorts::IfGiven => continue,
            None => {
                let carried = old
                    .iter()
                    .find(|o| {
                        o.port == p.port && o.protocol.as_deref().unwrap_or("TCP") == protocol
                    })
                    .and_then(|o| u16::try_from(o.node_port?).ok());
                let shared = mine
                    .iter()
                    .find(|(port, proto, _)| *port == p.port && *proto != protocol)
                    .map(|(_, _, n)| *n);
                let candidate = carried
                    .or(shared)
                    .filter(|n| NODE_PORTS.contains(n) && free(*n, &mine))
                    .or_else(|| NODE_PORTS.clone().find(|n| free(*n, &mine)));
                match candidate {
                    Some(n) => n,
                    None => {
                        errs.push(invalid_int(
                            &path,
                            0,
                            "failed to allocate a nodePort: range is full",
                        ));
                        continue;
                    }
                }
            }
        };
        p.node_port = Some(assigned.into());
        mine.push((p.port, protocol, assigned));
    }
}

/// Which ports of a Service get node ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodePorts {
    /// ClusterIP: none (a given one is an error).
    Never,
    /// LoadBalancer with `allocateLoadBalancerNodePorts: false`: only the ones given.
    IfGiven,
    /// NodePort, LoadBalancer: every port.
    Always,
}

impl Kind for Service {
    const COLUMNS: &'static [table::Column] = table::SERVICE_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::service_cells(self, now)
    }

    const NAMESPACED: bool = true;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = false;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.services
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.services
    }

    fn admit(store: &Store, svc: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        check_meta(&svc.metadata, old.is_none(), is_dns1035_label, &mut errs);
        let meta = svc.metadata.clone();
        let spec = svc.spec.get_or_insert_with(Default::default);
        let type_ = spec
            .type_
            .get_or_insert_with(|| "ClusterIP".to_string())
            .clone();
        if !SERVICE_TYPES.contains(&type_.as_str()) {
            errs.push(not_supported("spec.type", &type_, &SERVICE_TYPES));
        }
        let load_balancer = type_ == "LoadBalancer";
        let node_ports = match type_.as_str() {
            "NodePort" => NodePorts::Always,
            "LoadBalancer" => match *spec.allocate_load_balancer_node_ports.get_or_insert(true) {
                true => NodePorts::Always,
                false => NodePorts::IfGiven,
            },
            _ => NodePorts::Never,
        };
        if !load_balancer {
            spec.allocate_load_balancer_node_ports = None;
        }
        if node_ports == NodePorts::Never {
            spec.external_traffic_policy = None;
        } else {
            spec.external_traffic_policy
                .get_or_insert_with(|| "Cluster".to_string());
        }
        let ports = spec.ports.get_or_insert_with(Vec::new);
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if ports.is_empty() && !headless {
            errs.push(required("spec.ports", ""));
        }
        for (i, p) in ports.iter_mut().enumerate() {
            let path = format!("spec.ports[{i}]");
            if !(1..=65535).contains(&p.port) {
                errs.push(invalid_int(
                    &format!("{path}.port"),
                    p.port.into(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            let protocol = p.protocol.get_or_insert_with(|| "TCP".to_string());
            if !PROTOCOLS.contains(&protocol.as_str()) {
                errs.push(not_supported(
                    &format!("{path}.protocol"),
                    protocol,
                    &PROTOCOLS,
                ));
            }
            p.target_port.get_or_insert(IntOrString::Int(p.port));
        }
        let old_ports = old
            .and_then(|o| o.spec.as_ref())
            .and_then(|s| s.ports.as_deref());
        assign_node_ports(store, &meta, ports, old_ports, node_ports, &mut errs);
        spec.session_affinity
            .get_or_insert_with(|| "None".to_string());
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".to_string());
        match old.and_then(|o| o.spec.as_ref()) {
            Some(old_spec) => {
                let old_ip = old_spec.cluster_ip.clone();
                match spec.cluster_ip.as_deref() {
                    None | Some("") => spec.cluster_ip = old_ip.clone(),
                    Some(ip) if Some(ip) != old_ip.as_deref() => errs.push(invalid_str(
                        "spec.clusterIPs[0]",
                        ip,
                        "may not change once set",
                    )),
                    Some(_) => {}
                }
                spec.cluster_ips = old_spec.cluster_ips.clone();
                spec.ip_families = old_spec.ip_families.clone();
                spec.ip_family_policy = old_spec.ip_family_policy.clone();
            }
            None => match spec.cluster_ip.as_deref() {
                Some("None") => spec.cluster_ips = Some(vec!["None".to_string()]),
                requested => {
                    let mut used = used_cluster_ips(store);
                    // 10.96.0.1 is the `kubernetes` Service's, which the store makes itself.
                    let kubernetes = (meta.namespace.as_deref(), meta.name.as_deref())
                        == (Some("default"), Some("kubernetes"));
                    if kubernetes && requested == Some(&KUBERNETES_SERVICE_IP.to_string()) {
                        used.remove(&KUBERNETES_SERVICE_IP);
                    }
                    let ip = match requested.filter(|r| !r.is_empty()) {
                        None => allocate_cluster_ip(&used).ok_or_else(|| {
                            ApiError::internal("failed to allocate a serviceIP: range is full")
                        })?,
                        Some(text) => match text.parse::<Ipv4Addr>() {
                            Ok(ip) if !in_service_range(ip) => {
                                errs.push(invalid_str("spec.clusterIPs[0]", text, &format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}/{}", SERVICE_CIDR.0, SERVICE_CIDR.1)));
                                ip
                            }
                            Ok(ip) if used.contains(&ip) => {
                                errs.push(invalid_str(
                                    "spec.clusterIPs[0]",
                                    text,
                                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                                ));
                                ip
                            }
                            Ok(ip) => ip,
                            Err(_) => {
                                errs.push(invalid_str(
                                    "spec.clusterIPs[0]",
                                    text,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                                ));
                                Ipv4Addr::UNSPECIFIED
                            }
                        },
                    };
                    spec.cluster_ip = Some(ip.to_string());
                    spec.cluster_ips = Some(vec![ip.to_string()]);
                    spec.ip_families = Some(vec!["IPv4".to_string()]);
                    spec.ip_family_policy = Some("SingleStack".to_string());
                }
            },
        }
        reject::<Self>(&svc.metadata, errs)?;
        // The sandbox's load balancer is the node (as k3s' servicelb): the Service is exposed on
        // the node's address at once.
        let ingress = load_balancer.then(|| {
            vec![LoadBalancerIngress {
                ip: Some(store.node.address.to_string()),
                ip_mode: Some("VIP".to_string()),
                ..Default::default()
            }]
        });
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus { ingress }),
            ..Default::default()
        });
        Ok(())
    }
}

/// API-server defaulting of networking/v1 (SetDefaults_NetworkPolicy and _NetworkPolicyPort):
/// protocol TCP, policyTypes from the rules present, an absent podSelector as `{}`.
pub(crate) fn default_network_policy(np: &mut NetworkPolicy) {
    let spec = np.spec.get_or_insert_with(Default::default);
    spec.pod_selector.get_or_insert_with(Default::default);
    let default_port = |p: &mut NetworkPolicyPort| {
        p.protocol.get_or_insert_with(|| "TCP".to_string());
    };
    for rule in spec.ingress.iter_mut().flatten() {
        rule.ports.iter_mut().flatten().for_each(default_port);
    }
    for rule in spec.egress.iter_mut().flatten() {
        rule.ports.iter_mut().flatten().for_each(default_port);
    }
    if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push("Egress".to_string());
        }
        spec.policy_types = Some(types);
    }
}

impl Kind for NetworkPolicy {
    const COLUMNS: &'static [table::Column] = table::NETWORK_POLICY_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::network_policy_cells(self, now)
    }

    const NAMESPACED: bool = true;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.policies
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.policies
    }

    fn admit(_: &Store, np: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        default_network_policy(np);
        reject::<Self>(&np.metadata, validate_network_policy(np))?;
        np.metadata.generation = Some(match old {
            None => 1,
            Some(old) if old.spec == np.spec => old.metadata.generation.unwrap_or(1),
            Some(old) => old.metadata.generation.unwrap_or(1) + 1,
        });
        Ok(())
    }
}

impl Kind for Lease {
    const COLUMNS: &'static [table::Column] = table::LEASE_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::lease_cells(self, now)
    }

    const NAMESPACED: bool = true;
    const ENFORCED: bool = false;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.leases
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.leases
    }

    fn admit(_: &Store, lease: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        check_meta(
            &lease.metadata,
            old.is_none(),
            is_dns1123_subdomain,
            &mut errs,
        );
        if let Some(d) = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .filter(|d| *d <= 0)
        {
            errs.push(invalid_int(
                "spec.leaseDurationSeconds",
                d.into(),
                "must be greater than 0",
            ));
        }
        reject::<Self>(&lease.metadata, errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicySpec};

    #[test]
    fn policy_types_default_to_ingress_plus_egress_only_with_egress_rules() {
        let mut np = NetworkPolicy {
            spec: Some(NetworkPolicySpec {
                egress: Some(vec![NetworkPolicyEgressRule {
                    ports: Some(vec![NetworkPolicyPort::default()]),
                    to: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_network_policy(&mut np);
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.policy_types,
            Some(vec!["Ingress".to_string(), "Egress".to_string()])
        );
        assert_eq!(spec.pod_selector, Some(Default::default()));
        assert_eq!(
            spec.egress.unwrap()[0].ports.as_ref().unwrap()[0]
                .protocol
                .as_deref(),
            Some("TCP")
        );

        let mut empty_egress = NetworkPolicy {
            spec: Some(NetworkPolicySpec {
                egress: Some(vec![]),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_network_policy(&mut empty_egress);
        assert_eq!(
            empty_egress.spec.unwrap().policy_types,
            Some(vec!["Ingress".to_string()])
        );
    }

    #[test]
    fn cluster_ips_are_allocated_sequentially_skipping_used_ones() {
        let used: BTreeSet<Ipv4Addr> = [Ipv4Addr::new(10, 96, 0, 2)].into();
        assert_eq!(
            allocate_cluster_ip(&used),
            Some(Ipv4Addr::new(10, 96, 0, 3))
        );
        assert!(in_service_range(Ipv4Addr::new(10, 96, 200, 1)));
        assert!(!in_service_range(Ipv4Addr::new(10, 97, 0, 1)));
    }

    #[test]
    fn dns1035_names_must_start_with_a_letter() {
        assert!(is_dns1035_label("svc-1").is_empty());
        assert!(!is_dns1035_label("1svc").is_empty());
    }
}
