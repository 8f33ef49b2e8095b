//! The scenario loader: any text either loads or is refused with load errors; a scenario that
//! loads plans (or fails its walk with an error), and the oracle explains its cells.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netassay::scenario::{builtin, load_str, Profile};
use std::sync::{Arc, LazyLock};

/// The built-in K8TRE profile config, for scenarios that name personas or external endpoints.
static K8TRE: LazyLock<Option<Arc<Profile>>> =
    LazyLock::new(|| builtin::profile_config("k8tre").ok().map(Arc::new));

/// Cells explained per step: enough to reach the explain path without slowing the fuzzer.
const EXPLAINED_CELLS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = load_str("fuzz.yaml", text) else {
        return;
    };
    let scenario = if scenario.needs_profile() {
        let Some(profile) = K8TRE.as_ref() else {
            return;
        };
        match scenario.bind(profile) {
            Ok(bound) => bound,
            Err(_) => return,
        }
    } else {
        scenario
    };
    let Ok(plans) = scenario.plan() else {
        return;
    };
    for plan in &plans {
        for expected in plan.cells.iter().take(EXPLAINED_CELLS) {
            if let Some(why) = plan.explain(&expected.cell) {
                let _ = why.summary();
            }
        }
    }
});
