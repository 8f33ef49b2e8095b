//! Validation of CNP and CCNP objects: what the API server refuses through the CRD schema and what
//! the Cilium agent refuses in `Rule.Sanitize` (after which it ignores the whole object: no
//! allows and no default deny, `pkg/policy/k8s/cilium_network_policy.go:140-146`). netassay
//! refuses both at load time, with the field path. Where two classes differ the message says
//! which one refuses (`CRD schema:` / `Cilium agent:`); what netassay's oracle does not model
//! (ICMP, HTTP/Kafka L7, groups, nodes, host policies, TLS) is refused with `not modelled`.
//!
//! Sources (Cilium v1.20.2): `pkg/policy/api/rule_validation.go`, `pkg/policy/api/l4.go`,
//! `pkg/policy/api/fqdn.go`, `pkg/fqdn/matchpattern/matchpattern.go`, `pkg/policy/api/entity.go`,
//! `pkg/k8s/apis/cilium.io/v2/cnp_types.go`, `pkg/labels/validation.go`, and the CRD schemas
//! `ciliumnetworkpolicies.yaml` / `ciliumclusterwidenetworkpolicies.yaml`.

use super::fqdn::{valid_match_name_chars, valid_match_pattern_chars, MAX_FQDN_LENGTH};
use super::identity::{split_key, LabelSource};
use super::model::{
    CidrRule, CiliumKind, CiliumPolicy, CiliumRule, EndpointSelector, FqdnSelector, PortProtocol,
    PortRule, CILIUM_API_VERSION,
};
use super::view::{PeerField, PeerRule, PortsView, Section};
use crate::model::Protocol;
use crate::policy::validate::field_error::{child, index, FieldError};
use crate::policy::validate::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    validate_labels,
};
use ipnet::IpNet;

/// Entities the CRD enum admits (`pkg/policy/api/entity.go:16`).
pub const ENTITIES: [&str; 12] = [
    "all",
    "world",
    "cluster",
    "cluster-mesh",
    "host",
    "init",
    "ingress",
    "unmanaged",
    "remote-node",
    "health",
    "none",
    "kube-apiserver",
];

/// Protocols the CRD enum admits (`pkg/policy/api/l4.go:71`).
pub const PROTOCOLS: [&str; 11] = [
    "TCP", "UDP", "SCTP", "VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH", "ANY",
];

/// At most 40 ports per port rule (`rule_validation.go:20`, CRD `maxItems: 40`).
pub const MAX_PORTS: usize = 40;

/// A `toPorts[].ports[].port` after Cilium's parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// `"0"`: every port.
    Any,
    Number(u16),
    /// An IANA service name, lower-cased (`rule_validation.go:617-618`).
    Name(String),
}

/// `iana.IsSvcName` (`pkg/iana/svcname.go:14-19`): 1-15 of [a-zA-Z0-9-], at least one letter,
/// no leading, trailing or doubled dash.
pub fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// `PortProtocol.sanitize` (`rule_validation.go:604-633`): a service name, or a number parsed
/// like Go's `strconv.ParseUint(s, 0, 16)` (a leading `0` means octal).
pub fn parse_port(port: &str) -> Result<PortSpec, String> {
    if port.is_empty() {
        return Err("port must be specified".into());
    }
    if is_service_name(port) {
        return Ok(PortSpec::Name(port.to_ascii_lowercase()));
    }
    let bad =
        |why: &str| format!("unable to parse port: strconv.ParseUint: parsing {port:?}: {why}");
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid syntax"));
    }
    let (digits, radix) = if port.len() > 1 && port.starts_with('0') {
        (&port[1..], 8)
    } else {
        (port, 10)
    };
    let n = u64::from_str_radix(digits, radix).map_err(|_| bad("invalid syntax"))?;
    let n = u16::try_from(n).map_err(|_| bad("value out of range"))?;
    Ok(if n == 0 {
        PortSpec::Any
    } else {
        PortSpec::Number(n)
    })
}

