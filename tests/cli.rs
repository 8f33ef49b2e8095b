//! The offline commands as a user runs them: exit codes, JSON contract, explanations.

use std::process::{Command, Output};

fn netassay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netassay"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run netassay")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn plan_json_is_the_documented_contract_and_complete() {
    let out = netassay(&["plan", "scenarios", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(doc["schema"], "netassay.plan/v1");
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.len() >= 48 + 25);
    let mut cells = 0;
    for s in scenarios {
        assert!(s["name"].is_string() && s["file"].is_string());
        for step in s["steps"].as_array().expect("steps") {
            assert!(step["name"].is_string());
            for c in step["cells"].as_array().expect("cells") {
                cells += 1;
                for key in ["from", "to", "protocol", "via", "verdict"] {
                    assert!(c[key].is_string(), "{key} in {c}");
                }
                assert!(c["port"].is_u64(), "numeric port in {c}");
                assert!(c["loopback"].is_boolean() && c["ip_dependent"].is_boolean());
                assert!(c["verdict"] == "allow" || c["verdict"] == "deny");
            }
        }
    }
    assert!(cells > 1000, "{cells} cells");
}

#[test]
fn plan_json_names_resolved_ports_and_omits_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("named.yaml");
    std::fs::write(
        &f,
        r#"name: named
topology:
  namespaces: {x: {}}
  pods:
    x/a: {labels: {pod: a}, serve: [{port: 8080, protocol: TCP, name: web}]}
    x/b: {labels: {pod: b}, serve: [{port: 80, protocol: TCP, name: other}]}
probe: {ports: [web], protocols: [TCP]}
steps:
  - name: nothing
"#,
    )
    .expect("write");
    let out = netassay(&["plan", f.to_str().expect("utf8"), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let cells = doc["scenarios"][0]["steps"][0]["cells"]
        .as_array()
        .expect("cells")
        .clone();
    assert_eq!(cells.len(), 2, "only x/a serves `web`: {cells:?}");
    for c in &cells {
        assert_eq!(c["to"], "x/a");
        assert_eq!(c["port"], 8080);
        assert_eq!(c["port_name"], "web");
    }
}

#[test]
fn plan_text_prints_upstream_style_grids() {
    let out = netassay(&["plan", "scenarios/core/01-default-deny-ingress.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(s.contains("80/TCP via pod-ip"), "{s}");
    // y/a may reach y/b but not x/a: its row reads X X X . . . . . .
    let row = s
        .lines()
        .find(|l| l.trim_start().starts_with("y/a"))
        .expect("row y/a");
    let symbols: Vec<&str> = row.split_whitespace().skip(1).collect();
    assert_eq!(
        symbols,
        ["X", "X", "X", ".", ".", ".", ".", ".", "."],
        "{row}"
    );
}

/// No verdict without evidence, offline too: a cell the oracle does not judge is listed with its
/// reason under its step (text) and in `unjudged` (JSON), never shown as a verdict.
#[test]
fn plan_lists_the_cells_it_does_not_judge_with_the_reason() {
    let file = "scenarios/cilium/25-k8tre-outbound-by-fqdn.yaml";
    let out = netassay(&["plan", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("not judged (1):\n    x/a -> external/mirror 443/TCP via address: egress not judged: CNP x/approved-mirror-only egress[1]: toFQDNs"),
        "{s}"
    );
    let out = netassay(&["plan", file, "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let last = &doc["scenarios"][0]["steps"][2];
    let unjudged = last["unjudged"].as_array().expect("unjudged");
    assert_eq!(unjudged.len(), 1, "{last}");
    assert_eq!(unjudged[0]["cell"]["via"], "address");
    assert!(unjudged[0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("toFQDNs")));
    let judged = last["cells"].as_array().expect("cells");
    assert!(!judged.iter().any(|c| c["from"] == "x/a"
        && c["to"] == "external/mirror"
        && c["port"] == 443
        && c["via"] == "address"));
    // The probe by name after a proxied lookup is judged: allowed.
    assert!(judged.iter().any(|c| c["from"] == "x/a"
        && c["to"] == "external/mirror"
        && c["port"] == 443
        && c["via"] == "name"
        && c["verdict"] == "allow"));
}

#[test]
fn validate_reports_every_problem_of_every_file_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), "name: A\nsteps: []\n").expect("write");
    std::fs::write(dir.path().join("b.yaml"), "name: b\nstepz: []\n").expect("write");
    let out = netassay(&["validate", dir.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("a.yaml:1:1: name:"), "{err}");
    assert!(
        err.contains("a.yaml") && err.contains("steps: a scenario needs at least one step"),
        "{err}"
    );
    assert!(err.contains("b.yaml:2:1"), "{err}");
    assert!(err.contains("3 problem(s) in 2 file(s)"), "{err}");
}

#[test]
fn validate_accepts_the_builtin_corpus() {
    let out = netassay(&["validate", "builtin"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: "));
}

#[test]
fn explain_walks_through_the_reasons() {
    let out = netassay(&[
        "explain",
        "scenarios/core/01-default-deny-ingress.yaml",
        "--from",
        "y/a",
        "--to",
        "x/a",
        "--port",
        "80",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("egress of y/a: not isolated"), "{s}");
    assert!(
        s.contains("ingress of x/a: isolated by x/deny-ingress"),
        "{s}"
    );
    assert!(s.contains("verdict: deny"), "{s}");
}

/// A CCNP's deny wins over a CNP's allow (Cilium deny.rst: deny takes precedence), and the
/// explanation names the rule that decided each side.
#[test]
fn explain_names_the_ccnp_deny_rule_behind_a_cilium_cell() {
    let out = netassay(&[
        "explain",
        "scenarios/cilium/11-ccnp-deny-beats-cnp-allow.yaml",
        "--from",
        "y/a",
        "--to",
        "x/a",
        "--port",
        "80",
        "--step",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("(Cilium semantics)"), "{s}");
    assert!(
        s.contains("egress of y/a: selected by CCNP y-not-to-x (default deny): egress denied by CCNP y-not-to-x egressDeny[0]"),
        "{s}"
    );
    assert!(
        s.contains("ingress of x/a: selected by CNP x/allow-all-in (default deny): ingress allowed by CNP x/allow-all-in ingress[0]"),
        "{s}"
    );
    assert!(s.contains("verdict: deny"), "{s}");
}

#[test]
fn explain_rejects_unknown_pods_with_a_hint() {
    let out = netassay(&[
        "explain",
        "scenarios/core/01-default-deny-ingress.yaml",
        "--from",
        "q/a",
        "--to",
        "x/a",
        "--port",
        "80",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no pod q/a"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_filters_by_profile() {
    let out = netassay(&["list", "--profile", "core"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("48 scenario(s)"),
        "{}",
        text(&out.stdout)
    );
    let bad = netassay(&["list", "--profile", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(netassay(&["plan"]).status.code(), Some(2));
    assert_eq!(netassay(&["frobnicate"]).status.code(), Some(2));
    let help = netassay(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Exit codes"));
}

#[test]
fn k8tre_runs_on_a_real_cluster_need_a_profile_config_but_listing_does_not() {
    // Checked before any cluster is contacted: the built-in config only describes the sandbox.
    let out = netassay(&["run", "--profile", "k8tre", "--kubeconfig", "/nonexistent"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("need --profile-config FILE"), "{stderr}");

    let out = netassay(&["run", "--profile", "k8tre", "--list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("k8tre-external-access-via-gateway"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default-deny-ingress"),
        "k8tre includes core: {stdout}"
    );
}

#[test]
fn explain_on_an_intent_scenario_shows_the_stated_expectation() {
    let out = netassay(&[
        "explain",
        "scenarios/k8tre/project-isolation.yaml",
        "--from",
        "project-b/workspace",
        "--to",
        "project-a/shared",
        "--port",
        "8080",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("is an intent scenario"), "{stdout}");
    assert!(
        stdout
            .contains("project-b/workspace -> project-a/shared 8080/TCP via pod-ip: expected deny"),
        "{stdout}"
    );
}

// `--sandbox-scale` is checked before anything starts (no root needed): a bad size names the
// flag and the allowed range, and a size without the preset it sizes names the missing flag.
#[test]
fn bad_sandbox_scales_are_refused_naming_the_flag_and_the_range() {
    for bad in [
        "projects=1",
        "projects=101",
        "projects=lots",
        "pods=5",
        "50",
    ] {
        let out = netassay(&[
            "run",
            "--sandbox",
            "--sandbox-preset",
            "k8tre",
            "--sandbox-scale",
            bad,
            "--profile",
            "k8tre",
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--sandbox-scale"), "{bad}: {stderr}");
        assert!(stderr.contains("from 2 to 100"), "{bad}: {stderr}");
    }
    let out = netassay(&["run", "--sandbox", "--sandbox-scale", "projects=5"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sandbox-preset"), "{stderr}");
    let out = netassay(&["bench", "scale", "--projects", "5,1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--projects") && stderr.contains("from 2 to 100"),
        "{stderr}"
    );
}
