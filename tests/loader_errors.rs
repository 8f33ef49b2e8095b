//! Malformed scenario files: each must be rejected with a message that names the file, the field
//! path and (where the YAML has it) the line.

use netassay::scenario::load_str;

const FILE: &str = "bad/scenario.yaml";

/// One external endpoint of a scenario's own topology (flow style, inside `externals: {...}`).
const EXTERNAL: &str = "m: {address: 203.0.113.20, name: mirror.example.org, ports: [{port: 443}]}";

/// A valid scenario with one step; cases edit it.
const GOOD: &str = r#"name: good
description: a valid scenario
tags: [extended]
steps:
  - name: deny
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny, namespace: x}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
    probe: {ports: [80], protocols: [TCP]}
    expect:
      default: allow
      cells:
        - {from: "*/*", to: "x/*", verdict: deny}
"#;

/// Replaces `from` in GOOD (exactly once) with `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        GOOD.matches(from).count(),
        1,
        "edit anchor {from:?} must be unique"
    );
    GOOD.replace(from, to)
}

fn policy_with_spec(spec: &str) -> String {
    edit(
        "          podSelector: {}\n          policyTypes: [Ingress]\n",
        spec,
    )
}

struct Case {
    what: &'static str,
    text: String,
    /// The field path the error must name.
    path: &'static str,
    /// Text the message must contain.
    needle: &'static str,
}

