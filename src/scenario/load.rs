//! Loading scenario files: strict parsing, semantic checks, and pins cross-checked against the
//! oracle. Every problem is reported (not just the first) with file:line:column and field path.

use super::definition::{CellPin, Expect, Matrix, Scenario, Step};
use super::document::{is_slug, parse_doc, LoadError};
use super::format::{
    ExpectDefault, Mode, NamespaceDoc, PinVerdict, PodDoc, PortRef, ProbeDoc, ScenarioDoc, ServeDoc,
};
use super::plan::{walk, PinConflict};
use super::policies::{resolve_cilium_policy, resolve_policy, to_network_policy};
use super::profile::{check_external, CONFIG_FILE_NAME};
use super::source::{Location, SourceMap};
use netassay_core::model::{
    glob_match, standard_serve, External, Labels, Namespace, Pod, PodRef, PolicyRef, Protocol,
    ServedPort, Topology, EXTERNAL_NAMESPACE, HTTP_PORT_NAME, NAMESPACE_NAME_LABEL,
    OUTSIDE_NAMESPACE,
};
use netassay_core::policy::cilium::{
    validate_cilium_policy, CiliumKind, CiliumPolicy, CiliumPolicyRef, CILIUM_API_VERSION,
};
use netassay_core::policy::oracle::policy_ref;
use netassay_core::policy::validate::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    is_valid_port_name, validate_labels, validate_network_policy,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

struct Ctx<'a> {
    file: &'a str,
    source: &'a SourceMap,
    errors: Vec<LoadError>,
}

impl Ctx<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.errors.push(LoadError {
            file: self.file.to_string(),
            location: self.source.locate(&path),
            path,
            message: message.into(),
        });
    }
}

fn join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}.{rel}")
    }
}

/// Loads one scenario from text. `file` names it in errors.
pub fn load_str(file: &str, text: &str) -> Result<Scenario, Vec<LoadError>> {
    let (doc, source): (ScenarioDoc, SourceMap) = parse_doc(file, text)?;
    let mut ctx = Ctx {
        file,
        source: &source,
        errors: Vec::new(),
    };
    let scenario = check(&mut ctx, doc);
    match scenario {
        Some(s) if ctx.errors.is_empty() => Ok(s),
        _ => Err(ctx.errors),
    }
}

