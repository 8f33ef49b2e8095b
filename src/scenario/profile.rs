//! The profile config: what an intent profile (K8TRE) needs to know about one cluster that the
//! scenarios cannot say — the labels each persona's namespaces carry, the external endpoints
//! (the internet, approved mirrors, cloud metadata, DNS names) and who may reach them, the
//! gateway, and the exposures that are allowed. Strict YAML; errors name file, line and field.
//!
//! The built-in config (`scenarios/k8tre/profile-config.yaml`) describes the sandbox's TRE
//! preset; a real cluster needs its own (`netassay run --profile-config FILE`).

use super::document::{is_slug, parse_doc, LoadError};
use super::exposure::ExposureRule;
use netassay_core::model::{
    External, Labels, Protocol, ServedPort, Verdict, Via, NAMESPACE_NAME_LABEL,
};
use netassay_core::policy::validate::{is_dns1123_subdomain, validate_labels};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// File name of the built-in profile config inside `scenarios/<profile>/`.
pub const CONFIG_FILE_NAME: &str = "profile-config.yaml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfileConfigDoc {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    personas: BTreeMap<String, PersonaDoc>,
    #[serde(default)]
    externals: BTreeMap<String, ExternalDoc>,
    #[serde(default)]
    gateway: Option<GatewayDoc>,
    #[serde(default)]
    exposures: Option<ExposuresDoc>,
    #[serde(default)]
    outside: Option<OutsideDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PersonaDoc {
    #[serde(default)]
    description: Option<String>,
    namespace_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExternalDoc {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    address: Option<IpAddr>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    resolves: Option<bool>,
    #[serde(default)]
    ports: Vec<ExternalPortDoc>,
    #[serde(default)]
    allow: Vec<AllowDoc>,
}

/// One probed port of an external endpoint (TCP unless said otherwise, and only TCP is valid).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalPortDoc {
    pub port: u16,
    #[serde(default)]
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AllowDoc {
    personas: Vec<String>,
    #[serde(default)]
    ports: Option<Vec<u16>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GatewayDoc {
    address: IpAddr,
    #[serde(default)]
    port: Option<u16>,
    host_suffix: String,
    route: RouteKind,
    #[serde(default)]
    parent_ref: Option<ParentRefDoc>,
    #[serde(default)]
    ingress_class_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ParentRefDoc {
    namespace: String,
    name: String,
    #[serde(default)]
    section_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExposuresDoc {
    #[serde(default)]
    allowed: Vec<ExposureRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OutsideDoc {
    vantage: OutsideVantage,
}

/// Which kind of object exposes netassay's throwaway app through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RouteKind {
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    Ingress,
}

/// Where probes "from outside the cluster" start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutsideVantage {
    /// The machine netassay runs on (run it from outside the cluster). In the sandbox, the
    /// sandbox's own outside host.
    #[default]
    Local,
    /// No vantage outside the cluster (netassay runs inside it): outside probes are not judged.
    None,
}

/// A persona: a kind of namespace and the labels such namespaces carry in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    pub description: String,
    pub labels: Labels,
}

/// Who may reach an external endpoint: these personas, on these ports (all when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub personas: Vec<String>,
    pub ports: Option<Vec<u16>>,
}

/// An external endpoint with its expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalEndpoint {
    pub external: External,
    pub description: String,
    /// Whether its name must resolve from inside the cluster.
    pub resolves: bool,
    pub allow: Vec<Allow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub namespace: String,
    pub name: String,
    pub section_name: Option<String>,
}

/// The cluster's ingress gateway, as reached from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub address: IpAddr,
    pub port: u16,
    /// Routes netassay creates use host names under this suffix.
    pub host_suffix: String,
    pub route: RouteKind,
    pub parent_ref: Option<ParentRef>,
    pub ingress_class_name: Option<String>,
}

/// A loaded, checked profile config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Where it came from: a path or `builtin:k8tre/profile-config.yaml`.
    pub file: String,
    pub description: String,
    pub personas: BTreeMap<String, Persona>,
    pub externals: Vec<ExternalEndpoint>,
    pub gateway: Option<Gateway>,
    pub exposures: Vec<ExposureRule>,
    pub outside: OutsideVantage,
}

