//! The built-in corpus: every scenario loads, pins agree with the oracle (the loader checks), and
//! the profiles hold what the README promises.

use netassay::scenario::builtin;

#[test]
fn every_builtin_scenario_loads_and_its_pins_agree_with_the_oracle() {
    let scenarios = match builtin::all() {
        Ok(s) => s,
        Err(errors) => {
            let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            panic!("{} problem(s):\n{}", shown.len(), shown.join("\n"));
        }
    };
    assert!(!scenarios.is_empty());
    // Intent scenarios that need a profile config are planned under the built-in one.
    let mut scenarios = scenarios;
    netassay::scenario::bind_profiles(&mut scenarios, None)
        .unwrap_or_else(|e| panic!("binding to the built-in profile config: {e:?}"));
    for s in &scenarios {
        let plans = s
            .plan()
            .unwrap_or_else(|e| panic!("{}: {}: {}", s.name, e.path, e.message));
        for (i, p) in plans.iter().enumerate() {
            assert!(
                p.conflicts.is_empty(),
                "{} step {i}: {:?}",
                s.name,
                p.conflicts
            );
            assert!(!p.cells.is_empty(), "{} step {i} probes nothing", s.name);
        }
    }
}

#[test]
fn core_profile_is_the_48_upstream_cases_with_pins() {
    let core = builtin::select(&["core".to_string()]).expect("loads");
    assert_eq!(core.len(), 48, "one scenario per upstream e2e test");
    let steps: usize = core.iter().map(|s| s.steps.len()).sum();
    assert_eq!(steps, 65, "one step per upstream ValidateOrFail");
    for s in &core {
        assert!(
            s.description.contains("network_policy.go"),
            "{} cites upstream",
            s.name
        );
        for st in &s.steps {
            let e = st
                .expect
                .as_ref()
                .unwrap_or_else(|| panic!("{} / {} has pins", s.name, st.name));
            assert_ne!(
                e.default,
                netassay::scenario::ExpectDefault::Oracle,
                "{}: full upstream matrix pinned",
                s.name
            );
        }
    }
}

#[test]
fn extended_profile_has_at_least_25_scenarios_that_each_allow_and_deny_something() {
    let ext = builtin::select(&["extended".to_string()]).expect("loads");
    assert!(ext.len() >= 25, "{} extended scenarios", ext.len());
    for s in &ext {
        let plans = s.plan().expect("plans");
        let verdicts: Vec<_> = plans
            .iter()
            .flat_map(|p| {
                p.cells
                    .iter()
                    .filter(|c| !c.cell.loopback)
                    .map(|c| c.verdict)
            })
            .collect();
        assert!(
            verdicts.iter().any(|v| v.is_allow()),
            "{} allows something",
            s.name
        );
        assert!(
            verdicts.iter().any(|v| !v.is_allow()),
            "{} denies something",
            s.name
        );
    }
}