/// serde-saphyr's message without its own position and source snippet (we print ours).
fn check(ctx: &mut Ctx, doc: ScenarioDoc) -> Option<Scenario> {
    if !is_slug(&doc.name) {
        ctx.error("name", format!("{:?} must be 1-63 characters of [a-z0-9-], starting and ending with a letter or digit", doc.name));
    }
    for (i, t) in doc.tags.iter().enumerate() {
        if !is_slug(t) {
            ctx.error(format!("tags[{i}]"), format!("{t:?} must be [a-z0-9-]"));
        }
    }
    let topology = match &doc.topology {
        None => Topology::standard(),
        Some(t) => build_topology(ctx, t)?,
    };
    if doc.steps.is_empty() {
        ctx.error("steps", "a scenario needs at least one step");
    }
    let base = matrix(
        ctx,
        "probe",
        doc.probe.as_ref(),
        &Matrix::default(),
        &topology,
    );
    let mut steps = Vec::new();
    let mut names = BTreeSet::new();
    // Tracks what exists so deletes and labels can be checked; labels affect later steps' pins.
    let mut active: BTreeSet<PolicyRef> = BTreeSet::new();
    let mut active_cilium: BTreeSet<CiliumPolicyRef> = BTreeSet::new();
    for (i, s) in doc.steps.iter().enumerate() {
        let p = format!("steps[{i}]");
        if s.name.trim().is_empty() {
            ctx.error(format!("{p}.name"), "a step needs a name");
        } else if !names.insert(s.name.clone()) {
            ctx.error(
                format!("{p}.name"),
                format!("duplicate step name {:?}", s.name),
            );
        }
        let mut delete = Vec::new();
        let mut delete_cilium = Vec::new();
        for (j, d) in s.delete.iter().enumerate() {
            if let Some(name) = d.strip_prefix("CiliumClusterwideNetworkPolicy/") {
                let r = CiliumPolicyRef {
                    kind: CiliumKind::CiliumClusterwideNetworkPolicy,
                    namespace: String::new(),
                    name: name.to_string(),
                };
                if !active_cilium.remove(&r) {
                    ctx.error(
                        format!("{p}.delete[{j}]"),
                        format!("no policy {r} exists at this step"),
                    );
                }
                delete_cilium.push(r);
                continue;
            }
            match d.parse::<PodRef>() {
                Ok(r) => {
                    let r = PolicyRef {
                        namespace: r.namespace,
                        name: r.name,
                    };
                    let cnp = CiliumPolicyRef {
                        kind: CiliumKind::CiliumNetworkPolicy,
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                    };
                    if active_cilium.remove(&cnp) {
                        delete_cilium.push(cnp);
                        continue;
                    }
                    if !active.remove(&r) {
                        ctx.error(
                            format!("{p}.delete[{j}]"),
                            format!("no policy {r} exists at this step"),
                        );
                    }
                    delete.push(r);
                }
                Err(e) => ctx.error(format!("{p}.delete[{j}]"), e),
            }
        }
        let mut apply = Vec::new();
        let mut apply_cilium = Vec::new();
        let mut applied_here = BTreeSet::new();
        let mut entries: Vec<(String, Option<u64>, serde_json::Value)> = Vec::new();
        for (j, pd) in s.apply.iter().enumerate() {
            let pp = format!("{p}.apply[{j}]");
            match repeated(ctx, &pp, &pd.0) {
                Repeated::No => entries.push((pp, None, pd.0.clone())),
                Repeated::Copies(copies) => entries.extend(
                    copies
                        .into_iter()
                        .map(|(i, v)| (format!("{pp}.policy"), Some(i), v)),
                ),
                Repeated::Invalid => {}
            }
        }
        // A template is reported once, at its first copy that fails, not once per copy.
        let mut failed_templates = BTreeSet::new();
        for (pp, copy, value) in &entries {
            if failed_templates.contains(pp) {
                continue;
            }
            let errors_before = ctx.errors.len();
            let parsed = entry(ctx, pp, value, &topology, true);
            if let Some(i) = copy {
                if ctx.errors.len() > errors_before {
                    failed_templates.insert(pp.clone());
                    for e in &mut ctx.errors[errors_before..] {
                        e.message = format!("copy i={i}: {}", e.message);
                    }
                }
            }
            let pp = pp.as_str();
            match parsed {
                Some(Entry::Kubernetes(np)) => {
                    let r = policy_ref(&np);
                    let clash = CiliumPolicyRef {
                        kind: CiliumKind::CiliumNetworkPolicy,
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                    };
                    if !applied_here.insert(r.to_string()) || active_cilium.contains(&clash) {
                        ctx.error(
                            format!("{pp}.metadata.name"),
                            format!("policy {r} is applied twice in this step, or exists as a CiliumNetworkPolicy{}",
                                copy.map(|i| format!(" (copy i={i}: give each copy its own name, e.g. p-{{i}})")).unwrap_or_default()),
                        );
                        if copy.is_some() {
                            failed_templates.insert(pp.to_string());
                        }
                    }
                    active.insert(r);
                    apply.push(np);
                }
                Some(Entry::Cilium(cp)) => {
                    let r = cp.policy_ref();
                    let key = if r.kind.is_clusterwide() {
                        format!("CiliumClusterwideNetworkPolicy/{}", r.name)
                    } else {
                        format!("{}/{}", r.namespace, r.name)
                    };
                    let clash = PolicyRef {
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                    };
                    if !applied_here.insert(key)
                        || (!r.kind.is_clusterwide() && active.contains(&clash))
                    {
                        ctx.error(
                            format!("{pp}.metadata.name"),
                            format!("policy {r} is applied twice in this step, or exists as a NetworkPolicy (delete names ns/name, so the two kinds may not share one)"),
                        );
                    }
                    active_cilium.insert(r);
                    apply_cilium.push(cp);
                }
                None => {}
            }
        }
        let mut label_pods = Vec::new();
        let mut label_namespaces = Vec::new();
        if let Some(l) = &s.label {
            for (k, edit) in &l.pods {
                let lp = format!("{p}.label.pods.{k}");
                match k.parse::<PodRef>() {
                    Ok(r) if topology.pod(&r).is_some() => {
                        label_edit(ctx, &lp, edit, false);
                        label_pods.push((r, edit.clone()));
                    }
                    Ok(r) => ctx.error(lp, format!("pod {r} is not in the topology")),
                    Err(e) => ctx.error(lp, e),
                }
            }
            for (k, edit) in &l.namespaces {
                let lp = format!("{p}.label.namespaces.{k}");
                if topology.namespace(k).is_some() {
                    label_edit(ctx, &lp, edit, true);
                    label_namespaces.push((k.clone(), edit.clone()));
                } else {
                    ctx.error(lp, format!("namespace {k} is not in the topology"));
                }
            }
        }
        let mut reject = Vec::new();
        let mut reject_cilium = Vec::new();
        for (j, pd) in s.reject.iter().enumerate() {
            let pp = format!("{p}.reject[{j}]");
            match entry(ctx, &pp, &pd.0, &topology, false) {
                Some(Entry::Kubernetes(np)) => reject.push(np),
                Some(Entry::Cilium(cp)) => reject_cilium.push(cp),
                None => {}
            }
        }
        let step_matrix = matrix(
            ctx,
            &format!("{p}.probe"),
            s.probe.as_ref(),
            &base,
            &topology,
        );
        let expect = s.expect.as_ref().map(|e| {
            let cells = e
                .cells
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    let cp = format!("{p}.expect.cells[{k}]");
                    check_glob(ctx, &format!("{cp}.from"), &c.from, &topology);
                    check_glob(ctx, &format!("{cp}.to"), &c.to, &topology);
                    if c.verdict == PinVerdict::Profile && !c.to.starts_with("external/") {
                        ctx.error(
                            format!("{cp}.verdict"),
                            "`profile` decides only paths to external endpoints: `to` must be \
                             an external/... pattern",
                        );
                    }
                    if let Some(port) = &c.port {
                        check_port(ctx, &format!("{cp}.port"), port);
                    }
                    CellPin {
                        from: c.from.clone(),
                        to: c.to.clone(),
                        port: c.port.clone(),
                        protocol: c.protocol,
                        via: c.via,
                        verdict: c.verdict,
                    }
                })
                .collect();
            Expect {
                default: e.default,
                cells,
            }
        });
        if doc.mode == Mode::Intent {
            match &expect {
                None => ctx.error(
                    format!("{p}.expect"),
                    "intent mode: every step needs `expect` with a default and cells",
                ),
                Some(e) if e.default == ExpectDefault::Oracle => ctx.error(
                    format!("{p}.expect.default"),
                    "intent mode has no oracle: the default must be allow or deny",
                ),
                _ => {}
            }
        }
        steps.push(Step {
            name: s.name.clone(),
            delete,
            apply,
            label_pods,
            label_namespaces,
            reject,
            delete_cilium,
            apply_cilium,
            reject_cilium,
            matrix: step_matrix,
            expect,
            inventory: s.inventory,
        });
    }
    let scenario = Scenario {
        name: doc.name.clone(),
        description: doc
            .description
            .clone()
            .unwrap_or_default()
            .trim()
            .to_string(),
        tags: doc.tags.clone(),
        mode: doc.mode,
        file: ctx.file.to_string(),
        topology,
        steps,
        personas: doc
            .topology
            .iter()
            .flat_map(|t| &t.namespaces)
            .filter_map(|(n, d)| d.persona.clone().map(|p| (n.clone(), p)))
            .collect(),
        profile: None,
    };
    if scenario.mode == Mode::Oracle {
        for pod in scenario.topology.pods.iter().filter(|p| p.http.is_some()) {
            ctx.error(
                format!("topology.pods.{}.http", pod.id),
                "an HTTP port is for web apps behind the gateway in intent scenarios: set \
                 `mode: intent`, or serve the port with `serve`",
            );
        }
    }
    if !scenario.topology.externals.is_empty() {
        if scenario.mode == Mode::Intent {
            ctx.error(
                "topology.externals",
                "intent scenarios take their external endpoints from the profile config \
                 (`externals` there)",
            );
        } else if !scenario.uses_cilium() && ctx.errors.is_empty() {
            // (A Cilium policy that failed to load already has its error.)
            ctx.error(
                "topology.externals",
                "external endpoints in an oracle scenario are judged under Cilium's semantics \
                 only (toCIDR, toEntities world, toFQDNs and DNS rules): the scenario applies no \
                 CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy",
            );
        }
    }
    if scenario.mode == Mode::Oracle && scenario.needs_profile() {
        ctx.error(
            "mode",
            "personas, external endpoints, the outside vantage, gateway and node-port paths, \
             `profile` pins and inventories belong to intent scenarios: set `mode: intent`",
        );
    }
    if !ctx.errors.is_empty() {
        return None;
    }
    if !scenario.needs_profile() {
        // A scenario that needs a profile config is planned when it is bound to one.
        cross_check(ctx, &scenario);
    }
    Some(scenario)
}

