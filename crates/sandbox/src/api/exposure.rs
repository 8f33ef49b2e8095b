//! Admission of the kinds that expose Services at the edge: networking.k8s.io/v1 Ingress and
//! gateway.networking.k8s.io/v1 HTTPRoute and Gateway (validation after upstream's Ingress
//! validation and the Gateway API CRD schemas, defaulting, server-owned status).

use super::admission::{check_meta, is_dns1035_label, reject};
use super::field_error::{invalid_int, invalid_str, not_supported, required};
use super::status::ApiError;
use super::store::{now, Key, Kind, Store};
use crate::gateway_api::SANDBOX_GATEWAY_CLASS;
use crate::gateway_api::{self, Gateway, GatewayApiKind, GatewayApiObject, HttpRoute};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use netassay_core::policy::validate::{is_dns1123_subdomain, FieldError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const PATH_TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];

/// `metadata.generation` like the API server: 1 on create, +1 when the spec changes.
fn generation(meta: &mut ObjectMeta, old: Option<&ObjectMeta>, spec_changed: bool) {
    meta.generation = Some(match old {
        None => 1,
        Some(old) if !spec_changed => old.generation.unwrap_or(1),
        Some(old) => old.generation.unwrap_or(1) + 1,
    });
}

/// A host of an Ingress rule or an HTTPRoute: a DNS subdomain, optionally `*.`-prefixed.
fn check_host(path: &str, host: &str, errs: &mut Vec<FieldError>) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errs.push(invalid_str(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
        return;
    }
    let bare = host.strip_prefix("*.").unwrap_or(host);
    for m in is_dns1123_subdomain(bare) {
        errs.push(invalid_str(path, host, &m));
    }
}

fn check_ingress_backend(path: &str, backend: &IngressBackend, errs: &mut Vec<FieldError>) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => errs.push(invalid_str(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(invalid_str(
            path,
            "",
            "resource or service backend is required",
        )),
        (None, Some(_)) => {}
        (Some(service), None) => {
            for m in is_dns1035_label(&service.name) {
                errs.push(invalid_str(
                    &format!("{path}.service.name"),
                    &service.name,
                    &m,
                ));
            }
            let port_path = format!("{path}.service.port");
            match service.port.as_ref().map(|p| (&p.name, p.number)) {
                None | Some((None, None)) => {
                    errs.push(required(&port_path, "port name or number is required"))
                }
                Some((Some(_), Some(_))) => errs.push(invalid_str(
                    &port_path,
                    "",
                    "cannot set both port name & port number",
                )),
                Some((None, Some(n))) if !(1..=65535).contains(&n) => errs.push(invalid_int(
                    &format!("{port_path}.number"),
                    n.into(),
                    "must be between 1 and 65535, inclusive",
                )),
                Some(_) => {}
            }
        }
    }
}

fn validate_ingress(ingress: &Ingress) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = ingress.spec.as_ref() else {
        errs.push(required("spec", ""));
        return errs;
    };
    let rules = spec.rules.as_deref().unwrap_or(&[]);
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(invalid_str(
            "spec",
            "",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = &spec.default_backend {
        check_ingress_backend("spec.defaultBackend", backend, &mut errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            check_host(&format!("{path}.host"), host, &mut errs);
        }
        let Some(http) = &rule.http else { continue };
        if http.paths.is_empty() {
            errs.push(required(&format!("{path}.http.paths"), ""));
        }
        for (j, p) in http.paths.iter().enumerate() {
            let ppath = format!("{path}.http.paths[{j}]");
            if p.path_type.is_empty() {
                errs.push(required(
                    &format!("{ppath}.pathType"),
                    "pathType must be specified",
                ));
            } else if !PATH_TYPES.contains(&p.path_type.as_str()) {
                errs.push(not_supported(
                    &format!("{ppath}.pathType"),
                    &p.path_type,
                    &PATH_TYPES,
                ));
            } else if p.path_type != "ImplementationSpecific"
                && !p.path.as_deref().unwrap_or("").starts_with('/')
            {
                errs.push(invalid_str(
                    &format!("{ppath}.path"),
                    p.path.as_deref().unwrap_or(""),
                    "must be an absolute path",
                ));
            }
            check_ingress_backend(&format!("{ppath}.backend"), &p.backend, &mut errs);
        }
    }
    errs
}

impl Kind for Ingress {
    const COLUMNS: &'static [super::table::Column] = super::table::INGRESS_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        super::table::ingress_cells(self, now)
    }

    const NAMESPACED: bool = true;
    // The gateway's routes come from Ingresses.
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.ingresses
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.ingresses
    }

    fn admit(_: &Store, ingress: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        let mut errs = Vec::new();
        check_meta(
            &ingress.metadata,
            old.is_none(),
            is_dns1123_subdomain,
            &mut errs,
        );
        errs.extend(validate_ingress(ingress));
        reject::<Self>(&ingress.metadata, errs)?;
        generation(
            &mut ingress.metadata,
            old.map(|o| &o.metadata),
            old.is_some_and(|o| o.spec != ingress.spec),
        );
        // Status is the ingress controller's (a subresource): clients cannot set it.
        ingress.status = match old {
            Some(old) => old.status.clone(),
            None => Some(IngressStatus {
                load_balancer: Some(Default::default()),
            }),
        };
        Ok(())
    }
}

