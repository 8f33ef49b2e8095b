//! The emulator's object store: typed objects, uids, resourceVersions, the `ClusterState` snapshot.
//
// Generic create/get/list/replace/patch/delete with the API server's preconditions. No I/O;
// callers hold it behind one mutex and never across an await.

use super::patch::{self, PatchKind};
use super::selector::{FieldQuery, LabelQuery};
use super::status::ApiError;
use crate::cilium_api::{CiliumClusterwideNetworkPolicyObject, CiliumNetworkPolicyObject};
use crate::dataplane::NodeInfo;
use crate::gateway_api::{Gateway, HttpRoute};
use crate::object::Object;
use crate::preset::PresetProfile;
use crate::state::ClusterState;
use crate::state::NamespaceState;
use crate::state::PodState;
use crate::state::ServicePortState;
use crate::state::ServiceState;
use crate::state::TargetPort;
use crate::system;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Pod, PodStatus, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use netassay_core::model::{Protocol, ServedPort};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// (namespace, name); the namespace is "" for cluster-scoped kinds.
pub(crate) type Key = (String, String);

/// Namespaces a fresh cluster has; the API server refuses to delete the first three.
pub(crate) const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];
const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

pub(crate) const METADATA_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A stored API kind: where its objects live and what the server does to them before storing.
pub(crate) trait Kind:
    Resource + Metadata<Ty = ObjectMeta> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    const NAMESPACED: bool;
    /// Whether changes matter to the dataplane (everything but leases).
    const ENFORCED: bool;
    /// DELETE answers with a `Status` (true) or with the deleted object, per upstream registry.
    const DELETE_RETURNS_STATUS: bool;
    /// Field labels a `fieldSelector` may use.
    const FIELDS: &'static [&'static str] = &["metadata.name", "metadata.namespace"];

    fn table(store: &Store) -> &BTreeMap<Key, Self>;
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self>;

    /// Defaulting and validation before storing; `old` is the stored object on update.
    fn admit(store: &Store, obj: &mut Self, old: Option<&Self>) -> Result<(), ApiError>;

    /// What the server does once an object is stored (never on dry runs): for namespaces, the
    /// preset's policies.
    fn stored(_store: &mut Store, _obj: &Self) {}

    /// Server-side Table columns (what kubectl get prints); kinds without a printer of their
    /// own get NAME and AGE, as upstream gives custom resources without printer columns.
    const COLUMNS: &'static [super::table::Column] = super::table::DEFAULT_COLUMNS;

    /// The Table cells of this object, one per column.
    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        super::table::default_cells(self.metadata(), now)
    }

    /// Checks of the decoded body that need `fieldValidation` (custom resources whose schema
    /// lives below the top level: unknown fields there are a 400 only when `strict`).
    fn check_fields(&self, _strict: bool) -> Result<(), ApiError> {
        Ok(())
    }

    /// A field label's value for `fieldSelector` ("" when unset).
    fn field(&self, label: &str) -> String {
        let meta = self.metadata();
        match label {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

pub(crate) struct Store {
    revision: u64,
    rng: u64,
    last_event_nanos: u64,
    pub(crate) node: NodeInfo,
    pub(crate) namespaces: BTreeMap<Key, Namespace>,
    pub(crate) pods: BTreeMap<Key, Pod>,
    pub(crate) services: BTreeMap<Key, Service>,
    pub(crate) policies: BTreeMap<Key, NetworkPolicy>,
    pub(crate) leases: BTreeMap<Key, Lease>,
    pub(crate) events: BTreeMap<Key, k8s_openapi::api::core::v1::Event>,
    pub(crate) ingresses: BTreeMap<Key, Ingress>,
    pub(crate) http_routes: BTreeMap<Key, HttpRoute>,
    pub(crate) gateways: BTreeMap<Key, Gateway>,
    pub(crate) cilium_policies: BTreeMap<Key, CiliumNetworkPolicyObject>,
    pub(crate) cilium_clusterwide_policies: BTreeMap<Key, CiliumClusterwideNetworkPolicyObject>,
    /// The sandbox preset whose objects every persona namespace gets.
    pub(crate) preset: Option<PresetProfile>,
}

/// Now, at the one-second precision `metav1.Time` has on the wire, so that stored objects (and
/// the snapshots the dataplane gets) equal what clients read back.
pub(crate) fn now() -> Time {
    use k8s_openapi::jiff::Timestamp;
    let t = Timestamp::now();
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// Paths of fields in `input` that did not survive decoding into the typed object (`typed` is its
/// re-encoding): the unknown fields `fieldValidation=Strict` rejects.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (k, v) in given {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match kept.get(k) {
                    // Explicit nulls decode to "unset": not unknown.
                    None if !v.is_null() => out.push(child),
                    None => {}
                    Some(t) => unknown_fields(v, t, &child, out),
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (i, (v, t)) in given.iter().zip(kept).enumerate() {
                unknown_fields(v, t, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes an object from JSON; with `strict` (fieldValidation=Strict), unknown fields are a
/// 400 like the API server's strict decoding error instead of being dropped.
pub(crate) fn decode_object<K: Kind>(value: Value, strict: bool) -> Result<K, ApiError> {
    let obj: K = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a valid {} ({}): {e}",
            K::KIND,
            K::API_VERSION
        ))
    })?;
    if strict {
        let typed = serde_json::to_value(&obj).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut unknown = Vec::new();
        unknown_fields(&value, &typed, "", &mut unknown);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
    }
    obj.check_fields(strict)?;
    Ok(obj)
}

fn key_of(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

impl Store {
    pub fn new(node: NodeInfo) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        let mut store = Store {
            revision: 1,
            rng: seed,
            last_event_nanos: 0,
            node,
            namespaces: BTreeMap::new(),
            pods: BTreeMap::new(),
            services: BTreeMap::new(),
            policies: BTreeMap::new(),
            leases: BTreeMap::new(),
            events: BTreeMap::new(),
            ingresses: BTreeMap::new(),
            http_routes: BTreeMap::new(),
            gateways: BTreeMap::new(),
            cilium_policies: BTreeMap::new(),
            cilium_clusterwide_policies: BTreeMap::new(),
            preset: None,
        };
        for name in SYSTEM_NAMESPACES {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            // Cannot fail: the names are valid and the store is empty.
            let _ = store.create("", ns, false);
        }
        // The `kubernetes` Service, as kube-apiserver keeps it: the API at 10.96.0.1:443 (no
        // selector; the emulator has no endpoints, and sandbox pods never call the API).
        let kubernetes: Service = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": crate::system::KUBERNETES_SERVICE_IP.to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
            },
        }))
        .expect("a well-formed Service");
        if let Err(e) = store.create("default", kubernetes, false) {
            eprintln!("netassay sandbox API: the kubernetes Service: {e:?}");
        }
        store
    }

    /// The current resourceVersion (lists report it).
    pub fn revision(&self) -> String {
        self.revision.to_string()
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// splitmix64: unique-enough uids and generateName suffixes without a random-number crate.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn new_uid(&mut self) -> String {
        let a = self.next_random();
        let b = self.next_random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// The suffix of an event's name (`<object>.<16 hex digits>`, as upstream's recorders do).
    /// An event name's suffix as a kubelet's event recorder makes it: the time in nanoseconds,
    /// in hex, so that a pod's events list (and `kubectl describe` shows them) in the order
    /// they happened.
    pub fn next_event_suffix(&mut self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.last_event_nanos = nanos.max(self.last_event_nanos + 1);
        format!("{:x}", self.last_event_nanos)
    }

    /// The five-character suffix the API server appends to `generateName`.
    fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.next_random();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                r /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    pub fn get<K: Kind>(&self, namespace: &str, name: &str) -> Result<K, ApiError> {
        K::table(self)
            .get(&key_of(namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(K::GROUP, K::URL_PATH_SEGMENT, name))
    }

    /// Objects in `namespace` (or everywhere) matching both selectors, ordered by key.
    pub fn list<K: Kind>(
        &self,
        namespace: Option<&str>,
        labels: &LabelQuery,
        fields: &FieldQuery,
    ) -> Vec<K> {
        let empty = BTreeMap::new();
        K::table(self)
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, obj)| obj)
            .filter(|obj| labels.matches(obj.metadata().labels.as_ref().unwrap_or(&empty)))
            .filter(|obj| fields.matches(|label| obj.field(label)))
            .cloned()
            .collect()
    }

    /// Refuses objects whose body names another namespace than the URL, and fills it in.
    fn place<K: Kind>(namespace: &str, obj: &mut K) -> Result<(), ApiError> {
        let meta = obj.metadata_mut();
        if !K::NAMESPACED {
            meta.namespace = None;
            return Ok(());
        }
        match meta.namespace.as_deref() {
            Some(ns) if !ns.is_empty() && ns != namespace => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                meta.namespace = Some(namespace.to_string());
                Ok(())
            }
        }
    }

    /// New objects may only go into namespaces that exist and are not terminating.
    fn check_namespace_open(&self, namespace: &str) -> Result<(), ApiError> {
        let ns = self
            .namespaces
            .get(&key_of("", namespace))
            .ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
        if ns.metadata.deletion_timestamp.is_some() {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            )));
        }
        Ok(())
    }

    pub fn create<K: Kind>(
        &mut self,
        namespace: &str,
        mut obj: K,
        dry_run: bool,
    ) -> Result<K, ApiError> {
        Self::place(namespace, &mut obj)?;
        let meta = obj.metadata_mut();
        if meta.name.as_deref().unwrap_or("").is_empty() {
            match meta.generate_name.clone().filter(|g| !g.is_empty()) {
                Some(prefix) => {
                    let suffix = self.name_suffix();
                    obj.metadata_mut().name = Some(format!("{prefix}{suffix}"));
                }
                None => {
                    return Err(ApiError::invalid(
                        K::GROUP,
                        K::KIND,
                        "",
                        &[super::field_error::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ))
                }
            }
        }
        let name = obj.metadata().name.clone().unwrap_or_default();
        if K::NAMESPACED {
            self.check_namespace_open(namespace)?;
        }
        let key = key_of(if K::NAMESPACED { namespace } else { "" }, &name);
        if K::table(self).contains_key(&key) {
            return Err(ApiError::already_exists(
                K::GROUP,
                K::URL_PATH_SEGMENT,
                &name,
            ));
        }
        K::admit(self, &mut obj, None)?;
        let uid = self.new_uid();
        let meta = obj.metadata_mut();
        meta.uid = Some(uid);
        meta.creation_timestamp = Some(now());
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.managed_fields = None;
        meta.self_link = None;
        if !dry_run {
            obj.metadata_mut().resource_version = Some(self.next_revision());
            K::table_mut(self).insert(key, obj.clone());
            K::stored(self, &obj);
        }
        Ok(obj)
    }

    /// Creates one of the objects the sandbox itself makes (system add-ons, preset objects) in
    /// its metadata's namespace, through the same admission as a client's.
    pub fn create_object(&mut self, object: Object) -> Result<Object, ApiError> {
        fn ns<K: Kind>(obj: &K) -> String {
            obj.metadata().namespace.clone().unwrap_or_default()
        }
        Ok(match object {
            Object::Namespace(o) => Object::Namespace(self.create("", o, false)?),
            Object::Pod(o) => Object::Pod(self.create(&ns(&o), o, false)?),
            Object::Service(o) => Object::Service(self.create(&ns(&o), o, false)?),
            Object::NetworkPolicy(o) => Object::NetworkPolicy(self.create(&ns(&o), o, false)?),
            Object::Ingress(o) => Object::Ingress(self.create(&ns(&o), o, false)?),
            Object::HttpRoute(o) => Object::HttpRoute(self.create(&ns(&o), o, false)?),
            Object::Gateway(o) => Object::Gateway(self.create(&ns(&o), o, false)?),
        })
    }

    /// The preset's objects for a namespace just created or updated, each created if absent (an
    /// object of that name, the preset's or a user's, is left alone).
    pub fn apply_preset(&mut self, namespace: &Namespace) {
        let Some(preset) = self.preset.clone() else {
            return;
        };
        if namespace.metadata.deletion_timestamp.is_some() {
            return;
        }
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        for object in preset.namespace_objects(&name, &labels) {
            // AlreadyExists is "if absent"; the preset's objects are valid (a unit test says so).
            let _ = self.create_object(object);
        }
    }

    /// PUT: optimistic concurrency on resourceVersion (an empty one means unconditional).
    pub fn replace<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        mut obj: K,
        dry_run: bool,
    ) -> Result<K, ApiError> {
        Self::place(namespace, &mut obj)?;
        match obj.metadata().name.as_deref() {
            None | Some("") => obj.metadata_mut().name = Some(name.to_string()),
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            Some(_) => {}
        }
        let key = key_of(if K::NAMESPACED { namespace } else { "" }, name);
        let old = K::table(self)
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(K::GROUP, K::URL_PATH_SEGMENT, name))?;
        let old_meta = old.metadata();
        if let Some(rv) = obj
            .metadata()
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty())
        {
            if Some(rv) != old_meta.resource_version.as_deref() {
                return Err(ApiError::conflict(
                    K::GROUP,
                    K::URL_PATH_SEGMENT,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        if let Some(uid) = obj.metadata().uid.as_deref().filter(|v| !v.is_empty()) {
            if Some(uid) != old_meta.uid.as_deref() {
                return Err(ApiError::conflict(
                    K::GROUP,
                    K::URL_PATH_SEGMENT,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old_meta.uid.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        let (uid, created, deleted) = (
            old_meta.uid.clone(),
            old_meta.creation_timestamp.clone(),
            old_meta.deletion_timestamp.clone(),
        );
        K::admit(self, &mut obj, Some(&old))?;
        let meta = obj.metadata_mut();
        meta.uid = uid;
        meta.creation_timestamp = created;
        meta.deletion_timestamp = deleted;
        meta.managed_fields = None;
        meta.resource_version = old.metadata().resource_version.clone();
        if !dry_run {
            obj.metadata_mut().resource_version = Some(self.next_revision());
            K::table_mut(self).insert(key, obj.clone());
            K::stored(self, &obj);
        }
        Ok(obj)
    }

    /// PATCH; returns the object and whether it was created (server-side apply of a new object).
    pub fn patch<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        dry_run: bool,
        strict: bool,
    ) -> Result<(K, bool), ApiError> {
        let current = match self.get::<K>(namespace, name) {
            Ok(current) => current,
            Err(_) if kind == PatchKind::Apply => {
                let mut obj: K = decode_object(body.clone(), strict)?;
                match obj.metadata().name.as_deref() {
                    Some(n) if n != name => {
                        return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )))
                    }
                    _ => obj.metadata_mut().name = Some(name.to_string()),
                }
                return self.create(namespace, obj, dry_run).map(|o| (o, true));
            }
            Err(e) => return Err(e),
        };
        let mut doc =
            serde_json::to_value(&current).map_err(|e| ApiError::internal(e.to_string()))?;
        patch::apply(kind, &mut doc, body).map_err(|e| {
            ApiError::bad_request(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })?;
        let patched: K = decode_object(doc, strict)?;
        self.replace(namespace, name, patched, dry_run)
            .map(|o| (o, false))
    }

    pub fn delete<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<K, ApiError> {
        let key = key_of(namespace, name);
        let obj = self.get::<K>(namespace, name)?;
        let meta = obj.metadata();
        if let Some(uid) = &pre.uid {
            if meta.uid.as_ref() != Some(uid) {
                return Err(ApiError::conflict(
                    K::GROUP,
                    K::URL_PATH_SEGMENT,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta.uid.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = &pre.resource_version {
            if meta.resource_version.as_ref() != Some(rv) {
                return Err(ApiError::conflict(
                    K::GROUP,
                    K::URL_PATH_SEGMENT,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta.resource_version.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        if !dry_run {
            K::table_mut(self).remove(&key);
            self.next_revision();
        }
        Ok(obj)
    }

    /// Marks a namespace Terminating (no new content may enter it) and returns it.
    pub fn begin_namespace_deletion(
        &mut self,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Namespace, ApiError> {
        let mut ns = self.get::<Namespace>("", name)?;
        if UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces {name:?} is forbidden: this namespace may not be deleted"
            )));
        }
        if let Some(uid) = &pre.uid {
            if ns.metadata.uid.as_ref() != Some(uid) {
                return Err(ApiError::conflict(
                    "",
                    "namespaces",
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}"),
                ));
            }
        }
        if ns.metadata.deletion_timestamp.is_none() {
            ns.metadata.deletion_timestamp = Some(now());
            ns.metadata.deletion_grace_period_seconds = Some(0);
        }
        ns.status = Some(NamespaceStatus {
            phase: Some("Terminating".to_string()),
            ..Default::default()
        });
        if !dry_run {
            ns.metadata.resource_version = Some(self.next_revision());
            self.namespaces.insert(key_of("", name), ns.clone());
        }
        Ok(ns)
    }

    /// Keys and uids of the pods in a namespace.
    pub fn pods_in(&self, namespace: &str) -> Vec<(Key, String)> {
        self.pods
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(k, p)| (k.clone(), p.metadata.uid.clone().unwrap_or_default()))
            .collect()
    }

    /// Removes a terminating namespace and everything left in it.
    pub fn finish_namespace_deletion(&mut self, name: &str) {
        self.pods.retain(|(ns, _), _| ns != name);
        self.services.retain(|(ns, _), _| ns != name);
        self.policies.retain(|(ns, _), _| ns != name);
        self.leases.retain(|(ns, _), _| ns != name);
        self.events.retain(|(ns, _), _| ns != name);
        self.ingresses.retain(|(ns, _), _| ns != name);
        self.http_routes.retain(|(ns, _), _| ns != name);
        self.gateways.retain(|(ns, _), _| ns != name);
        self.cilium_policies.retain(|(ns, _), _| ns != name);
        self.namespaces.remove(&key_of("", name));
        self.next_revision();
    }

    /// The stored pod if it is still the same object (uids differ across re-creations).
    pub fn pod_with_uid(&self, key: &Key, uid: &str) -> Option<&Pod> {
        self.pods
            .get(key)
            .filter(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    /// Edits a pod's status if it is still the same object; false when it is gone.
    pub fn update_pod_status(
        &mut self,
        key: &Key,
        uid: &str,
        edit: impl FnOnce(&mut PodStatus),
    ) -> bool {
        if self.pod_with_uid(key, uid).is_none() {
            return false;
        }
        let revision = self.next_revision();
        if let Some(pod) = self.pods.get_mut(key) {
            edit(pod.status.get_or_insert_with(Default::default));
            pod.metadata.resource_version = Some(revision);
        }
        true
    }

    /// Everything enforcement depends on, with real names, in key order.
    pub fn cluster_state(&self) -> ClusterState {
        let namespaces = self
            .namespaces
            .values()
            .map(|ns| NamespaceState {
                name: ns.metadata.name.clone().unwrap_or_default(),
                labels: ns.metadata.labels.clone().unwrap_or_default(),
            })
            .collect();
        let pods = self.pods.values().map(pod_state).collect();
        // A Service without a selector (the `kubernetes` Service) has no endpoints the node
        // programs, as the reference cluster's node agent does it.
        let services = self
            .services
            .values()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|spec| spec.selector.as_ref())
                    .is_some_and(|sel| !sel.is_empty())
            })
            .filter_map(service_state)
            .collect();
        let gateway_routes = system::gateway_routes(
            self.http_routes.values(),
            self.ingresses.values(),
            self.services.values(),
        );
        ClusterState {
            namespaces,
            pods,
            services,
            policies: self.policies.values().cloned().collect(),
            node_address: Some(self.node.address),
            gateway_routes,
        }
    }
}

fn protocol_of(p: Option<&str>) -> Option<Protocol> {
    p.unwrap_or("TCP").parse().ok()
}

/// All containers' ports: named ports may sit on any container.
pub(crate) fn container_ports(pod: &Pod) -> Vec<ServedPort> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(ServedPort {
                port: u16::try_from(p.container_port).ok()?,
                protocol: protocol_of(p.protocol.as_deref())?,
                name: p.name.clone(),
            })
        })
        .collect()
}

pub(crate) fn pod_state(pod: &Pod) -> PodState {
    PodState {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        ports: container_ports(pod),
    }
}

/// Headless services (and any without a parseable ClusterIP) have nothing to enforce.
pub(crate) fn service_state(svc: &Service) -> Option<ServiceState> {
    let spec = svc.spec.as_ref()?;
    let cluster_ip = spec.cluster_ip.as_deref()?.parse::<IpAddr>().ok()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            let target_port = match &p.target_port {
                None => TargetPort::Number(port),
                Some(IntOrString::Int(n)) => TargetPort::Number(u16::try_from(*n).ok()?),
                Some(IntOrString::String(s)) => match s.parse::<u16>() {
                    Ok(n) => TargetPort::Number(n),
                    Err(_) => TargetPort::Name(s.clone()),
                },
            };
            Some(ServicePortState {
                port,
                protocol: protocol_of(p.protocol.as_deref())?,
                target_port,
                node_port: p
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
            })
        })
        .collect();
    let load_balancer_ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse::<IpAddr>().ok())
        .collect();
    Some(ServiceState {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        cluster_ip,
        selector: spec.selector.clone().unwrap_or_default(),
        ports,
        load_balancer_ips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_decoding_names_every_unknown_field_with_its_path() {
        let body = json!({
            "metadata": {"name": "p", "labels": null},
            "spec": {"podselector": {}, "ingress": [{"form": []}]}
        });
        let err = decode_object::<NetworkPolicy>(body.clone(), true).unwrap_err();
        assert_eq!(
            err.message,
            "strict decoding error: unknown field \"spec.ingress[0].form\", unknown field \"spec.podselector\""
        );
        assert!(decode_object::<NetworkPolicy>(body, false).is_ok());
    }

    #[test]
    fn generate_name_gets_a_five_character_suffix() {
        let mut store = Store::new(NodeInfo {
            name: "n".to_string(),
            address: IpAddr::from([127, 0, 0, 1]),
        });
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some("netassay-".to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = store.create("", ns, false).unwrap();
        let name = created.metadata.name.unwrap();
        assert!(name.starts_with("netassay-") && name.len() == "netassay-".len() + 5);
    }
}