/// Pins against the oracle, and matrices that probe nothing.
fn cross_check(ctx: &mut Ctx, scenario: &Scenario) {
    let plans = match walk(scenario, &scenario.topology) {
        Ok(p) => p,
        Err(e) => {
            ctx.error(e.path, e.message);
            return;
        }
    };
    for (i, plan) in plans.iter().enumerate() {
        if plan.cells.is_empty() {
            ctx.error(
                format!("steps[{i}].probe"),
                "the probe matrix is empty: no destination serves these ports and protocols",
            );
        }
        let mut by_pin: BTreeMap<Option<usize>, Vec<&PinConflict>> = BTreeMap::new();
        for c in &plan.conflicts {
            by_pin.entry(c.pin).or_default().push(c);
        }
        for (pin, conflicts) in by_pin {
            let path = match pin {
                Some(k) => format!("steps[{i}].expect.cells[{k}]"),
                None => format!("steps[{i}].expect.default"),
            };
            let shown: Vec<String> = conflicts
                .iter()
                .take(4)
                .map(|c| {
                    let why = plan.explain_summary(&c.cell).unwrap_or_default();
                    format!(
                        "{} -> {} {}/{} via {}: pinned {}, oracle says {} ({why})",
                        c.cell.from,
                        c.cell.to,
                        c.cell.port,
                        c.cell.protocol,
                        c.cell.via,
                        c.pinned,
                        c.oracle
                    )
                })
                .collect();
            let more = conflicts.len().saturating_sub(shown.len());
            let mut msg = format!(
                "pin disagrees with the oracle on {} cell(s): {}",
                conflicts.len(),
                shown.join("; ")
            );
            if more > 0 {
                msg.push_str(&format!("; and {more} more"));
            }
            ctx.error(path, msg);
        }
    }
}