impl Profile {
    /// Reads and checks a profile config file.
    pub fn load(path: &Path) -> Result<Profile, Vec<LoadError>> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Profile::parse(&file, &text),
            Err(e) => Err(vec![LoadError {
                file,
                location: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }]),
        }
    }

    /// The endpoints of the topology of a bound scenario.
    pub fn model_externals(&self) -> Vec<External> {
        self.externals.iter().map(|e| e.external.clone()).collect()
    }

    pub fn endpoint(&self, name: &str) -> Option<&ExternalEndpoint> {
        self.externals.iter().find(|e| e.external.name == name)
    }

    /// What the profile says about a probe from a namespace of `persona` to an external
    /// endpoint: a lookup is allowed when the name must resolve; a connection when an `allow`
    /// entry names the persona and the port. `None` when the endpoint is unknown.
    pub fn external_verdict(
        &self,
        persona: Option<&str>,
        external: &str,
        port: u16,
        via: Via,
    ) -> Option<Verdict> {
        let e = self.endpoint(external)?;
        if via == Via::Lookup {
            return Some(Verdict::from_allowed(e.resolves));
        }
        let allowed = persona.is_some_and(|p| {
            e.allow.iter().any(|a| {
                a.personas.iter().any(|x| x == p)
                    && a.ports.as_ref().is_none_or(|ps| ps.contains(&port))
            })
        });
        Some(Verdict::from_allowed(allowed))
    }

    /// Parses a profile config; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Profile, Vec<LoadError>> {
        let (doc, source): (ProfileConfigDoc, _) = parse_doc(file, text)?;
        let mut errors = Vec::new();
        let mut error = |path: String, message: String| {
            errors.push(LoadError {
                file: file.to_string(),
                location: source.locate(&path),
                path,
                message,
            });
        };
        let mut personas = BTreeMap::new();
        for (name, p) in &doc.personas {
            let path = format!("personas.{name}");
            if !is_slug(name) {
                error(
                    path.clone(),
                    format!("persona name {name:?} must be [a-z0-9-]"),
                );
            }
            for e in validate_labels(&p.namespace_labels, &format!("{path}.namespaceLabels")) {
                error(e.path.clone(), e.message.clone());
            }
            if p.namespace_labels.contains_key(NAMESPACE_NAME_LABEL) {
                error(
                    format!("{path}.namespaceLabels.{NAMESPACE_NAME_LABEL}"),
                    "is set by the API server to the namespace's own name; a persona cannot fix it"
                        .into(),
                );
            }
            if p.namespace_labels.is_empty() {
                error(
                    format!("{path}.namespaceLabels"),
                    "a persona needs at least one label: it is how the cluster's policies select \
                     its namespaces"
                        .into(),
                );
            }
            personas.insert(
                name.clone(),
                Persona {
                    description: p.description.clone().unwrap_or_default(),
                    labels: p.namespace_labels.clone(),
                },
            );
        }
        let mut externals = Vec::new();
        for (name, e) in &doc.externals {
            let path = format!("externals.{name}");
            let ports = check_external(
                name,
                &path,
                e.address,
                e.name.as_deref(),
                &e.ports,
                &mut error,
            );
            if e.resolves.is_some() && e.name.is_none() {
                error(
                    format!("{path}.resolves"),
                    "only an endpoint with a `name` can resolve".into(),
                );
            }
            let mut allow = Vec::new();
            for (k, a) in e.allow.iter().enumerate() {
                for (m, p) in a.personas.iter().enumerate() {
                    if !doc.personas.contains_key(p) {
                        error(
                            format!("{path}.allow[{k}].personas[{m}]"),
                            format!("unknown persona {p:?}: declare it under `personas`"),
                        );
                    }
                }
                for (m, port) in a.ports.iter().flatten().enumerate() {
                    if !ports.iter().any(|sp| sp.port == *port) {
                        error(
                            format!("{path}.allow[{k}].ports[{m}]"),
                            format!("port {port} is not among this endpoint's `ports`"),
                        );
                    }
                }
                allow.push(Allow {
                    personas: a.personas.clone(),
                    ports: a.ports.clone(),
                });
            }
            externals.push(ExternalEndpoint {
                external: External {
                    name: name.clone(),
                    address: e.address,
                    host: e.name.clone(),
                    ports,
                },
                description: e.description.clone().unwrap_or_default(),
                resolves: e.resolves.unwrap_or(e.name.is_some()),
                allow,
            });
        }
        let gateway = doc.gateway.as_ref().map(|g| {
            let host_suffix = g.host_suffix.trim_matches('.').to_string();
            for m in is_dns1123_subdomain(&host_suffix) {
                error(
                    "gateway.hostSuffix".into(),
                    format!("invalid DNS suffix {:?}: {m}", g.host_suffix),
                );
            }
            match g.route {
                RouteKind::HttpRoute if g.parent_ref.is_none() => error(
                    "gateway.parentRef".into(),
                    "an HTTPRoute needs the Gateway it attaches to: parentRef {namespace, name}"
                        .into(),
                ),
                RouteKind::Ingress if g.parent_ref.is_some() => error(
                    "gateway.parentRef".into(),
                    "parentRef is for route: HTTPRoute; an Ingress uses ingressClassName".into(),
                ),
                _ => {}
            }
            Gateway {
                address: g.address,
                port: g.port.unwrap_or(80),
                host_suffix,
                route: g.route,
                parent_ref: g.parent_ref.as_ref().map(|p| ParentRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    section_name: p.section_name.clone(),
                }),
                ingress_class_name: g.ingress_class_name.clone(),
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Profile {
            file: file.to_string(),
            description: doc
                .description
                .clone()
                .unwrap_or_default()
                .trim()
                .to_string(),
            personas,
            externals,
            gateway,
            exposures: doc.exposures.map(|e| e.allowed).unwrap_or_default(),
            outside: doc.outside.map(|o| o.vantage).unwrap_or_default(),
        })
    }
}

