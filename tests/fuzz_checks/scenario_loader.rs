//! The `scenario_loader` fuzz target's check (shared with tests/fuzz_regressions.rs; see
//! tests/fuzz_checks/mod.rs): any text either loads or is refused with load errors; a scenario
//! that loads (bound to the built-in K8TRE profile config when it names personas or external
//! endpoints) plans or fails its walk with an error, and the oracle explains its cells.

use netassay::scenario::{builtin, load_str, Profile};
use std::sync::{Arc, LazyLock};

/// The built-in K8TRE profile config, for scenarios that name personas or external endpoints.
static K8TRE: LazyLock<Option<Arc<Profile>>> =
    LazyLock::new(|| builtin::profile_config("k8tre").ok().map(Arc::new));

/// Cells explained per step: enough to reach the explain path without slowing the fuzzer.
const EXPLAINED_CELLS: usize = 16;

/// Checks one input; `true` when it loaded and planned (then its cells were explained).
pub fn check(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(scenario) = load_str("fuzz.yaml", text) else {
        return false;
    };
    let scenario = if scenario.needs_profile() {
        let Some(profile) = K8TRE.as_ref() else {
            return false;
        };
        match scenario.bind(profile) {
            Ok(bound) => bound,
            Err(_) => return false,
        }
    } else {
        scenario
    };
    let Ok(plans) = scenario.plan() else {
        return false;
    };
    for plan in &plans {
        for expected in plan.cells.iter().take(EXPLAINED_CELLS) {
            if let Some(why) = plan.explain(&expected.cell) {
                let _ = why.summary();
            }
        }
    }
    true
}