/// The transport protocols a port entry covers: absent, empty and `ANY` mean TCP, UDP and SCTP
/// (`pkg/policy/rule.go:395-402`).
pub fn protocols(p: &PortProtocol) -> Result<Vec<Protocol>, String> {
    match p.protocol.as_deref() {
        None | Some("") | Some("ANY") => Ok(Protocol::ALL.to_vec()),
        Some("TCP") => Ok(vec![Protocol::Tcp]),
        Some("UDP") => Ok(vec![Protocol::Udp]),
        Some("SCTP") => Ok(vec![Protocol::Sctp]),
        Some(other) => Err(other.to_string()),
    }
}

/// Every problem of one CNP or CCNP, paths relative to the object (`spec.ingress[0]...`).
pub fn validate_cilium_policy(p: &CiliumPolicy) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.api_version != CILIUM_API_VERSION {
        errs.push(FieldError::not_supported(
            "apiVersion".into(),
            &p.api_version,
            &[CILIUM_API_VERSION],
        ));
    }
    let name = p.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name".into(),
            "name or generateName is required",
        ));
    } else {
        for m in is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid_str("metadata.name".into(), name, &m));
        }
    }
    let namespace = p.metadata.namespace.as_deref();
    match (p.kind, namespace) {
        (CiliumKind::CiliumNetworkPolicy, None | Some("")) => {
            errs.push(FieldError::required("metadata.namespace".into(), ""));
        }
        (CiliumKind::CiliumNetworkPolicy, Some(ns)) => {
            for m in is_dns1123_label(ns) {
                errs.push(FieldError::invalid_str("metadata.namespace".into(), ns, &m));
            }
        }
        (CiliumKind::CiliumClusterwideNetworkPolicy, Some(ns)) if !ns.is_empty() => {
            errs.push(FieldError::forbidden(
                "metadata.namespace".into(),
                "a CiliumClusterwideNetworkPolicy is cluster-scoped: it has no namespace \
                 (netassay refuses one rather than ignore it)",
            ));
        }
        _ => {}
    }
    if let Some(labels) = &p.metadata.labels {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    let specs_empty = p.specs.as_ref().is_none_or(|s| s.is_empty());
    if p.spec.is_none() && specs_empty {
        errs.push(FieldError::required(
            "spec".into(),
            "CRD schema: spec or specs must be provided (Cilium agent: Invalid \
             CiliumNetworkPolicy spec(s): empty policy)",
        ));
    }
    for (place, rule) in p.rules() {
        validate_rule(p.kind, rule, &place.to_string(), &mut errs);
    }
    errs
}

fn not_modelled(path: String, what: &str) -> FieldError {
    FieldError::forbidden(
        path,
        &format!("not modelled: netassay's oracle does not judge {what}, so it refuses the policy rather than guess"),
    )
}

fn validate_rule(kind: CiliumKind, r: &CiliumRule, path: &str, errs: &mut Vec<FieldError>) {
    let has = |v: Option<usize>| v.is_some_and(|n| n > 0);
    if !(has(r.ingress.as_ref().map(Vec::len))
        || has(r.ingress_deny.as_ref().map(Vec::len))
        || has(r.egress.as_ref().map(Vec::len))
        || has(r.egress_deny.as_ref().map(Vec::len)))
    {
        errs.push(FieldError::required(
            path.to_string(),
            "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
        ));
    }
    match (&r.endpoint_selector, &r.node_selector) {
        (None, None) => errs.push(FieldError::required(
            child(path, "endpointSelector"),
            "rule must have one of EndpointSelector or NodeSelector",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            child(path, "nodeSelector"),
            "rule cannot have both EndpointSelector and NodeSelector",
        )),
        _ => {}
    }
    if let Some(sel) = &r.endpoint_selector {
        validate_selector(sel, &child(path, "endpointSelector"), errs);
    }
    if r.node_selector.is_some() {
        if kind == CiliumKind::CiliumNetworkPolicy {
            errs.push(FieldError::forbidden(
                child(path, "nodeSelector"),
                "Cilium agent: Invalid CiliumNetworkPolicy spec: rule cannot have NodeSelector",
            ));
        } else {
            errs.push(not_modelled(
                child(path, "nodeSelector"),
                "host policies (they take effect only with --enable-host-firewall)",
            ));
        }
    }
    for (section, i, rule) in r.peer_rules() {
        let rp = index(&child(path, section.as_str()), i);
        validate_peer_rule(&rule, &rp, errs);
    }
}