fn cases() -> Vec<Case> {
    let c = |what, text: String, path, needle| Case {
        what,
        text,
        path,
        needle,
    };
    vec![
        c("unknown top-level field", edit("tags: [extended]\n", "tags: [extended]\ntopolgy: {}\n"), "topolgy", "unknown field"),
        c("unknown step field", edit("    probe: {ports", "    probes: {}\n    probe: {ports"), "steps[0].probes", "unknown field"),
        c("misspelt podSelector is not silently allow-all", policy_with_spec("          podSelecter: {}\n          policyTypes: [Ingress]\n"), "steps[0].apply[0].spec.podSelecter", "unknown field"),
        c("unknown field in a peer", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{podSelector: {}, namespace: {}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0].namespace", "unknown field"),
        c("missing name", GOOD.replacen("name: good\n", "", 1), "", "name"),
        c("bad scenario name", edit("name: good", "name: Good_One"), "name", "[a-z0-9-]"),
        c("bad tag", edit("tags: [extended]", "tags: [Extended!]"), "tags[0]", "[a-z0-9-]"),
        c("no steps", GOOD.split("steps:").next().unwrap_or_default().to_string() + "steps: []\n", "steps", "at least one step"),
        c("wrong type for steps", GOOD.split("steps:").next().unwrap_or_default().to_string() + "steps: 3\n", "steps", ""),
        c("duplicate step names", edit("    probe: {ports: [80], protocols: [TCP]}\n    expect:\n      default: allow\n      cells:\n        - {from: \"*/*\", to: \"x/*\", verdict: deny}\n",
            "    probe: {ports: [80], protocols: [TCP]}\n    expect: {default: oracle}\n  - name: deny\n    probe: {ports: [80], protocols: [TCP]}\n"), "steps[1].name", "duplicate step name"),
        c("unknown protocol in the matrix", edit("protocols: [TCP]", "protocols: [ICMP]"), "steps[0].probe.protocols[0]", ""),
        c("port 0 in the matrix", edit("ports: [80]", "ports: [0]"), "steps[0].probe.ports[0]", "not a valid port"),
        c("empty protocol list", edit("protocols: [TCP]", "protocols: []"), "steps[0].probe.protocols", "must not be empty"),
        c("glob that matches no pod", edit("probe: {ports: [80]", "probe: {from: [\"q/*\"], ports: [80]"), "steps[0].probe.from[0]", "matches no pod"),
        c("unknown via", edit("protocols: [TCP]}", "protocols: [TCP], via: [node-ip]}"), "steps[0].probe.via[0]", ""),
        c("policy namespace outside the topology", edit("namespace: x}", "namespace: q}"), "steps[0].apply[0].metadata.namespace", "not in the topology"),
        c("policy without namespace", edit("{name: deny, namespace: x}", "{name: deny}"), "steps[0].apply[0].metadata.namespace", "Required"),
        c("wrong apiVersion", edit("apiVersion: networking.k8s.io/v1", "apiVersion: networking.k8s.io/v1beta1"), "steps[0].apply[0].apiVersion", "Unsupported value"),
        c("wrong kind", edit("kind: NetworkPolicy", "kind: CiliumNetworkPolicy"), "steps[0].apply[0].kind", "Unsupported value"),
        c("invalid policy name", edit("{name: deny, namespace: x}", "{name: Deny_All, namespace: x}"), "steps[0].apply[0].metadata.name", ""),
        c("port out of range", policy_with_spec("          podSelector: {}\n          ingress: [{ports: [{port: 70000}]}]\n"), "steps[0].apply[0].spec.ingress[0].ports[0].port", "65535"),
        c("endPort below port", policy_with_spec("          podSelector: {}\n          ingress: [{ports: [{port: 81, endPort: 80}]}]\n"), "steps[0].apply[0].spec.ingress[0].ports[0].endPort", ""),
        c("endPort with a named port", policy_with_spec("          podSelector: {}\n          ingress: [{ports: [{port: serve-80-tcp, endPort: 81}]}]\n"), "steps[0].apply[0].spec.ingress[0].ports[0].endPort", ""),
        c("invalid port name", policy_with_spec("          podSelector: {}\n          ingress: [{ports: [{port: Serve_80}]}]\n"), "steps[0].apply[0].spec.ingress[0].ports[0].port", ""),
        c("unsupported protocol in a rule", policy_with_spec("          podSelector: {}\n          egress: [{ports: [{protocol: ICMP}]}]\n"), "steps[0].apply[0].spec.egress[0].ports[0].protocol", "Unsupported value"),
        c("invalid CIDR", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0].ipBlock.cidr", ""),
        c("except outside its cidr", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
        c("ipBlock with a selector", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0]", ""),
        c("empty peer", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0]", ""),
        c("bad policyType", policy_with_spec("          podSelector: {}\n          policyTypes: [Inbound]\n"), "steps[0].apply[0].spec.policyTypes[0]", "Unsupported value"),
        c("In without values", policy_with_spec("          podSelector: {matchExpressions: [{key: pod, operator: In}]}\n          policyTypes: [Ingress]\n"), "steps[0].apply[0].spec.podSelector.matchExpressions[0].values", ""),
        c("Exists with values", policy_with_spec("          podSelector: {matchExpressions: [{key: pod, operator: Exists, values: [a]}]}\n          policyTypes: [Ingress]\n"), "steps[0].apply[0].spec.podSelector.matchExpressions[0].values", ""),
        c("unknown operator", policy_with_spec("          podSelector: {matchExpressions: [{key: pod, operator: Gt, values: [a]}]}\n          policyTypes: [Ingress]\n"), "steps[0].apply[0].spec.podSelector.matchExpressions[0].operator", ""),
        c("invalid label key in a selector", policy_with_spec("          podSelector: {matchLabels: {\"-pod\": a}}\n          policyTypes: [Ingress]\n"), "steps[0].apply[0].spec.podSelector.matchLabels", ""),
        c("placeholder naming a missing pod", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{ipBlock: {cidr: \"${cidr:q/a/24}\"}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0].ipBlock.cidr", "not in the topology"),
        c("unknown placeholder", policy_with_spec("          podSelector: {}\n          ingress: [{from: [{ipBlock: {cidr: \"${host:x/a}\"}}]}]\n"), "steps[0].apply[0].spec.ingress[0].from[0].ipBlock.cidr", "unknown placeholder"),
        c("delete of a policy that does not exist", edit("    apply:\n", "    delete: [x/nope]\n    apply:\n"), "steps[0].delete[0]", "no policy x/nope"),
        c("delete that is not ns/name", edit("    apply:\n", "    delete: [nope]\n    apply:\n"), "steps[0].delete[0]", "namespace/name"),
        c("label edit of an unknown pod", edit("    probe: {ports", "    label: {pods: {x/q: {a: b}}}\n    probe: {ports"), "steps[0].label.pods.x/q", "not in the topology"),
        c("invalid label value", edit("    probe: {ports", "    label: {pods: {x/a: {pod: \"not valid!\"}}}\n    probe: {ports"), "steps[0].label.pods.x/a.pod", "invalid label value"),
        c("removing the namespace name label", edit("    probe: {ports", "    label: {namespaces: {x: {kubernetes.io/metadata.name: null}}}\n    probe: {ports"), "steps[0].label.namespaces.x.kubernetes.io/metadata.name", "cannot be removed"),
        c("pin that disagrees with the oracle", edit("verdict: deny}", "verdict: allow}"), "steps[0].expect.cells[0]", "disagrees with the oracle"),
        c("default pin that disagrees with the oracle", edit("default: allow", "default: deny"), "steps[0].expect.default", "disagrees with the oracle"),
        c("pin glob matching no pod", edit("to: \"x/*\"", "to: \"w/*\""), "steps[0].expect.cells[0].to", "matches no pod"),
        c("bad verdict", edit("verdict: deny}", "verdict: maybe}"), "steps[0].expect.cells[0].verdict", ""),
        c("reject of a valid policy", edit("    probe: {ports", "    reject:\n      - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: ok, namespace: x}, spec: {podSelector: {}}}\n    probe: {ports"), "steps[0].reject[0]", "is valid"),
        c("intent mode without a concrete default", edit("tags: [extended]\n", "tags: [extended]\nmode: intent\n").replace("default: allow", "default: oracle"), "steps[0].expect.default", "intent mode"),
        c("topology pod in an undeclared namespace", edit("tags: [extended]\n", "tags: [extended]\ntopology:\n  namespaces: {x: {}}\n  pods: {x/a: {labels: {pod: a}}, q/a: {}}\n"), "topology.pods.q/a", "not declared"),
        c("topology port listed twice", edit("tags: [extended]\n", "tags: [extended]\ntopology:\n  namespaces: {x: {}}\n  pods: {x/a: {}}\n  serve: [{port: 80, protocol: TCP}, {port: 80, protocol: TCP}]\n"), "topology.serve[1]", "listed twice"),
        c("topology bad namespace name", edit("tags: [extended]\n", "tags: [extended]\ntopology:\n  namespaces: {X_1: {}}\n  pods: {X_1/a: {}}\n"), "topology.namespaces.X_1", "invalid namespace name"),
        c("YAML syntax error", edit("tags: [extended]", "tags: [extended"), "", "YAML syntax error"),
        c("topology externals without Cilium policies", edit("tags: [extended]\n", &format!("tags: [extended]\ntopology:\n  namespaces: {{x: {{}}}}\n  pods: {{x/a: {{}}}}\n  externals: {{{EXTERNAL}}}\n")), "topology.externals", "Cilium's semantics only"),
        c("topology externals in an intent scenario", edit("tags: [extended]\n", &format!("tags: [extended]\nmode: intent\ntopology:\n  namespaces: {{x: {{}}}}\n  pods: {{x/a: {{}}}}\n  externals: {{{EXTERNAL}}}\n")), "topology.externals", "profile config"),
        c("topology external with a UDP port", edit("tags: [extended]\n", "tags: [extended]\ntopology:\n  namespaces: {x: {}}\n  pods: {x/a: {}}\n  externals: {m: {address: 203.0.113.20, name: m.example.org, ports: [{port: 53, protocol: UDP}]}}\n"), "topology.externals.m.ports[0].protocol", "cannot be probed"),
        c("topology external with a bad name", edit("tags: [extended]\n", "tags: [extended]\ntopology:\n  namespaces: {x: {}}\n  pods: {x/a: {}}\n  externals: {m: {address: 203.0.113.20, name: \"not a name\", ports: [{port: 443}]}}\n"), "topology.externals.m.name", "invalid DNS name"),
        c("external glob matching no endpoint of the topology", edit("tags: [extended]\n", &format!("tags: [extended]\ntopology:\n  namespaces: {{x: {{}}}}\n  pods: {{x/a: {{}}}}\n  externals: {{{EXTERNAL}}}\n")).replace("probe: {ports", "probe: {to: [\"external/nope\"], ports"), "steps[0].probe.to[0]", "matches no external endpoint"),
    ]
}

#[test]
fn every_malformed_input_is_rejected_with_file_and_field() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 30, "at least 30 malformed inputs");
    for case in &all {
        match load_str(FILE, &case.text) {
            Ok(_) => failures.push(format!("{}: loaded, but must be rejected", case.what)),
            Err(errors) => {
                let hit = errors.iter().any(|e| {
                    let shown = e.to_string();
                    shown.starts_with(FILE)
                        && e.path == case.path
                        && shown.contains(case.needle)
                        && (case.path.is_empty() || e.location.is_some())
                });
                if !hit {
                    let got: Vec<String> =
                        errors.iter().map(|e| format!("[{}] {e}", e.path)).collect();
                    failures.push(format!(
                        "{}: want path {:?} containing {:?}, got:\n    {}",
                        case.what,
                        case.path,
                        case.needle,
                        got.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_unmodified_scenario_loads() {
    let s = load_str(FILE, GOOD).expect("GOOD must load");
    assert_eq!(s.name, "good");
    assert_eq!(s.steps.len(), 1);
}

#[test]
fn errors_point_at_the_line_of_the_field() {
    let text = policy_with_spec(
        "          podSelector: {}\n          ingress: [{ports: [{port: 70000}]}]\n",
    );
    let errors = load_str(FILE, &text).expect_err("invalid");
    let e = errors
        .iter()
        .find(|e| e.path.ends_with("ports[0].port"))
        .expect("an error on the port");
    let line = text
        .lines()
        .position(|l| l.contains("70000"))
        .map(|i| i + 1);
    assert_eq!(e.location.map(|l| l.line), line, "{e}");
}

#[test]
fn all_problems_of_a_file_are_reported_together() {
    let text = edit("name: good", "name: Bad_Name").replace("protocols: [TCP]", "protocols: []");
    let errors = load_str(FILE, &text).expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"name") && paths.contains(&"steps[0].probe.protocols"),
        "{paths:?}"
    );
}

/// Cilium kinds in `apply`: strict parsing and validation keep the field path and the line.
#[test]
fn cilium_policies_are_parsed_and_validated_with_field_paths() {
    let cnp = |spec: &str| {
        GOOD.replace(
            "      - apiVersion: networking.k8s.io/v1\n        kind: NetworkPolicy\n        metadata: {name: deny, namespace: x}\n        spec:\n          podSelector: {}\n          policyTypes: [Ingress]\n",
            &format!("      - apiVersion: cilium.io/v2\n        kind: CiliumNetworkPolicy\n        metadata: {{name: deny, namespace: x}}\n        spec:\n{spec}"),
        )
    };
    for (what, text, path, needle) in [
        ("misspelt fromEndpoints", cnp("          endpointSelector: {}\n          ingress: [{fromEndpoint: [{}]}]\n"), "steps[0].apply[0].spec.ingress[0].fromEndpoint", "unknown field"),
        ("two L3 kinds in one rule", cnp("          endpointSelector: {}\n          ingress: [{fromEndpoints: [{}], fromEntities: [world]}]\n"), "steps[0].apply[0].spec.ingress[0]", "combining FromEndpoints and FromEntities"),
        ("HTTP rules", cnp("          endpointSelector: {}\n          ingress: [{toPorts: [{ports: [{port: \"80\", protocol: TCP}], rules: {http: [{method: GET}]}}]}]\n"), "steps[0].apply[0].spec.ingress[0].toPorts[0].rules.http", "not modelled"),
        ("an unsubstituted placeholder", cnp("          endpointSelector: {}\n          egress: [{toFQDNs: [{matchPattern: \"*.${DOMAIN}\"}]}]\n"), "steps[0].apply[0].spec.egress[0].toFQDNs[0].matchPattern", "placeholder"),
        ("namespace outside the topology", cnp("          endpointSelector: {}\n          ingress: [{}]\n").replace("namespace: x}", "namespace: q}"), "steps[0].apply[0].metadata.namespace", "not in the topology"),
        ("delete of a CCNP that does not exist", GOOD.replace("    apply:\n", "    delete: [CiliumClusterwideNetworkPolicy/nope]\n    apply:\n"), "steps[0].delete[0]", "no policy CCNP nope"),
    ] {
        let errors = load_str(FILE, &text).err().unwrap_or_else(|| panic!("{what}: loaded"));
        assert!(
            errors.iter().any(|e| e.path == path && e.to_string().contains(needle) && e.location.is_some()),
            "{what}: want {path} ~ {needle:?}, got {errors:?}"
        );
    }
}

/// `topology.grid` and `repeat` (large fixtures and many policies): bad sizes, clashes and
/// templates are refused with the field, and a template is reported once, not per copy.
#[test]
fn grids_and_repeated_policies_are_checked_with_field_paths() {
    let with_grid = |grid: &str, extra: &str| {
        GOOD.replace(
            "tags: [extended]\n",
            &format!("tags: [extended]\ntopology:\n  grid: {grid}\n{extra}"),
        )
        .replace("namespace: x}", "namespace: ns-00}")
        .replace("to: \"x/*\"", "to: \"ns-00/*\"")
    };
    let repeat = |count: &str, name: &str, selector: &str| {
        with_grid("{namespaces: 2, pods: 2}", "").replace(
            "      - apiVersion: networking.k8s.io/v1\n        kind: NetworkPolicy\n        metadata: {name: deny, namespace: ns-00}\n        spec:\n          podSelector: {}\n",
            &format!("      - repeat: {count}\n        policy:\n          apiVersion: networking.k8s.io/v1\n          kind: NetworkPolicy\n          metadata: {{name: \"{name}\", namespace: ns-00}}\n          spec:\n            podSelector: {selector}\n"),
        ).replace("          policyTypes: [Ingress]\n    probe", "            policyTypes: [Ingress]\n    probe")
    };
    // The unedited forms load: a 2 x 2 grid, and 3 copies named p-0, p-1, p-2.
    let s = load_str(FILE, &with_grid("{namespaces: 2, pods: 2}", "")).expect("a grid loads");
    assert_eq!(s.topology.pods.len(), 4);
    assert!(s
        .topology
        .pod(&"ns-01/pod-01".parse().expect("ref"))
        .is_some());
    let s = load_str(
        FILE,
        &repeat("3", "p-{i}", "{matchLabels: {pod: \"pod-{i%2:02}\"}}"),
    )
    .expect("a repeat loads");
    let names: Vec<_> = s.steps[0]
        .apply
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["p-0", "p-1", "p-2"]);
    for (what, text, path, needle) in [
        (
            "an empty grid",
            with_grid("{namespaces: 0, pods: 3}", ""),
            "topology.grid",
            "at least 1",
        ),
        (
            "a grid too large",
            with_grid("{namespaces: 100, pods: 100}", ""),
            "topology.grid",
            "at most 2500 pods",
        ),
        (
            "a misspelt grid field",
            with_grid("{namespace: 2, pods: 2}", ""),
            "topology.grid",
            "unknown field",
        ),
        (
            "a namespace the grid also makes",
            with_grid("{namespaces: 2, pods: 2}", "  namespaces: {ns-01: {}}\n"),
            "topology.namespaces.ns-01",
            "also generated by topology.grid",
        ),
        (
            "repeat 0",
            repeat("0", "p-{i}", "{}"),
            "steps[0].apply[0].repeat",
            "out of range",
        ),
        (
            "a bad expression",
            repeat("3", "p-{i*2}", "{}"),
            "steps[0].apply[0].policy.metadata.name",
            "expected / or %",
        ),
        (
            "copies with one name",
            repeat("3", "same", "{}"),
            "steps[0].apply[0].policy.metadata.name",
            "copy i=1",
        ),
        (
            "an invalid label value in every copy",
            repeat("3", "p-{i}", "{matchLabels: {pod: \"-{i}\"}}"),
            "steps[0].apply[0].policy.spec.podSelector.matchLabels",
            "copy i=0",
        ),
    ] {
        let errors = load_str(FILE, &text)
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        assert!(
            errors
                .iter()
                .any(|e| e.path.starts_with(path) && e.to_string().contains(needle)),
            "{what}: want {path} ~ {needle:?}, got {errors:?}"
        );
        // One report per template, whatever the number of copies (and one per bad grid).
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
    }
}