// ----- Gateway API -----

/// A JSON value's type, as the CRD schema validation errors name it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expect_type(path: &str, v: &Value, want: &str, errs: &mut Vec<FieldError>) -> bool {
    let got = json_type(v);
    let ok = got == want || (want == "integer" && v.is_i64());
    if !ok {
        errs.push(invalid_str(
            path,
            &v.to_string(),
            &format!("{path} in body must be of type {want}: {got:?}"),
        ));
    }
    ok
}

/// The items of an optional list field (`[]` when absent; an error when not a list).
fn list<'v>(obj: &'v Value, field: &str, path: &str, errs: &mut Vec<FieldError>) -> &'v [Value] {
    match obj.get(field) {
        None | Some(Value::Null) => &[],
        Some(v) if expect_type(&format!("{path}.{field}"), v, "array", errs) => {
            v.as_array().map(Vec::as_slice).unwrap_or(&[])
        }
        Some(_) => &[],
    }
}

fn required_string(obj: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    match obj.get(field) {
        None | Some(Value::Null) => errs.push(required(&format!("{path}.{field}"), "")),
        Some(Value::String(s)) if s.is_empty() => errs.push(invalid_str(
            &format!("{path}.{field}"),
            s,
            "should be at least 1 chars long",
        )),
        Some(v) => {
            expect_type(&format!("{path}.{field}"), v, "string", errs);
        }
    }
}

fn port_number(obj: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    let fpath = format!("{path}.{field}");
    match obj.get(field) {
        None | Some(Value::Null) => errs.push(required(&fpath, "")),
        Some(v) if expect_type(&fpath, v, "integer", errs) => {
            let n = v.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(invalid_int(&fpath, n, "should be between 1 and 65535"));
            }
        }
        Some(_) => {}
    }
}

/// Fills `field` of an object with `value` when absent.
fn default_field(obj: &mut Value, field: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry(field.to_string()).or_insert(value);
    }
}

/// The object's `spec` as a map, created if absent (`None`, with an error, if not an object).
fn spec_mut<'o>(
    fields: &'o mut Map<String, Value>,
    errs: &mut Vec<FieldError>,
) -> Option<&'o mut Value> {
    let spec = fields
        .entry("spec".to_string())
        .or_insert_with(|| json!({}));
    expect_type("spec", spec, "object", errs).then_some(spec)
}

/// HTTPRoute: parentRefs need a name, hostnames are hosts, Service backendRefs need a port;
/// defaults as the CRD schema sets them.
fn admit_http_route(route: &mut HttpRoute) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = spec_mut(&mut route.fields, &mut errs) else {
        return errs;
    };
    for (i, parent) in list(spec, "parentRefs", "spec", &mut errs)
        .to_vec()
        .iter()
        .enumerate()
    {
        let path = format!("spec.parentRefs[{i}]");
        if expect_type(&path, parent, "object", &mut errs) {
            required_string(parent, "name", &path, &mut errs);
        }
    }
    if let Some(parents) = spec.get_mut("parentRefs").and_then(Value::as_array_mut) {
        for parent in parents.iter_mut().filter(|p| p.is_object()) {
            default_field(parent, "group", json!(gateway_api::GROUP));
            default_field(parent, "kind", json!("Gateway"));
        }
    }
    for (i, host) in list(spec, "hostnames", "spec", &mut errs)
        .iter()
        .enumerate()
    {
        let path = format!("spec.hostnames[{i}]");
        if expect_type(&path, host, "string", &mut errs) {
            check_host(&path, host.as_str().unwrap_or(""), &mut errs);
        }
    }
    let rules = list(spec, "rules", "spec", &mut errs).to_vec();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if !expect_type(&path, rule, "object", &mut errs) {
            continue;
        }
        for (j, backend) in list(rule, "backendRefs", &path, &mut errs)
            .iter()
            .enumerate()
        {
            let bpath = format!("{path}.backendRefs[{j}]");
            if !expect_type(&bpath, backend, "object", &mut errs) {
                continue;
            }
            required_string(backend, "name", &bpath, &mut errs);
            let kind = backend
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Service");
            let group = backend.get("group").and_then(Value::as_str).unwrap_or("");
            if kind == "Service" && group.is_empty() && backend.get("port").is_none() {
                errs.push(invalid_str(
                    &bpath,
                    "",
                    "Must have port for Service reference",
                ));
            } else if backend.get("port").is_some() {
                port_number(backend, "port", &bpath, &mut errs);
            }
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    let rules = spec
        .as_object_mut()
        .map(|s| {
            s.entry("rules").or_insert_with(
                || json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]),
            )
        })
        .and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        let backends = rule.get_mut("backendRefs").and_then(Value::as_array_mut);
        for backend in backends.into_iter().flatten() {
            default_field(backend, "group", json!(""));
            default_field(backend, "kind", json!("Service"));
            default_field(backend, "weight", json!(1));
        }
    }
    errs
}