/// The checks every external endpoint gets, in a profile config or a scenario's topology: its
/// key, that it has an address or a name, the name's syntax, and its ports (TCP, listed once);
/// errors go to `error(path, message)` under `path`.
pub(crate) fn check_external(
    name: &str,
    path: &str,
    address: Option<IpAddr>,
    dns_name: Option<&str>,
    port_docs: &[ExternalPortDoc],
    error: &mut dyn FnMut(String, String),
) -> Vec<ServedPort> {
    let path = path.to_string();
    if !is_slug(name) {
        error(
            path.clone(),
            format!("external name {name:?} must be [a-z0-9-]"),
        );
    }
    if address.is_none() && dns_name.is_none() {
        error(
            path.clone(),
            "an external endpoint needs an address, a name, or both".into(),
        );
    }
    if let Some(n) = dns_name {
        let bare = n.strip_suffix('.').unwrap_or(n);
        for m in is_dns1123_subdomain(bare) {
            error(
                format!("{path}.name"),
                format!("invalid DNS name {n:?}: {m}"),
            );
        }
    }
    if port_docs.is_empty() && address.is_some() {
        error(
            format!("{path}.ports"),
            "list the ports to probe on this address (e.g. [{port: 443}])".into(),
        );
    }
    let mut ports = Vec::new();
    for (k, p) in port_docs.iter().enumerate() {
        if p.port == 0 {
            error(
                format!("{path}.ports[{k}].port"),
                "port 0 is not a valid port".into(),
            );
        }
        let protocol = p.protocol.unwrap_or(Protocol::Tcp);
        if protocol != Protocol::Tcp {
            error(
                format!("{path}.ports[{k}].protocol"),
                format!(
                    "{protocol} cannot be probed on an endpoint that is not a netassay \
                     agent (nothing proves a datagram arrived); DNS is checked by \
                     lookups of `name`"
                ),
            );
        }
        let sp = ServedPort {
            port: p.port,
            protocol,
            name: None,
        };
        if ports.contains(&sp) {
            error(
                format!("{path}.ports[{k}]"),
                format!("{}/{} is listed twice", sp.port, sp.protocol),
            );
        }
        ports.push(sp);
    }
    ports
}