fn label_edit(ctx: &mut Ctx, path: &str, edit: &BTreeMap<String, Option<String>>, namespace: bool) {
    for (k, v) in edit {
        for m in is_qualified_name(k) {
            ctx.error(
                format!("{path}.{k}"),
                format!("invalid label key {k:?}: {m}"),
            );
        }
        match v {
            Some(v) => {
                for m in is_valid_label_value(v) {
                    ctx.error(
                        format!("{path}.{k}"),
                        format!("invalid label value {v:?}: {m}"),
                    );
                }
            }
            None if namespace && k == NAMESPACE_NAME_LABEL => ctx.error(
                format!("{path}.{k}"),
                "the API server always sets kubernetes.io/metadata.name; it cannot be removed",
            ),
            None => {}
        }
        if namespace && k == NAMESPACE_NAME_LABEL && v.is_some() {
            ctx.error(
                format!("{path}.{k}"),
                "kubernetes.io/metadata.name is set by the API server and cannot be changed",
            );
        }
    }
}

/// What an `apply` entry is: a policy, or a `repeat` of one.
enum Repeated {
    No,
    /// The copies with their indexes.
    Copies(Vec<(u64, serde_json::Value)>),
    /// A `repeat` entry with an error (reported).
    Invalid,
}

/// Expands `{repeat: N, policy: TEMPLATE}` into its N copies; any other entry is a policy.
fn repeated(ctx: &mut Ctx, path: &str, value: &serde_json::Value) -> Repeated {
    if value.get("repeat").is_none() {
        return Repeated::No;
    }
    let Some(doc) = strict::<super::format::RepeatDoc>(ctx, path, value) else {
        return Repeated::Invalid;
    };
    if doc.repeat == 0 || doc.repeat > super::repeat::MAX_REPEAT {
        ctx.error(
            format!("{path}.repeat"),
            format!(
                "repeat {} is out of range: 1 to {}",
                doc.repeat,
                super::repeat::MAX_REPEAT
            ),
        );
        return Repeated::Invalid;
    }
    match super::repeat::Template::new(&doc.policy) {
        Ok(t) => Repeated::Copies((0..doc.repeat).map(|i| (i, t.instance(i))).collect()),
        Err(e) => {
            ctx.error(join(&format!("{path}.policy"), &e.path), e.message);
            Repeated::Invalid
        }
    }
}