fn validate_peer_rule(rule: &PeerRule, path: &str, errs: &mut Vec<FieldError>) {
    for (field, present) in rule.unmodelled {
        if present {
            let what = match field {
                "fromRequires" | "toRequires" => {
                    errs.push(FieldError::invalid_str(
                        child(path, field),
                        field,
                        "CRD schema: must have at most 0 items (deprecated and removed)",
                    ));
                    continue;
                }
                "icmps" => "ICMP rules",
                "authentication" => "mutual authentication",
                "fromGroups" | "toGroups" => "cloud-provider groups",
                _ => "node selectors in peers (--enable-node-selector-labels)",
            };
            errs.push(not_modelled(child(path, field), what));
        }
    }
    let members = rule.l3_members();
    if members.len() > 1 {
        let names: Vec<String> = members.iter().map(|m| go_member(rule, *m)).collect();
        errs.push(FieldError::forbidden(
            path.to_string(),
            &format!(
                "Cilium agent: combining {} and {} is not supported yet",
                names[0], names[1]
            ),
        ));
    }
    for (k, sel) in rule.endpoints.iter().flat_map(|v| v.iter()).enumerate() {
        validate_selector(
            sel,
            &index(&child(path, &rule.field(PeerField::Endpoints)), k),
            errs,
        );
    }
    for (k, c) in rule.cidr.iter().flat_map(|v| v.iter()).enumerate() {
        let cp = index(&child(path, &rule.field(PeerField::Cidr)), k);
        if let Err(e) = parse_strict_cidr(c) {
            errs.push(FieldError::invalid_str(
                cp,
                c,
                &format!("CRD schema: must be of type cidr ({e})"),
            ));
        }
    }
    for (k, c) in rule.cidr_set.iter().flat_map(|v| v.iter()).enumerate() {
        validate_cidr_rule(
            c,
            &index(&child(path, &rule.field(PeerField::CidrSet)), k),
            errs,
        );
    }
    for (k, e) in rule.entities.iter().flat_map(|v| v.iter()).enumerate() {
        if !ENTITIES.contains(&e.as_str()) {
            errs.push(FieldError::not_supported(
                index(&child(path, &rule.field(PeerField::Entities)), k),
                e,
                &ENTITIES,
            ));
        }
    }
    for (k, s) in rule.services.iter().flat_map(|v| v.iter()).enumerate() {
        let sp = index(&child(path, "toServices"), k);
        match (&s.k8s_service, &s.k8s_service_selector) {
            (Some(name), None) => {
                if name.service_name.as_deref().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(
                        child(&child(&sp, "k8sService"), "serviceName"),
                        "",
                    ));
                }
            }
            (None, Some(sel)) => {
                validate_selector(
                    &sel.selector,
                    &child(&child(&sp, "k8sServiceSelector"), "selector"),
                    errs,
                );
            }
            _ => errs.push(FieldError::invalid_str(
                sp,
                "toServices",
                "CRD schema: exactly one of k8sService and k8sServiceSelector",
            )),
        }
    }
    for (k, f) in rule.fqdns.iter().flat_map(|v| v.iter()).enumerate() {
        validate_fqdn(f, &index(&child(path, "toFQDNs"), k), false, errs);
    }
    match rule.ports {
        None => {}
        Some(PortsView::Deny(list)) => {
            for (k, pr) in list.iter().enumerate() {
                let pp = index(&child(path, "toPorts"), k);
                validate_ports(
                    pr.ports.as_deref().unwrap_or(&[]),
                    &child(&pp, "ports"),
                    false,
                    errs,
                );
            }
        }
        Some(PortsView::Allow(list)) => {
            for (k, pr) in list.iter().enumerate() {
                validate_port_rule(rule.section, pr, &index(&child(path, "toPorts"), k), errs);
            }
        }
    }
}

