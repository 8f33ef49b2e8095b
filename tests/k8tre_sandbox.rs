//! The K8TRE profile end to end on the sandbox's TRE preset (root): the compliant preset passes
//! every statement with real connections where the profile allows them; each real TRE mistake
//! fails the right statement with a message an operator understands; bad input is exit 2.
//! Without root these tests say so and pass, unless CI is set.

mod run_common;

use run_common::{root_or_skip, run, text};

/// The test runner's line for a scenario says FAILED (names are padded to one width).
fn failed(stdout: &str, scenario: &str) -> bool {
    stdout.lines().any(|l| {
        l.starts_with("test ")
            && l.split_whitespace().any(|w| w == scenario)
            && l.ends_with("FAILED")
    })
}

fn statement<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("statement {id} in {}", doc["statements"]))
}

/// The last outcome of the cell from -> to port via.
fn outcome(doc: &serde_json::Value, from: &str, to: &str, port: u64, via: &str) -> String {
    for s in doc["scenarios"].as_array().expect("scenarios") {
        for step in s["steps"].as_array().expect("steps") {
            for c in step["cells"].as_array().expect("cells") {
                if c["from"] == from && c["to"] == to && c["port"] == port && c["via"] == via {
                    let a = c["attempts"].as_array().expect("attempts");
                    return a.last().expect("an attempt")["outcome"]
                        .as_str()
                        .expect("outcome")
                        .to_string();
                }
            }
        }
    }
    panic!("no cell {from} -> {to} {port} via {via}")
}

