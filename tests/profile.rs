//! Intent profiles offline: the profile config file (strict, with file:line and field paths),
//! binding scenarios to it (persona labels, external endpoints), and the cells and
//! expectations that result. No cluster.

use netassay::scenario::{builtin, load_str, Profile};
use netassay_core::model::{PodRef, Protocol, Verdict, Via};
use std::sync::Arc;

const CONFIG: &str = r#"
personas:
  project:
    namespaceLabels: {k8tre.io/resource-type: project-namespace}
  infrastructure:
    namespaceLabels: {k8tre.io/resource-type: infrastructure}
externals:
  internet:
    address: 203.0.113.10
    name: internet.example.org
    ports: [{port: 80}, {port: 443}]
  mirror:
    address: 203.0.113.20
    name: mirror.example.org
    ports: [{port: 443}, {port: 80}]
    allow:
      - {personas: [project], ports: [443]}
  blocked-name:
    name: blocked.example.org
    resolves: false
gateway:
  address: 203.0.113.1
  hostSuffix: apps.example
  route: Ingress
  ingressClassName: nginx
exposures:
  allowed:
    - {kind: load-balancer, namespace: gw, name: gw}
"#;

const OUTBOUND: &str = r#"
name: outbound
mode: intent
topology:
  namespaces:
    p: {persona: project}
    i: {persona: infrastructure, labels: {team: ops}}
  pods:
    p/a: {}
    i/b: {}
  serve: [{port: 8080, protocol: TCP}]
probe:
  from: ["*/*"]
  to: ["external/*"]
  ports: [80, 443]
  protocols: [TCP]
  via: [address, name, lookup]
steps:
  - name: s
    expect:
      default: deny
      cells:
        - {from: "*/*", to: "external/*", verdict: profile}
"#;

fn profile() -> Arc<Profile> {
    Arc::new(Profile::parse("cfg.yaml", CONFIG).expect("config parses"))
}

fn verdict_of(
    plans: &[netassay::scenario::StepPlan],
    from: &str,
    to: &str,
    port: u16,
    via: Via,
) -> Option<Verdict> {
    let from: PodRef = from.parse().expect("from");
    let to: PodRef = to.parse().expect("to");
    plans[0]
        .cells
        .iter()
        .find(|c| {
            c.cell.from == from && c.cell.to == to && c.cell.port == port && c.cell.via == via
        })
        .map(|c| c.verdict)
}

// Rule (profile config): an endpoint is reachable only from personas its `allow` names, and
// only on the listed ports; a lookup must succeed exactly when `resolves` says so.
#[test]
fn external_cells_take_their_verdict_from_the_profile_allow_list() {
    let s = load_str("outbound.yaml", OUTBOUND).expect("loads");
    assert!(s.needs_profile());
    let b = s.bind(&profile()).expect("binds");
    let plans = b.plan().expect("plans");
    let cases = [
        ("p/a", "external/mirror", 443, Via::Address, Verdict::Allow),
        ("p/a", "external/mirror", 443, Via::Name, Verdict::Allow),
        ("p/a", "external/mirror", 80, Via::Address, Verdict::Deny),
        ("i/b", "external/mirror", 443, Via::Address, Verdict::Deny),
        ("p/a", "external/internet", 443, Via::Address, Verdict::Deny),
        ("p/a", "external/internet", 53, Via::Lookup, Verdict::Allow),
        (
            "i/b",
            "external/blocked-name",
            53,
            Via::Lookup,
            Verdict::Deny,
        ),
    ];
    for (from, to, port, via, want) in cases {
        assert_eq!(
            verdict_of(&plans, from, to, port, via),
            Some(want),
            "{from} -> {to} {port} via {via}"
        );
    }
    // No address: no address or name cells on port 80, only the lookup.
    assert_eq!(
        verdict_of(&plans, "p/a", "external/blocked-name", 80, Via::Address),
        None
    );
    // 2 sources x (internet 2 ports x 2 vias + mirror 2 x 2) + 2 x 3 lookups.
    assert_eq!(plans[0].cells.len(), 2 * 8 + 2 * 3);
}

#[test]
fn persona_labels_are_merged_and_a_conflicting_label_is_an_error() {
    let s = load_str("outbound.yaml", OUTBOUND).expect("loads");
    let b = s.bind(&profile()).expect("binds");
    let i = b.topology.namespace("i").expect("i");
    assert_eq!(
        i.labels.get("k8tre.io/resource-type").map(String::as_str),
        Some("infrastructure")
    );
    assert_eq!(i.labels.get("team").map(String::as_str), Some("ops"));

    let clash = OUTBOUND.replace("{team: ops}", "{k8tre.io/resource-type: other}");
    let e = load_str("clash.yaml", &clash)
        .expect("loads")
        .bind(&profile())
        .expect_err("conflict");
    assert_eq!(
        e[0].path,
        "topology.namespaces.i.labels.k8tre.io/resource-type"
    );
}

#[test]
fn unknown_personas_and_external_names_name_the_field() {
    let bad = OUTBOUND
        .replace("{persona: project}", "{persona: projcet}")
        .replace("[\"external/*\"]", "[external/mirorr]");
    let errors = load_str("bad.yaml", &bad)
        .expect("loads")
        .bind(&profile())
        .expect_err("fails");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"topology.namespaces.p.persona"),
        "{paths:?}"
    );
    assert!(paths.contains(&"steps[0].probe.to[0]"), "{paths:?}");
    assert!(errors.iter().all(|e| e.file == "bad.yaml"));
}