/// The Go field name Cilium's messages use (`FromEndpoints`, `ToFQDNs`, ...).
fn go_member(rule: &PeerRule, m: PeerField) -> String {
    let f = rule.field(m);
    let mut c = f.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => f,
    }
}

fn validate_port_rule(section: Section, pr: &PortRule, path: &str, errs: &mut Vec<FieldError>) {
    for (field, present) in [
        ("terminatingTLS", pr.terminating_tls.is_some()),
        ("originatingTLS", pr.originating_tls.is_some()),
        ("serverNames", pr.server_names.is_some()),
        ("listener", pr.listener.is_some()),
    ] {
        if present {
            errs.push(not_modelled(
                child(path, field),
                "TLS interception and Envoy listeners",
            ));
        }
    }
    let ports = pr.ports.as_deref().unwrap_or(&[]);
    let dns = pr.rules.as_ref().and_then(|r| r.dns.as_ref());
    validate_ports(
        ports,
        &child(path, "ports"),
        dns.is_some_and(|d| !d.is_empty()),
        errs,
    );
    let Some(rules) = &pr.rules else { return };
    let rp = child(path, "rules");
    for (field, present) in [
        ("http", rules.http.is_some()),
        ("kafka", rules.kafka.is_some()),
        ("l7proto", rules.l7proto.is_some()),
        ("l7", rules.l7.is_some()),
    ] {
        if present {
            errs.push(not_modelled(
                child(&rp, field),
                "L7 rules other than DNS (a proxy answers instead of the pod)",
            ));
        }
    }
    let Some(dns) = dns else { return };
    if section.direction() == crate::policy::oracle::Direction::Ingress {
        errs.push(FieldError::forbidden(
            child(&rp, "dns"),
            "Cilium agent: L7 protocol DNS is not supported on ingress yet",
        ));
        return;
    }
    if ports.is_empty() {
        errs.push(FieldError::required(
            child(path, "ports"),
            "Cilium agent: port 53 must be specified for DNS rules",
        ));
    }
    if ports
        .iter()
        .any(|p| matches!(p.port.as_deref().map(parse_port), Some(Ok(PortSpec::Any))))
    {
        errs.push(FieldError::forbidden(
            child(path, "ports"),
            "Cilium agent: L7 rules can not be used when a port is 0",
        ));
    }
    for (k, f) in dns.iter().enumerate() {
        validate_fqdn(f, &index(&child(&rp, "dns"), k), true, errs);
    }
}

fn validate_ports(ports: &[PortProtocol], path: &str, dns: bool, errs: &mut Vec<FieldError>) {
    if ports.len() > MAX_PORTS {
        errs.push(FieldError::new(
            path.to_string(),
            crate::policy::validate::FieldErrorKind::TooMany,
            None,
            None,
            "must have at most 40 items (Cilium agent: too many ports, the max is 40)",
        ));
    }
    for (k, p) in ports.iter().enumerate() {
        let pp = index(path, k);
        let number = match p.port.as_deref() {
            None | Some("") => {
                errs.push(FieldError::required(
                    child(&pp, "port"),
                    "Cilium agent: port must be specified",
                ));
                None
            }
            Some(s) => match parse_port(s) {
                Ok(PortSpec::Number(n)) => Some(n),
                Ok(_) => None,
                Err(e) => {
                    errs.push(FieldError::invalid_str(
                        child(&pp, "port"),
                        s,
                        &format!("Cilium agent: {e}"),
                    ));
                    None
                }
            },
        };
        if let Some(e) = p.end_port {
            if !(0..=65535).contains(&e) {
                errs.push(FieldError::invalid_int(
                    child(&pp, "endPort"),
                    e,
                    "CRD schema: must be between 0 and 65535",
                ));
            } else if dns && number.is_some_and(|n| e > i64::from(n)) {
                errs.push(FieldError::invalid_int(
                    child(&pp, "endPort"),
                    e,
                    "Cilium agent: DNS rules do not support port ranges",
                ));
            }
        }
        if let Some(proto) = p.protocol.as_deref() {
            if !PROTOCOLS.contains(&proto) {
                errs.push(FieldError::not_supported(
                    child(&pp, "protocol"),
                    proto,
                    &PROTOCOLS,
                ));
            } else if protocols(p).is_err() {
                errs.push(not_modelled(
                    child(&pp, "protocol"),
                    "extended IP protocols (VRRP, IGMP, GRE, IPIP, IPV6, ESP, AH)",
                ));
            }
        }
    }
}

