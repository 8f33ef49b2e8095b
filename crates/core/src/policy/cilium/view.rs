//! One shape for the four rule sections (`ingress`, `ingressDeny`, `egress`, `egressDeny`), so the
//! validator and the oracle walk them with the same code and name fields the same way.

use super::model::{
    CidrRule, CiliumRule, EndpointSelector, FqdnSelector, PortDenyRule, PortRule, ServiceRef,
};
use crate::policy::oracle::Direction;
use serde::Serialize;
use std::fmt;

/// A rule section of a Cilium rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Section {
    #[serde(rename = "ingress")]
    Ingress,
    #[serde(rename = "ingressDeny")]
    IngressDeny,
    #[serde(rename = "egress")]
    Egress,
    #[serde(rename = "egressDeny")]
    EgressDeny,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Ingress => "ingress",
            Section::IngressDeny => "ingressDeny",
            Section::Egress => "egress",
            Section::EgressDeny => "egressDeny",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Section::Ingress | Section::IngressDeny => Direction::Ingress,
            Section::Egress | Section::EgressDeny => Direction::Egress,
        }
    }

    pub fn is_deny(self) -> bool {
        matches!(self, Section::IngressDeny | Section::EgressDeny)
    }

    /// `from` for ingress sections, `to` for egress ones: the prefix of peer field names.
    pub fn peer_prefix(self) -> &'static str {
        match self.direction() {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ports of a rule: allow rules carry L7 rules, deny rules only ports.
#[derive(Debug, Clone, Copy)]
pub enum PortsView<'a> {
    Allow(&'a [PortRule]),
    Deny(&'a [PortDenyRule]),
}

impl PortsView<'_> {
    pub fn len(&self) -> usize {
        match self {
            PortsView::Allow(p) => p.len(),
            PortsView::Deny(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One element of a section, field by field. `None` is an absent field; `Some(&[])` a present
/// but empty list (Cilium tells them apart: an empty `fromEndpoints` selects nothing).
#[derive(Debug, Clone, Copy)]
pub struct PeerRule<'a> {
    pub section: Section,
    pub endpoints: Option<&'a [EndpointSelector]>,
    pub cidr: Option<&'a [String]>,
    pub cidr_set: Option<&'a [CidrRule]>,
    pub entities: Option<&'a [String]>,
    pub services: Option<&'a [ServiceRef]>,
    pub fqdns: Option<&'a [FqdnSelector]>,
    pub ports: Option<PortsView<'a>>,
    /// Cilium fields the oracle does not model, present in this rule: (field name, present).
    pub unmodelled: [(&'static str, bool); 5],
}

impl PeerRule<'_> {
    /// Field names as written: `fromEndpoints` / `toEndpoints`, ...
    pub fn field(&self, what: PeerField) -> String {
        let p = self.section.peer_prefix();
        match what {
            PeerField::Endpoints => format!("{p}Endpoints"),
            PeerField::Cidr => format!("{p}CIDR"),
            PeerField::CidrSet => format!("{p}CIDRSet"),
            PeerField::Entities => format!("{p}Entities"),
            PeerField::Services => "toServices".to_string(),
            PeerField::Fqdns => "toFQDNs".to_string(),
        }
    }

    /// The L3 peer kinds present and non-empty, in a fixed order (Cilium's `l3Members`).
    pub fn l3_members(&self) -> Vec<PeerField> {
        let mut out = Vec::new();
        let non_empty = |n: Option<usize>| n.is_some_and(|n| n > 0);
        if non_empty(self.endpoints.map(<[_]>::len)) {
            out.push(PeerField::Endpoints);
        }
        if non_empty(self.cidr.map(<[_]>::len)) {
            out.push(PeerField::Cidr);
        }
        if non_empty(self.cidr_set.map(<[_]>::len)) {
            out.push(PeerField::CidrSet);
        }
        if non_empty(self.entities.map(<[_]>::len)) {
            out.push(PeerField::Entities);
        }
        if non_empty(self.services.map(<[_]>::len)) {
            out.push(PeerField::Services);
        }
        if non_empty(self.fqdns.map(<[_]>::len)) {
            out.push(PeerField::Fqdns);
        }
        out
    }

    /// True when some L3 field is present at all, even as an empty list.
    pub fn has_l3_field(&self) -> bool {
        self.endpoints.is_some()
            || self.cidr.is_some()
            || self.cidr_set.is_some()
            || self.entities.is_some()
            || self.services.is_some()
            || self.fqdns.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerField {
    Endpoints,
    Cidr,
    CidrSet,
    Entities,
    Services,
    Fqdns,
}

impl CiliumRule {
    /// Every element of the four sections, in the order ingress, ingressDeny, egress, egressDeny.
    pub fn peer_rules(&self) -> Vec<(Section, usize, PeerRule<'_>)> {
        let mut out = Vec::new();
        for (i, r) in self.ingress.iter().flatten().enumerate() {
            out.push((
                Section::Ingress,
                i,
                PeerRule {
                    section: Section::Ingress,
                    endpoints: r.from_endpoints.as_deref(),
                    cidr: r.from_cidr.as_deref(),
                    cidr_set: r.from_cidr_set.as_deref(),
                    entities: r.from_entities.as_deref(),
                    services: None,
                    fqdns: None,
                    ports: r.to_ports.as_deref().map(PortsView::Allow),
                    unmodelled: [
                        ("fromRequires", r.from_requires.is_some()),
                        ("fromGroups", r.from_groups.is_some()),
                        ("fromNodes", r.from_nodes.is_some()),
                        ("icmps", r.icmps.is_some()),
                        ("authentication", r.authentication.is_some()),
                    ],
                },
            ));
        }
        for (i, r) in self.ingress_deny.iter().flatten().enumerate() {
            out.push((
                Section::IngressDeny,
                i,
                PeerRule {
                    section: Section::IngressDeny,
                    endpoints: r.from_endpoints.as_deref(),
                    cidr: r.from_cidr.as_deref(),
                    cidr_set: r.from_cidr_set.as_deref(),
                    entities: r.from_entities.as_deref(),
                    services: None,
                    fqdns: None,
                    ports: r.to_ports.as_deref().map(PortsView::Deny),
                    unmodelled: [
                        ("fromRequires", r.from_requires.is_some()),
                        ("fromGroups", r.from_groups.is_some()),
                        ("fromNodes", r.from_nodes.is_some()),
                        ("icmps", r.icmps.is_some()),
                        ("", false),
                    ],
                },
            ));
        }
        for (i, r) in self.egress.iter().flatten().enumerate() {
            out.push((
                Section::Egress,
                i,
                PeerRule {
                    section: Section::Egress,
                    endpoints: r.to_endpoints.as_deref(),
                    cidr: r.to_cidr.as_deref(),
                    cidr_set: r.to_cidr_set.as_deref(),
                    entities: r.to_entities.as_deref(),
                    services: r.to_services.as_deref(),
                    fqdns: r.to_fqdns.as_deref(),
                    ports: r.to_ports.as_deref().map(PortsView::Allow),
                    unmodelled: [
                        ("toRequires", r.to_requires.is_some()),
                        ("toGroups", r.to_groups.is_some()),
                        ("toNodes", r.to_nodes.is_some()),
                        ("icmps", r.icmps.is_some()),
                        ("authentication", r.authentication.is_some()),
                    ],
                },
            ));
        }
        for (i, r) in self.egress_deny.iter().flatten().enumerate() {
            out.push((
                Section::EgressDeny,
                i,
                PeerRule {
                    section: Section::EgressDeny,
                    endpoints: r.to_endpoints.as_deref(),
                    cidr: r.to_cidr.as_deref(),
                    cidr_set: r.to_cidr_set.as_deref(),
                    entities: r.to_entities.as_deref(),
                    services: r.to_services.as_deref(),
                    fqdns: None,
                    ports: r.to_ports.as_deref().map(PortsView::Deny),
                    unmodelled: [
                        ("toRequires", r.to_requires.is_some()),
                        ("toGroups", r.to_groups.is_some()),
                        ("toNodes", r.to_nodes.is_some()),
                        ("icmps", r.icmps.is_some()),
                        ("", false),
                    ],
                },
            ));
        }
        out
    }

    /// Cilium's `Sanitize` defaulting of `enableDefaultDeny` for one direction
    /// (`pkg/policy/api/rule_validation.go:47-58`): unset means "on when the rule has entries in
    /// that direction".
    pub fn default_deny(&self, direction: Direction) -> bool {
        let cfg = self.enable_default_deny.unwrap_or_default();
        let (set, has) = match direction {
            Direction::Ingress => (
                cfg.ingress,
                self.ingress.as_ref().is_some_and(|v| !v.is_empty())
                    || self.ingress_deny.as_ref().is_some_and(|v| !v.is_empty()),
            ),
            Direction::Egress => (
                cfg.egress,
                self.egress.as_ref().is_some_and(|v| !v.is_empty())
                    || self.egress_deny.as_ref().is_some_and(|v| !v.is_empty()),
            ),
        };
        set.unwrap_or(has)
    }
}