/// Gateway: a class and at least one listener with name, port and protocol.
fn admit_gateway(gateway: &mut Gateway) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = spec_mut(&mut gateway.fields, &mut errs) else {
        return errs;
    };
    required_string(spec, "gatewayClassName", "spec", &mut errs);
    let listeners = list(spec, "listeners", "spec", &mut errs);
    if listeners.is_empty() {
        errs.push(required("spec.listeners", ""));
    }
    for (i, listener) in listeners.iter().enumerate() {
        let path = format!("spec.listeners[{i}]");
        if expect_type(&path, listener, "object", &mut errs) {
            required_string(listener, "name", &path, &mut errs);
            port_number(listener, "port", &path, &mut errs);
            required_string(listener, "protocol", &path, &mut errs);
        }
    }
    errs
}

/// Status as the sandbox's gateway controller writes it for its own class: accepted and
/// programmed at the node's address. Other classes have no controller here.
fn gateway_status(gateway: &Gateway, store: &Store) -> Option<Value> {
    gateway_status_at(gateway, store.node.address)
}

/// [`gateway_status`] for a node at `address` (the reference cluster's node agent writes it).
pub(crate) fn gateway_status_at(gateway: &Gateway, address: std::net::IpAddr) -> Option<Value> {
    let class = gateway
        .spec()
        .get("gatewayClassName")
        .and_then(Value::as_str);
    if class != Some(SANDBOX_GATEWAY_CLASS) {
        return None;
    }
    let generation = gateway.metadata.generation.unwrap_or(1);
    let time = serde_json::to_value(now()).unwrap_or(Value::Null);
    let condition = |type_: &str, reason: &str| {
        json!({
            "type": type_,
            "status": "True",
            "reason": reason,
            "message": "netassay sandbox gateway",
            "observedGeneration": generation,
            "lastTransitionTime": time,
        })
    };
    Some(json!({
        "addresses": [{"type": "IPAddress", "value": address.to_string()}],
        "conditions": [condition("Accepted", "Accepted"), condition("Programmed", "Programmed")],
    }))
}

/// The shared part of admitting a Gateway API object.
fn admit_gateway_api<K: GatewayApiKind>(
    obj: &mut GatewayApiObject<K>,
    old: Option<&GatewayApiObject<K>>,
    validate: impl FnOnce(&mut GatewayApiObject<K>) -> Vec<FieldError>,
) -> Result<(), ApiError>
where
    GatewayApiObject<K>: Kind,
{
    let mut errs = Vec::new();
    check_meta(
        &obj.metadata,
        old.is_none(),
        is_dns1123_subdomain,
        &mut errs,
    );
    errs.extend(validate(obj));
    reject::<GatewayApiObject<K>>(&obj.metadata, errs)?;
    let spec_changed = old.is_some_and(|o| o.spec() != obj.spec());
    generation(&mut obj.metadata, old.map(|o| &o.metadata), spec_changed);
    // Status is a subresource of these CRDs: clients cannot set it.
    obj.fields.remove("status");
    if let Some(status) = old.and_then(|o| o.fields.get("status")) {
        obj.fields.insert("status".to_string(), status.clone());
    }
    Ok(())
}

impl Kind for HttpRoute {
    const NAMESPACED: bool = true;
    // The gateway's routes come from HTTPRoutes.
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.http_routes
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.http_routes
    }

    fn admit(_: &Store, route: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        admit_gateway_api(route, old, admit_http_route)
    }
}