/// A policy object of `apply` or `reject`, parsed by kind.
enum Entry {
    Kubernetes(k8s_openapi::api::networking::v1::NetworkPolicy),
    Cilium(CiliumPolicy),
}

/// Parses one `apply`/`reject` entry strictly by its `apiVersion`: `cilium.io/v2` is a Cilium
/// policy, anything else the NetworkPolicy mirror (which names a wrong apiVersion or kind).
fn entry(
    ctx: &mut Ctx,
    path: &str,
    value: &serde_json::Value,
    topology: &Topology,
    must_be_valid: bool,
) -> Option<Entry> {
    let cilium = value.get("apiVersion").and_then(|v| v.as_str()) == Some(CILIUM_API_VERSION);
    if !cilium {
        let doc: super::format::PolicyDoc = strict(ctx, path, value)?;
        return policy(ctx, path, &doc, topology, must_be_valid).map(Entry::Kubernetes);
    }
    let cp: CiliumPolicy = strict(ctx, path, value)?;
    if !cp.kind.is_clusterwide() {
        if let Some(ns) = cp.metadata.namespace.as_deref() {
            if topology.namespace(ns).is_none() {
                ctx.error(
                    format!("{path}.metadata.namespace"),
                    format!("namespace {ns:?} is not in the topology"),
                );
                return None;
            }
        }
    }
    let resolved = match resolve_cilium_policy(&cp, topology) {
        Ok(r) => r,
        Err((p, m)) => {
            ctx.error(join(path, &p), m);
            return None;
        }
    };
    let problems = validate_cilium_policy(&resolved);
    if must_be_valid {
        for e in &problems {
            ctx.error(join(path, &e.path), e.message.clone());
        }
        if !problems.is_empty() {
            return None;
        }
    } else if problems.is_empty() {
        ctx.error(
            path,
            "this policy is valid, so the API server and the Cilium agent would accept it; \
             `reject` lists policies they must refuse",
        );
        return None;
    }
    Some(Entry::Cilium(cp))
}

/// Deserializes a value strictly; an error names the field path under `path`.
fn strict<T: serde::de::DeserializeOwned>(
    ctx: &mut Ctx,
    path: &str,
    value: &serde_json::Value,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let rel = if inner == "." { String::new() } else { inner };
            ctx.error(join(path, &rel), e.inner().to_string());
            None
        }
    }
}

fn policy(
    ctx: &mut Ctx,
    path: &str,
    doc: &super::format::PolicyDoc,
    topology: &Topology,
    must_be_valid: bool,
) -> Option<k8s_openapi::api::networking::v1::NetworkPolicy> {
    let np = match to_network_policy(doc) {
        Ok(np) => np,
        Err(errs) => {
            for e in errs {
                ctx.error(join(path, &e.path), e.message);
            }
            return None;
        }
    };
    match np.metadata.namespace.as_deref() {
        None => {
            ctx.error(
                format!("{path}.metadata.namespace"),
                "Required value: a policy names its (logical) namespace",
            );
            return None;
        }
        Some(ns) if topology.namespace(ns).is_none() => {
            ctx.error(
                format!("{path}.metadata.namespace"),
                format!("namespace {ns:?} is not in the topology"),
            );
            return None;
        }
        Some(_) => {}
    }
    let resolved = match resolve_policy(&np, topology) {
        Ok(r) => r,
        Err((p, m)) => {
            ctx.error(join(path, &p), m);
            return None;
        }
    };
    let problems = validate_network_policy(&resolved);
    if must_be_valid {
        for e in &problems {
            ctx.error(join(path, &e.path), e.message.clone());
        }
        if !problems.is_empty() {
            return None;
        }
    } else if problems.is_empty() {
        ctx.error(
            path,
            "this policy is valid, so the API server would accept it; `reject` lists policies it must refuse",
        );
        return None;
    }
    Some(np)
}