fn validate_fqdn(f: &FqdnSelector, path: &str, dns_rule: bool, errs: &mut Vec<FieldError>) {
    match (&f.match_name, &f.match_pattern) {
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            path.to_string(),
            "only one of MatchName or MatchPattern is allowed in an FQDNSelector",
        )),
        (None, None) => errs.push(FieldError::required(
            path.to_string(),
            "CRD schema: one of matchName or matchPattern",
        )),
        (Some(name), None) => {
            let np = child(path, "matchName");
            if name.len() > MAX_FQDN_LENGTH {
                errs.push(FieldError::too_long(np.clone(), MAX_FQDN_LENGTH));
            }
            if !valid_match_name_chars(name) {
                let allowed = if dns_rule {
                    "Only 0-9, a-z, A-Z and . and - characters are allowed"
                } else {
                    "Only 0-9, a-z, A-Z and ., -, _ characters are allowed"
                };
                errs.push(FieldError::invalid_str(
                    np,
                    name,
                    &format!("Invalid characters in MatchName: {name:?}. {allowed}"),
                ));
            }
        }
        (None, Some(pattern)) => {
            let pp = child(path, "matchPattern");
            if pattern.trim().len() > MAX_FQDN_LENGTH {
                errs.push(FieldError::invalid_str(
                    pp.clone(),
                    pattern,
                    &format!("Invalid MatchPattern: {pattern:?}. Must be <= 255 characters long."),
                ));
            }
            if !valid_match_pattern_chars(pattern) {
                let hint = if pattern.contains("${") {
                    " (an unsubstituted template placeholder: substitute it before applying)"
                } else {
                    ""
                };
                errs.push(FieldError::invalid_str(
                    pp,
                    pattern,
                    &format!(
                        "Invalid characters in MatchPattern: {pattern:?}. Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed{hint}"
                    ),
                ));
            }
        }
    }
}

fn validate_cidr_rule(c: &CidrRule, path: &str, errs: &mut Vec<FieldError>) {
    let count = [
        c.cidr.as_deref().is_some_and(|s| !s.is_empty()),
        c.cidr_group_ref.as_deref().is_some_and(|s| !s.is_empty()),
        c.cidr_group_selector.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count == 0 {
        errs.push(FieldError::required(
            path.to_string(),
            "one of cidr, cidrGroupRef, or cidrGroupSelector is required",
        ));
        return;
    }
    if count > 1 {
        errs.push(FieldError::forbidden(
            path.to_string(),
            "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set",
        ));
        return;
    }
    if c.cidr_group_ref.is_some() || c.cidr_group_selector.is_some() {
        errs.push(not_modelled(path.to_string(), "CiliumCIDRGroups"));
        return;
    }
    let Some(cidr) = c.cidr.as_deref() else {
        return;
    };
    let net = match parse_strict_cidr(cidr) {
        Ok(n) => n,
        Err(e) => {
            errs.push(FieldError::invalid_str(
                child(path, "cidr"),
                cidr,
                &format!("unable to parse CIDRRule {cidr:?}: {e}"),
            ));
            return;
        }
    };
    for (k, e) in c.except.iter().flatten().enumerate() {
        let ep = index(&child(path, "except"), k);
        match parse_strict_cidr(e) {
            Err(why) => errs.push(FieldError::invalid_str(ep, e, &why)),
            Ok(ex) => {
                if net.prefix_len() > ex.prefix_len() || !net.contains(&ex.addr()) {
                    errs.push(FieldError::invalid_str(
                        ep,
                        e,
                        &format!(
                            "allow CIDR prefix {cidr} does not contain exclude CIDR prefix {e}"
                        ),
                    ));
                }
            }
        }
    }
}

/// `<ip>/<len>` as Go's `netip.ParsePrefix` / `net.ParseCIDR` read it (no bare IPs: the CRD
/// says `format: cidr`). Host bits may be set; the network is what matches.
pub fn parse_strict_cidr(s: &str) -> Result<IpNet, String> {
    let Some((ip, len)) = s.split_once('/') else {
        return Err(format!("no '/' in {s:?}"));
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("bad IP address in {s:?}"))?;
    if len.is_empty()
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.len() > 1 && len.starts_with('0'))
    {
        return Err(format!("bad bits after slash: {len:?}"));
    }
    let bits: u8 = len
        .parse()
        .map_err(|_| format!("bad bits after slash: {len:?}"))?;
    IpNet::new(ip, bits)
        .map(|n| n.trunc())
        .map_err(|_| format!("prefix length {bits} too long"))
}