impl Kind for Gateway {
    const NAMESPACED: bool = true;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.gateways
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.gateways
    }

    fn admit(store: &Store, gateway: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        admit_gateway_api(gateway, old, admit_gateway)?;
        if let Some(status) = gateway_status(gateway, store) {
            gateway.fields.insert("status".to_string(), status);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(spec: Value) -> HttpRoute {
        serde_json::from_value(json!({"metadata": {"name": "r"}, "spec": spec})).unwrap()
    }

    fn paths(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.path.as_str()).collect()
    }

    // Gateway API CRD schema: parentRefs[].name is required; a Service backendRef needs a port
    // (CEL rule "Must have port for Service reference"); hostnames are DNS names.
    #[test]
    fn http_routes_are_validated_like_the_crd_schema() {
        let mut bad = route(json!({
            "parentRefs": [{"namespace": "tre-gateway"}],
            "hostnames": ["Bad_Host", "10.0.0.1"],
            "rules": [{"backendRefs": [{"name": "web"}, {"name": "web", "port": 70000}]}],
        }));
        let errs = admit_http_route(&mut bad);
        assert_eq!(
            paths(&errs),
            [
                "spec.parentRefs[0].name",
                "spec.hostnames[0]",
                "spec.hostnames[1]",
                "spec.rules[0].backendRefs[0]",
                "spec.rules[0].backendRefs[1].port"
            ]
        );
        assert!(errs[3]
            .message
            .contains("Must have port for Service reference"));
    }

    #[test]
    fn http_routes_get_the_crd_defaults() {
        let mut ok = route(json!({
            "parentRefs": [{"name": "tre-gateway"}],
            "hostnames": ["*.apps.example.org"],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
        }));
        assert!(admit_http_route(&mut ok).is_empty());
        assert_eq!(
            ok.spec()["parentRefs"][0],
            json!({"name": "tre-gateway", "group": "gateway.networking.k8s.io", "kind": "Gateway"})
        );
        assert_eq!(
            ok.spec()["rules"][0]["backendRefs"][0],
            json!({"name": "web", "port": 80, "group": "", "kind": "Service", "weight": 1})
        );
        let mut bare = route(json!({"parentRefs": [{"name": "g"}]}));
        assert!(admit_http_route(&mut bare).is_empty());
        assert_eq!(
            bare.spec()["rules"],
            json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}])
        );
    }

    #[test]
    fn gateways_need_a_class_and_complete_listeners() {
        let mut gw: Gateway = serde_json::from_value(json!({
            "metadata": {"name": "g"},
            "spec": {"listeners": [{"name": "http", "port": 0}]},
        }))
        .unwrap();
        assert_eq!(
            paths(&admit_gateway(&mut gw)),
            [
                "spec.gatewayClassName",
                "spec.listeners[0].port",
                "spec.listeners[0].protocol"
            ]
        );
        let mut no_spec: Gateway =
            serde_json::from_value(json!({"metadata": {"name": "g"}})).unwrap();
        assert_eq!(
            paths(&admit_gateway(&mut no_spec)),
            ["spec.gatewayClassName", "spec.listeners"]
        );
        let mut not_an_object: Gateway =
            serde_json::from_value(json!({"metadata": {"name": "g"}, "spec": []})).unwrap();
        assert_eq!(paths(&admit_gateway(&mut not_an_object)), ["spec"]);
    }

    // Upstream ValidateIngressSpec: rules or defaultBackend; pathType required and supported;
    // Prefix/Exact paths absolute; a service backend with exactly one of port name and number.
    #[test]
    fn ingresses_are_validated_like_upstream() {
        let ingress: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "i"},
            "spec": {"rules": [
                {"host": "10.1.2.3", "http": {"paths": [
                    {"path": "web", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {}}}},
                ]}},
                {"host": "*.example.org", "http": {"paths": [
                    {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}},
                ]}},
            ]},
        }))
        .unwrap();
        let errs = validate_ingress(&ingress);
        assert_eq!(
            paths(&errs),
            [
                "spec.rules[0].host",
                "spec.rules[0].http.paths[0].path",
                "spec.rules[0].http.paths[1].pathType",
                "spec.rules[0].http.paths[1].backend.service.port",
                "spec.rules[1].http.paths[0].backend.service.port"
            ]
        );
        let empty: Ingress =
            serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": {}})).unwrap();
        assert_eq!(paths(&validate_ingress(&empty)), ["spec"]);
    }
}