fn check_glob(ctx: &mut Ctx, path: &str, glob: &str, topology: &Topology) {
    if glob.starts_with("outside/") {
        if glob != "outside/*" && glob != "outside/vantage" {
            ctx.error(
                path,
                format!("{glob:?}: the outside vantage is written outside/vantage"),
            );
        }
        return;
    }
    if let Some(name) = glob.strip_prefix("external/") {
        if !topology.externals.is_empty()
            && !topology.externals.iter().any(|e| glob_match(name, &e.name))
        {
            ctx.error(
                path,
                format!("{glob:?} matches no external endpoint of topology.externals"),
            );
        }
        // Otherwise they come from the profile config; checked when the scenario is bound.
        return;
    }
    if !topology
        .pods
        .iter()
        .any(|p| glob_match(glob, &p.id.to_string()))
    {
        ctx.error(path, format!("{glob:?} matches no pod of the topology"));
    }
}

fn check_port(ctx: &mut Ctx, path: &str, port: &PortRef) {
    match port {
        PortRef::Number(0) => ctx.error(path, "port 0 is not a valid port"),
        PortRef::Number(_) => {}
        PortRef::Name(n) => {
            for m in is_valid_port_name(n) {
                ctx.error(path, format!("invalid port name {n:?}: {m}"));
            }
        }
    }
}

fn matrix(
    ctx: &mut Ctx,
    path: &str,
    doc: Option<&ProbeDoc>,
    base: &Matrix,
    topology: &Topology,
) -> Matrix {
    let Some(doc) = doc else {
        return base.clone();
    };
    let m = Matrix {
        from: doc.from.clone().unwrap_or_else(|| base.from.clone()),
        to: doc.to.clone().unwrap_or_else(|| base.to.clone()),
        ports: doc.ports.clone().unwrap_or_else(|| base.ports.clone()),
        protocols: doc
            .protocols
            .clone()
            .unwrap_or_else(|| base.protocols.clone()),
        via: doc.via.clone().unwrap_or_else(|| base.via.clone()),
    };
    for (field, globs) in [("from", &doc.from), ("to", &doc.to)] {
        for (k, g) in globs.iter().flatten().enumerate() {
            check_glob(ctx, &format!("{path}.{field}[{k}]"), g, topology);
        }
        if globs.as_ref().is_some_and(|g| g.is_empty()) {
            ctx.error(format!("{path}.{field}"), "must not be empty");
        }
    }
    for (k, p) in doc.ports.iter().flatten().enumerate() {
        check_port(ctx, &format!("{path}.ports[{k}]"), p);
    }
    for (field, empty) in [
        ("ports", doc.ports.as_ref().is_some_and(Vec::is_empty)),
        (
            "protocols",
            doc.protocols.as_ref().is_some_and(Vec::is_empty),
        ),
        ("via", doc.via.as_ref().is_some_and(Vec::is_empty)),
    ] {
        if empty {
            ctx.error(format!("{path}.{field}"), "must not be empty");
        }
    }
    m
}

fn serve_list(ctx: &mut Ctx, path: &str, serve: &[ServeDoc]) -> Vec<ServedPort> {
    let mut seen = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (k, s) in serve.iter().enumerate() {
        let sp = format!("{path}[{k}]");
        if s.port == 0 {
            ctx.error(
                format!("{sp}.port"),
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            );
        }
        if !seen.insert((s.port, s.protocol)) {
            ctx.error(
                sp.clone(),
                format!("{}/{} is listed twice", s.port, s.protocol),
            );
        }
        if let Some(n) = &s.name {
            for m in is_valid_port_name(n) {
                ctx.error(
                    format!("{sp}.name"),
                    format!("invalid port name {n:?}: {m}"),
                );
            }
            if !names.insert(n.clone()) {
                ctx.error(
                    format!("{sp}.name"),
                    format!("port name {n:?} is used twice in one pod"),
                );
            }
        }
        out.push(ServedPort {
            port: s.port,
            protocol: s.protocol,
            name: s.name.clone(),
        });
    }
    out
}

