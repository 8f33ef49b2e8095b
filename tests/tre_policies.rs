//! The real TRE Cilium policies (`testdata/tre-policies/`, copies of the held-out set with their
//! provenance in SOURCES.md): every CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy parses
//! strictly and validates, and the oracle compiles them all together.

use netassay_core::model::Topology;
use netassay_core::policy::cilium::{
    validate_cilium_policy, CiliumOracle, CiliumPolicy, Endpoint, NameFacts,
};
use std::path::Path;

fn documents(text: &str) -> Vec<String> {
    // Split on YAML document markers; skip documents with no content (comments only).
    text.split("\n---")
        .map(|d| d.trim_start_matches("---").to_string())
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn load_all() -> Vec<(String, CiliumPolicy)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tre-policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/tre-policies")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (i, doc) in documents(&text).iter().enumerate() {
            let mut p: CiliumPolicy =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{name} document {i}: {e}"));
            // The K8TRE docs example has no namespace: kubectl applies it in the current one.
            if p.kind.as_str() == "CiliumNetworkPolicy" && p.metadata.namespace.is_none() {
                p.metadata.namespace = Some("default".into());
            }
            out.push((format!("{name}#{i}"), p));
        }
    }
    out
}

#[test]
fn every_tre_cilium_policy_parses_and_validates() {
    let all = load_all();
    let cnp = all.iter().filter(|(_, p)| !p.kind.is_clusterwide()).count();
    let ccnp = all.len() - cnp;
    // SOURCES.md: 14 CiliumNetworkPolicies and 3 CiliumClusterwideNetworkPolicies.
    assert_eq!((cnp, ccnp), (14, 3), "policy counts");
    let mut failures = Vec::new();
    for (at, p) in &all {
        let errs = validate_cilium_policy(p);
        if !errs.is_empty() {
            failures.push(format!("{at} ({}): {errs:?}", p.policy_ref()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let policies: Vec<CiliumPolicy> = all.into_iter().map(|(_, p)| p).collect();
    let topo = Topology::standard();
    let o = CiliumOracle::new(&topo, &[], &policies, NameFacts::Unknown).expect("compiles");
    // The standard model's namespaces carry no k8tre.io/resource-type label, so the K8TRE
    // CCNP allow-pod-to-pod-via-gateway selects them: egress to `cluster` only, ingress from
    // cluster and world.
    let ext = Endpoint::World("203.0.113.10".parse().expect("ip"));
    assert!(o
        .judge(
            Endpoint::Pod(0),
            Endpoint::Pod(4),
            80,
            netassay_core::model::Protocol::Tcp
        )
        .verdict
        .is_some_and(|v| v.is_allow()));
    let out = o.explain(
        Endpoint::Pod(0),
        ext,
        443,
        netassay_core::model::Protocol::Tcp,
    );
    assert_eq!(
        out.verdict,
        None,
        "toFQDNs in the AWS CCNP leaves world egress unjudged without name facts: {}",
        out.summary()
    );
}

#[test]
fn the_unsubstituted_domain_placeholder_is_refused() {
    let all = load_all();
    let mut seen = 0;
    for (at, p) in all {
        let text = serde_json::to_string(&p).expect("json");
        if !text.contains("tre.example.org") {
            continue;
        }
        seen += 1;
        let back: CiliumPolicy =
            serde_json::from_str(&text.replace("tre.example.org", "${DOMAIN}")).expect("json");
        let errs = validate_cilium_policy(&back);
        assert!(
            errs.iter()
                .any(|e| e.path.ends_with("matchPattern") && e.message.contains("placeholder")),
            "{at}: {errs:?}"
        );
    }
    assert_eq!(seen, 2, "two TRE policies carry ${{DOMAIN}}");
}
