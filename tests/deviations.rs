//! The deviation lists of third-party CNIs (reports/reference/<cni>/deviations.yaml) are data
//! that CI judges runs against (.ci/check-deviations): each must name scenarios the built-in
//! corpus has, say whose the difference is with evidence, and never list one of ours (ours get
//! fixed). DESIGN §7c.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn lists() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reports/reference");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("reports/reference exists")
        .filter_map(|e| e.ok().map(|e| e.path().join("deviations.yaml")))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_deviation_names_a_scenario_says_whose_it_is_and_shows_evidence() {
    let files = lists();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("kube-router/deviations.yaml")),
        "kube-router's deviation list is missing: {files:?}"
    );
    let corpus: BTreeSet<String> = netassay::scenario::builtin::all()
        .expect("the built-in corpus loads")
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let cni = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if doc["cni"].as_str() != Some(cni.as_str()) {
            problems.push(format!("{}: cni must be {cni:?}", file.display()));
        }
        for field in ["version", "mode"] {
            if doc[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{}: {field} is missing", file.display()));
            }
        }
        let entries = doc["deviations"].as_array().cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, d) in entries.iter().enumerate() {
            let at = format!("{}: deviations[{i}]", file.display());
            let scenario = d["scenario"].as_str().unwrap_or_default();
            if !corpus.contains(scenario) {
                problems.push(format!(
                    "{at}.scenario: {scenario:?} is not a built-in scenario"
                ));
            }
            if !seen.insert(scenario.to_string()) {
                problems.push(format!("{at}.scenario: {scenario:?} is listed twice"));
            }
            match d["whose"].as_str() {
                Some("theirs" | "unspecified") => {}
                Some("ours") => problems.push(format!(
                    "{at}: {scenario} is ours: fix it instead of listing it"
                )),
                other => problems.push(format!("{at}.whose: {other:?}")),
            }
            if !matches!(d["reproduces"].as_str(), Some("always" | "sometimes")) {
                problems.push(format!("{at}.reproduces: always or sometimes"));
            }
            if d["summary"].as_str().is_none_or(|s| s.len() < 40) {
                problems.push(format!("{at}.summary: say what differs"));
            }
            for field in ["api", "upstream"] {
                if d["evidence"][field].as_str().is_none_or(|s| s.len() < 40) {
                    problems.push(format!("{at}.evidence.{field}: missing"));
                }
            }
            let cells = d["cells"].as_array().cloned().unwrap_or_default();
            if cells.is_empty() {
                problems.push(format!("{at}.cells: at least one observed cell"));
            }
            for (j, c) in cells.iter().enumerate() {
                for field in ["step", "from", "to", "protocol", "expected", "observed"] {
                    if c[field].as_str().is_none() {
                        problems.push(format!("{at}.cells[{j}].{field}: missing"));
                    }
                }
                if c["port"].as_u64().is_none() {
                    problems.push(format!("{at}.cells[{j}].port: missing"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