fn build_topology(ctx: &mut Ctx, doc: &super::format::TopologyDoc) -> Option<Topology> {
    let default_serve = match &doc.serve {
        Some(s) => serve_list(ctx, "topology.serve", s),
        None => standard_serve(),
    };
    let (doc_namespaces, doc_pods) = match &doc.grid {
        None => (
            std::borrow::Cow::Borrowed(&doc.namespaces),
            std::borrow::Cow::Borrowed(&doc.pods),
        ),
        Some(g) => {
            let (ns, pods) = grid(ctx, g, doc)?;
            (std::borrow::Cow::Owned(ns), std::borrow::Cow::Owned(pods))
        }
    };
    let mut namespaces = Vec::new();
    for (name, ns) in doc_namespaces.iter() {
        let p = format!("topology.namespaces.{name}");
        for m in is_dns1123_label(name) {
            ctx.error(p.clone(), format!("invalid namespace name {name:?}: {m}"));
        }
        if name == EXTERNAL_NAMESPACE || name == OUTSIDE_NAMESPACE {
            ctx.error(
                p.clone(),
                format!("{name:?} is reserved (external/<name> and outside/vantage name endpoints outside the cluster); pick another logical name"),
            );
        }
        if let Some(persona) = &ns.persona {
            if !is_slug(persona) {
                ctx.error(
                    format!("{p}.persona"),
                    format!("persona {persona:?} must be [a-z0-9-]"),
                );
            }
        }
        for e in validate_labels(&ns.labels, &format!("{p}.labels")) {
            ctx.error(e.path.clone(), e.message.clone());
        }
        if ns.labels.contains_key(NAMESPACE_NAME_LABEL) {
            ctx.error(
                format!("{p}.labels.{NAMESPACE_NAME_LABEL}"),
                "is implied by the namespace name; remove it",
            );
        }
        namespaces.push(Namespace {
            name: name.clone(),
            labels: ns.labels.clone(),
        });
    }
    let mut pods = Vec::new();
    for (key, pod) in doc_pods.iter() {
        let p = format!("topology.pods.{key}");
        let id = match key.parse::<PodRef>() {
            Ok(id) => id,
            Err(e) => {
                ctx.error(p, e);
                continue;
            }
        };
        if !doc_namespaces.contains_key(&id.namespace) {
            ctx.error(
                p.clone(),
                format!(
                    "namespace {:?} is not declared in topology.namespaces",
                    id.namespace
                ),
            );
        }
        for m in is_dns1123_subdomain(&id.name) {
            ctx.error(p.clone(), format!("invalid pod name {:?}: {m}", id.name));
        }
        let PodDoc {
            labels,
            serve,
            http,
        } = pod;
        for e in validate_labels(labels, &format!("{p}.labels")) {
            ctx.error(e.path.clone(), e.message.clone());
        }
        let serve = match serve {
            Some(s) => serve_list(ctx, &format!("{p}.serve"), s),
            None => default_serve.clone(),
        };
        if serve.is_empty() {
            ctx.error(format!("{p}.serve"), "a pod must serve at least one port");
        }
        if let Some(h) = http {
            if *h == 0 {
                ctx.error(format!("{p}.http"), "port 0 is not a valid port");
            }
            if serve
                .iter()
                .any(|s| s.port == *h && s.protocol == Protocol::Tcp)
            {
                ctx.error(
                    format!("{p}.http"),
                    format!("TCP port {h} is already served with a greeting; pick another port for HTTP"),
                );
            }
            if serve
                .iter()
                .any(|s| s.name.as_deref() == Some(HTTP_PORT_NAME))
            {
                ctx.error(
                    format!("{p}.http"),
                    format!("the port name {HTTP_PORT_NAME:?} is taken by a served port"),
                );
            }
        }
        pods.push(Pod {
            id,
            labels: Labels::clone(labels),
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            serve,
            http: *http,
        });
    }
    if pods.is_empty() {
        ctx.error("topology.pods", "a topology needs at least one pod");
    }
    let mut externals = Vec::new();
    for (name, e) in &doc.externals {
        let path = format!("topology.externals.{name}");
        let mut errors = Vec::new();
        let ports = check_external(
            name,
            &path,
            Some(e.address),
            Some(&e.name),
            &e.ports,
            &mut |p, m| errors.push((p, m)),
        );
        for (p, m) in errors {
            ctx.error(p, m);
        }
        externals.push(External {
            name: name.clone(),
            address: Some(e.address),
            host: Some(e.name.clone()),
            ports,
        });
    }
    let mut t = Topology::new(namespaces, pods).with_externals(externals);
    t.assign_synthetic_ips();
    Some(t)
}