#[test]
fn profile_features_need_intent_mode_and_reserved_names_are_refused() {
    let oracle = OUTBOUND.replace("mode: intent", "mode: oracle");
    let e = load_str("o.yaml", &oracle).expect_err("oracle mode");
    assert!(e.iter().any(|e| e.path == "mode"), "{e:?}");

    let reserved = OUTBOUND
        .replace("    i: {persona", "    external: {persona")
        .replace("i/b", "external/b");
    let e = load_str("r.yaml", &reserved).expect_err("reserved");
    assert!(
        e.iter().any(|e| e.path == "topology.namespaces.external"),
        "{e:?}"
    );

    let pod_profile = OUTBOUND.replace(
        "to: \"external/*\", verdict: profile",
        "to: \"p/*\", verdict: profile",
    );
    let e = load_str("pp.yaml", &pod_profile).expect_err("profile pin on pods");
    assert!(
        e.iter()
            .any(|e| e.path == "steps[0].expect.cells[0].verdict"),
        "{e:?}"
    );
}

#[test]
fn gateway_paths_need_a_gateway_in_the_profile_config() {
    let no_gateway =
        CONFIG.split("gateway:").next().expect("head").to_string() + "exposures:\n  allowed: []\n";
    let profile = Arc::new(Profile::parse("nogw.yaml", &no_gateway).expect("parses"));
    let web = r#"
name: web
mode: intent
topology:
  namespaces:
    p: {persona: project}
  pods:
    p/web: {http: 80}
  serve: [{port: 81, protocol: TCP}]
probe: {from: [outside/vantage], to: [p/web], ports: [80], protocols: [TCP], via: [pod-ip, gateway]}
steps:
  - name: s
    expect: {default: deny}
"#;
    let e = load_str("web.yaml", web)
        .expect("loads")
        .bind(&profile)
        .expect_err("no gateway");
    assert_eq!(e[0].path, "steps[0].probe.via[1]");
    assert!(e[0].message.contains("no `gateway`"), "{e:?}");
}

#[test]
fn bad_profile_configs_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "personas:\n  project:\n    namespaceLables: {a: b}\n",
            "personas.project",
        ),
        (
            "personas:\n  project:\n    namespaceLabels: {}\n",
            "personas.project.namespaceLabels",
        ),
        (
            "externals:\n  x:\n    ports: [{port: 80}]\n",
            "externals.x",
        ),
        (
            "externals:\n  x:\n    address: 192.0.2.1\n    ports: [{port: 53, protocol: UDP}]\n",
            "externals.x.ports[0].protocol",
        ),
        (
            "externals:\n  x:\n    address: 192.0.2.1\n    ports: [{port: 443}]\n    allow: [{personas: [nobody]}]\n",
            "externals.x.allow[0].personas[0]",
        ),
        (
            "externals:\n  x:\n    address: 192.0.2.1\n    ports: [{port: 443}]\n    allow: [{personas: [], ports: [80]}]\n",
            "externals.x.allow[0].ports[0]",
        ),
        (
            "gateway:\n  address: 192.0.2.1\n  hostSuffix: a.example\n  route: HTTPRoute\n",
            "gateway.parentRef",
        ),
        (
            "exposures:\n  allowed:\n    - {kind: nodeport, namespace: a, name: b}\n",
            "exposures.allowed[0].kind",
        ),
    ];
    for (text, path) in cases {
        let e = Profile::parse("cfg.yaml", text).expect_err(text);
        assert!(
            e.iter()
                .any(|e| e.path.starts_with(path) && e.file == "cfg.yaml"),
            "{text}: wanted {path}, got {e:?}"
        );
        assert!(e.iter().all(|e| e.location.is_some()), "{text}: {e:?}");
    }
}

#[test]
fn the_builtin_k8tre_scenarios_bind_to_the_builtin_config_and_plan() {
    let config = Arc::new(builtin::profile_config("k8tre").expect("built-in config"));
    let scenarios = builtin::select(&["k8tre".to_string()]).expect("loads");
    let k8tre: Vec<_> = scenarios.iter().filter(|s| s.has_tag("k8tre")).collect();
    assert!(k8tre.len() >= 5, "{}", k8tre.len());
    // The k8tre profile includes core: the CNI statement.
    assert!(scenarios.iter().any(|s| s.has_tag("core")));
    for s in k8tre {
        let b = s
            .bind(&config)
            .unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
        for (p, step) in b.plan().expect("plans").iter().zip(&b.steps) {
            assert!(
                !p.cells.is_empty() || step.inventory,
                "{} / {} probes nothing",
                b.name,
                step.name
            );
        }
    }
}

#[test]
fn the_gateway_scenario_probes_from_outside_by_gateway_pod_ip_service_ip_and_node_port() {
    let config = Arc::new(builtin::profile_config("k8tre").expect("built-in config"));
    let s = builtin::all()
        .expect("loads")
        .into_iter()
        .find(|s| s.name == "k8tre-external-access-via-gateway")
        .expect("scenario");
    let plans = s.bind(&config).expect("binds").plan().expect("plans");
    let mut vias: Vec<(Via, Verdict)> = plans[0]
        .cells
        .iter()
        .map(|c| {
            assert!(c.cell.from.is_outside());
            assert_eq!(c.cell.protocol, Protocol::Tcp);
            (c.cell.via, c.verdict)
        })
        .collect();
    vias.sort_by_key(|(v, _)| *v);
    assert_eq!(
        vias,
        [
            (Via::PodIp, Verdict::Deny),
            (Via::ServiceIp, Verdict::Deny),
            (Via::Gateway, Verdict::Allow),
            (Via::NodePort, Verdict::Deny),
        ]
    );
    assert!(s.steps[0].inventory);
}