/// Keys: at most one `:`, a known source, then a valid Kubernetes label key; values: valid label
/// values; operators and their values as in `pkg/labels/validation.go:43-130`.
fn validate_selector(sel: &EndpointSelector, path: &str, errs: &mut Vec<FieldError>) {
    let key_ok = |k: &str, kp: String, errs: &mut Vec<FieldError>| {
        if k.matches(':').count() > 1 {
            errs.push(FieldError::invalid_str(
                kp,
                k,
                "invalid label selector: a key may have at most one ':' (source:key)",
            ));
            return;
        }
        let (source, key) = split_key(k);
        if let LabelSource::Other(src) = &source {
            errs.push(not_modelled(
                kp.clone(),
                &format!("selector keys of source {src:?} (only k8s:, any: and reserved: are)"),
            ));
        }
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid_str(
                kp.clone(),
                k,
                &format!("invalid label selector: {m}"),
            ));
        }
    };
    let ml = child(path, "matchLabels");
    for (k, v) in sel.match_labels.iter().flatten() {
        key_ok(k, ml.clone(), errs);
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(child(&ml, k), v, &m));
        }
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let ep = index(&child(path, "matchExpressions"), i);
        key_ok(&e.key, child(&ep, "key"), errs);
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if n == 0 {
                    errs.push(FieldError::required(
                        child(&ep, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if n > 0 {
                    errs.push(FieldError::forbidden(
                        child(&ep, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&ep, "operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        for (j, v) in e.values.iter().flatten().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(FieldError::invalid_str(
                    index(&child(&ep, "values"), j),
                    v,
                    &m,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_the_agent() {
        assert_eq!(parse_port("80"), Ok(PortSpec::Number(80)));
        assert_eq!(parse_port("0"), Ok(PortSpec::Any));
        assert_eq!(
            parse_port("notebook-port"),
            Ok(PortSpec::Name("notebook-port".into()))
        );
        assert_eq!(parse_port("HTTP"), Ok(PortSpec::Name("http".into())));
        assert_eq!(parse_port("010"), Ok(PortSpec::Number(8)));
        assert!(parse_port("70000").is_err_and(|e| e.contains("value out of range")));
        assert!(parse_port("").is_err());
        assert!(parse_port("a-very-long-port-name").is_err_and(|e| e.contains("invalid syntax")));
    }

    #[test]
    fn strict_cidrs_refuse_bare_ips() {
        assert!(parse_strict_cidr("10.0.0.1").is_err());
        assert!(parse_strict_cidr("10.0.0.0/33").is_err());
        assert_eq!(
            parse_strict_cidr("10.0.0.7/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert!(parse_strict_cidr("::/0").is_ok());
    }
}