#[test]
fn the_compliant_tre_preset_passes_every_statement_with_real_connections() {
    if !root_or_skip("the_compliant_tre_preset_passes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let junit = dir.path().join("junit.xml");
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-preset",
        "k8tre",
        "--profile",
        "k8tre",
        "k8tre-",
        "--json",
        json.to_str().expect("utf8"),
        "--junit",
        junit.to_str().expect("utf8"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("test result: ok. 5 passed; 0 failed"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("results")).expect("json");
    for id in [
        "gateway",
        "outbound",
        "workspace-isolation",
        "shared-services",
    ] {
        assert_eq!(statement(&doc, id)["verdict"], "passed", "{id}");
    }
    // The core profile was filtered out: its statement is not run, never passed.
    assert_eq!(statement(&doc, "cni")["verdict"], "not-run");
    // Allowed paths really connected; denied ones really timed out.
    let c = |from, to, port, via| outcome(&doc, from, to, port, via);
    assert_eq!(
        c("outside/vantage", "project/web", 80, "gateway"),
        "connected"
    );
    assert_eq!(c("outside/vantage", "project/web", 80, "pod-ip"), "dropped");
    assert_eq!(
        c("project/workspace", "external/mirror", 443, "name"),
        "connected"
    );
    assert_eq!(
        c("project/workspace", "external/mirror", 80, "address"),
        "dropped"
    );
    assert_eq!(
        c("project/workspace", "external/internet", 443, "address"),
        "dropped"
    );
    assert_eq!(
        c("project/workspace", "external/metadata", 80, "address"),
        "dropped"
    );
    assert_eq!(
        c("infra/service", "external/cluster-api-name", 53, "lookup"),
        "connected"
    );
    assert!(stdout.contains("[passed] gateway"), "{stdout}");
    // JUnit readers see which statements each scenario is evidence for.
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains(r#"name="k8tre-statements" value="outbound,workspace-isolation""#),
        "{xml}"
    );
}

#[test]
fn a_ports_only_egress_rule_fails_the_outbound_statement_only() {
    if !root_or_skip("a_ports_only_egress_rule_fails") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-preset",
        "k8tre",
        "--sandbox-fault",
        "k8tre-ports-only-egress",
        "--profile",
        "k8tre",
        "k8tre-",
        "--converge-timeout",
        "2s",
        "--json",
        json.to_str().expect("utf8"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(failed(&stdout, "k8tre-outbound-blocked"), "{stdout}");
    assert!(
        stdout.contains(
            "project/workspace -> external/internet 443/TCP via address: expected deny, observed connected"
        ),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("results")).expect("json");
    assert_eq!(statement(&doc, "outbound")["verdict"], "failed");
    assert_eq!(statement(&doc, "gateway")["verdict"], "passed");
    assert_eq!(statement(&doc, "shared-services")["verdict"], "passed");
    assert!(stdout.contains("[FAILED] outbound"), "{stdout}");
}

#[test]
fn a_nodeport_beside_the_gateway_fails_the_inventory_with_an_operator_message() {
    if !root_or_skip("a_nodeport_beside_the_gateway_fails") {
        return;
    }
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-preset",
        "k8tre",
        "--sandbox-fault",
        "k8tre-nodeport",
        "--profile",
        "k8tre",
        "--exact",
        "k8tre-external-access-via-gateway",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        failed(&stdout, "k8tre-external-access-via-gateway"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/exposed-web: NodePort 3")
            && stdout.contains("selector app=web is not on the allow-list of exposures"),
        "{stdout}"
    );
    assert!(stdout.contains("[FAILED] gateway"), "{stdout}");
}

// A scaled TRE (`--sandbox-scale projects=3`): the isolation scenario runs over three
// throwaway projects of two pods each, (6 pods)^2 x TCP and UDP, and passes beside the preset's
// own three projects.
#[test]
fn the_scaled_tre_preset_passes_project_isolation_over_n_projects() {
    if !root_or_skip("the_scaled_tre_preset_passes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-preset",
        "k8tre",
        "--sandbox-scale",
        "projects=3",
        "--profile",
        "k8tre",
        "k8tre-project-isolation",
        "--json",
        json.to_str().expect("utf8"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("results")).expect("json");
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 1);
    let step = &scenarios[0]["steps"][0];
    assert_eq!(step["cells"].as_array().expect("cells").len(), 6 * 6 * 2);
    assert_eq!(
        outcome(
            &doc,
            "project-001/workspace",
            "project-001/shared",
            8080,
            "pod-ip"
        ),
        "connected"
    );
    assert_eq!(
        outcome(
            &doc,
            "project-001/workspace",
            "project-003/shared",
            8080,
            "pod-ip"
        ),
        "dropped"
    );
    // What the step cost is recorded: one exec per source per round, and the API requests.
    let load = &step["load"];
    assert_eq!(
        load["exec_calls"].as_u64(),
        Some(6 * step["rounds"].as_u64().expect("rounds")),
        "{load}"
    );
    assert!(
        load["api_requests"].as_u64() > load["exec_calls"].as_u64(),
        "{load}"
    );
}

#[test]
fn preset_mistakes_need_the_preset_and_bad_profile_configs_are_bad_input() {
    if !root_or_skip("preset_mistakes_need_the_preset") {
        return;
    }
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-fault",
        "k8tre-allow-all",
        "--profile",
        "k8tre",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--sandbox-preset k8tre"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tre.yaml");
    std::fs::write(
        &config,
        "personas:\n  project:\n    namespaceLabels: {a: b}\nexternals:\n  mirror:\n    adress: 192.0.2.1\n",
    )
    .expect("write");
    let out = run(&[
        "run",
        "--sandbox",
        "--profile",
        "k8tre",
        "--profile-config",
        config.to_str().expect("utf8"),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tre.yaml:6:"), "{stderr}");
    assert!(stderr.contains("externals.mirror"), "{stderr}");
}

/// The built-in profile config with some lines replaced, written to `dir`.
fn edited_config(dir: &std::path::Path, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/k8tre/profile-config.yaml"),
    )
    .expect("built-in config");
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join("tre.yaml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_app_is_exposed_by_ingress_when_the_profile_says_so_and_a_dead_route_fails() {
    if !root_or_skip("the_app_is_exposed_by_ingress") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ingress = edited_config(
        dir.path(),
        &[
            ("  route: HTTPRoute", "  route: Ingress"),
            (
                "  parentRef: {namespace: tre-gateway, name: tre-gateway}",
                "  ingressClassName: netassay-sandbox",
            ),
        ],
    );
    let args = |config: &std::path::Path| {
        vec![
            "run".to_string(),
            "--sandbox".into(),
            "--sandbox-preset".into(),
            "k8tre".into(),
            "--profile".into(),
            "k8tre".into(),
            "--exact".into(),
            "k8tre-external-access-via-gateway".into(),
            "--converge-timeout".into(),
            "2s".into(),
            "--profile-config".into(),
            config.display().to_string(),
        ]
    };
    let a = args(&ingress);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );

    // An HTTPRoute attached to a Gateway that does not exist: the gateway answers 404 itself,
    // which is a failure of the gateway path, not a probe error.
    let dead = edited_config(
        dir.path(),
        &[("name: tre-gateway}", "name: no-such-gateway}")],
    );
    let a = args(&dead);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("via gateway: expected allow, observed rejected (\"the gateway answered, but not with the app: HTTP 404"),
        "{stdout}"
    );
}