/// The most pods a grid may generate.
pub const MAX_GRID_PODS: u32 = 2_500;

/// A name with its index zero-padded to the width of the largest index (at least 2 digits).
fn grid_name(prefix: &str, i: u32, count: u32) -> String {
    let width = count.saturating_sub(1).to_string().len().max(2);
    format!("{prefix}-{i:0width$}")
}

/// `topology.grid`: namespaces `ns-NN`, each with pods `pod-NN` labelled `pod: pod-NN`, added
/// to the topology's own namespaces and pods.
#[allow(clippy::type_complexity)]
fn grid(
    ctx: &mut Ctx,
    g: &super::format::GridDoc,
    doc: &super::format::TopologyDoc,
) -> Option<(BTreeMap<String, NamespaceDoc>, BTreeMap<String, PodDoc>)> {
    let total = u64::from(g.namespaces) * u64::from(g.pods);
    if g.namespaces == 0 || g.pods == 0 || total > u64::from(MAX_GRID_PODS) {
        ctx.error(
            "topology.grid",
            format!(
                "{} namespaces x {} pods: each must be at least 1 and together at most {MAX_GRID_PODS} pods",
                g.namespaces, g.pods
            ),
        );
        return None;
    }
    let mut namespaces = doc.namespaces.clone();
    let mut pods = doc.pods.clone();
    for n in 0..g.namespaces {
        let ns = grid_name("ns", n, g.namespaces);
        if namespaces
            .insert(ns.clone(), NamespaceDoc::default())
            .is_some()
        {
            ctx.error(
                format!("topology.namespaces.{ns}"),
                format!("namespace {ns:?} is also generated by topology.grid; rename it"),
            );
        }
        for k in 0..g.pods {
            let pod = grid_name("pod", k, g.pods);
            let doc = PodDoc {
                labels: BTreeMap::from([("pod".to_string(), pod.clone())]),
                ..PodDoc::default()
            };
            let key = format!("{ns}/{pod}");
            if pods.insert(key.clone(), doc).is_some() {
                ctx.error(
                    format!("topology.pods.{key}"),
                    format!("pod {key:?} is also generated by topology.grid; rename it"),
                );
            }
        }
    }
    Some((namespaces, pods))
}

/// Loads files and directories (recursively, `*.yaml` / `*.yml`, sorted). All problems of all
/// files are returned together; scenario names must be unique across everything loaded.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<LoadError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut errors);
    }
    let mut texts = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(t) => texts.push((f.display().to_string(), t)),
            Err(e) => errors.push(LoadError {
                file: f.display().to_string(),
                location: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    let (scenarios, more) = load_texts(texts.iter().map(|(f, t)| (f.as_str(), t.as_str())));
    errors.extend(more);
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// Loads (file, text) pairs; returns what loaded and every error, including duplicate names.
pub fn load_texts<'a>(
    items: impl Iterator<Item = (&'a str, &'a str)>,
) -> (Vec<Scenario>, Vec<LoadError>) {
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut errors = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in items {
        match load_str(file, text) {
            Ok(s) => {
                if let Some(first) = names.get(&s.name) {
                    errors.push(LoadError {
                        file: file.to_string(),
                        location: Some(Location { line: 1, column: 1 }),
                        path: "name".into(),
                        message: format!("scenario name {:?} is also used by {first}", s.name),
                    });
                } else {
                    names.insert(s.name.clone(), file.to_string());
                    scenarios.push(s);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    (scenarios, errors)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let err = |e: std::io::Error| LoadError {
        file: path.display().to_string(),
        location: None,
        path: String::new(),
        message: format!("cannot read: {e}"),
    };
    match std::fs::metadata(path) {
        Err(e) => errors.push(err(e)),
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Err(e) => errors.push(err(e)),
            Ok(rd) => {
                let mut entries: Vec<PathBuf> =
                    rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                entries.sort();
                for e in entries {
                    let is_yaml = e.extension().is_some_and(|x| x == "yaml" || x == "yml");
                    // A profile's config lives beside its scenarios but is not one.
                    let is_config = e.file_name().is_some_and(|n| n == CONFIG_FILE_NAME);
                    if e.is_dir() || (is_yaml && !is_config) {
                        collect(&e, files, errors);
                    }
                }
            }
        },
        Ok(_) => files.push(path.to_path_buf()),
    }
}
