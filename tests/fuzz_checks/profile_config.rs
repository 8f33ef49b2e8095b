//! The `profile_config` fuzz target's check (shared with tests/fuzz_regressions.rs; see
//! tests/fuzz_checks/mod.rs): any text either parses into a profile or is refused with load
//! errors; a profile that parses answers `external_verdict` for each of its externals, binds the
//! built-in scenarios that need one (or refuses them), and one of the bound scenarios (chosen by
//! the input's length: planning them all is slow) plans without panicking.

use netassay::scenario::{builtin, Profile, Scenario};
use netassay_core::model::Via;
use std::sync::{Arc, LazyLock};

/// The built-in scenarios that need a profile config.
static NEEDING_PROFILE: LazyLock<Vec<Scenario>> = LazyLock::new(|| {
    builtin::all()
        .unwrap_or_default()
        .into_iter()
        .filter(Scenario::needs_profile)
        .collect()
});

/// Checks one input; `true` when it parsed as a profile (then bound and planned as above).
pub fn check(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(profile) = Profile::parse("fuzz-profile-config.yaml", text) else {
        return false;
    };
    for e in &profile.externals {
        for via in [Via::Lookup, Via::Address, Via::Name] {
            let _ = profile.external_verdict(Some("fuzz"), &e.external.name, 443, via);
        }
    }
    let profile = Arc::new(profile);
    let planned = data.len() % NEEDING_PROFILE.len().max(1);
    for (i, scenario) in NEEDING_PROFILE.iter().enumerate() {
        if let Ok(bound) = scenario.bind(&profile) {
            if i == planned {
                let _ = bound.plan();
            }
        }
    }
    true
}
