//! Phase 1: which scenarios run (profiles, files, filters), each bound to its profile config.

use super::args::RunArgs;
use crate::cli::exit;
use crate::scenario::{builtin, load_paths, Scenario};

pub(super) fn select(args: &RunArgs) -> Result<Vec<Scenario>, u8> {
    for p in &args.profile {
        if !builtin::PROFILES.contains(&p.as_str()) {
            eprintln!(
                "netassay: --profile {p:?}: known profiles are {}",
                builtin::PROFILES.join(", ")
            );
            return Err(exit::BAD_INPUT);
        }
    }
    let mut all = match builtin::select(&args.profile) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Err(exit::BAD_INPUT);
        }
    };
    // A scaled TRE preset (`--sandbox-scale projects=N`) scales the isolation scenario with it.
    if let Some(scale) = args.sandbox_scale {
        if let Some(slot) = all
            .iter_mut()
            .find(|s| s.name == builtin::PROJECT_ISOLATION)
        {
            match builtin::project_isolation(scale.projects) {
                Ok(s) => *slot = s,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    return Err(exit::BAD_INPUT);
                }
            }
        }
    }
    if !args.scenarios.is_empty() {
        match load_paths(&args.scenarios) {
            Ok(s) => all.extend(s),
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                return Err(exit::BAD_INPUT);
            }
        }
    }
    // Intent scenarios that need a profile config are bound to it here. The built-in config
    // describes the sandbox's TRE preset; on a real cluster it would test made-up addresses.
    if !args.sandbox
        && !args.list
        && args.profile_config.is_none()
        && all.iter().any(Scenario::needs_profile)
    {
        let names: Vec<&str> = all
            .iter()
            .filter(|s| s.needs_profile())
            .map(|s| s.name.as_str())
            .take(3)
            .collect();
        eprintln!(
            "netassay: {} need --profile-config FILE: what personas, external endpoints, the \
             gateway and allowed exposures are in this cluster (the built-in config describes \
             only the sandbox). Start from scenarios/k8tre/profile-config.yaml.",
            names.join(", ")
        );
        return Err(exit::BAD_INPUT);
    }
    if let Err(errors) = crate::scenario::bind_profiles(&mut all, args.profile_config.as_deref()) {
        for e in errors {
            eprintln!("{e}");
        }
        return Err(exit::BAD_INPUT);
    }
    if args.filter.len() > 1 {
        all.retain(|s| {
            args.filter.iter().any(|f| {
                if args.exact {
                    s.name == *f
                } else {
                    s.name.contains(f.as_str())
                }
            })
        });
    }
    Ok(all)
}

pub(super) fn test_args(args: &RunArgs) -> libtest_mimic::Arguments {
    libtest_mimic::Arguments {
        // One filter goes to the test runner (it reports "N filtered out"); several are applied
        // by `select` before.
        filter: (args.filter.len() == 1).then(|| args.filter[0].clone()),
        skip: args.skip.clone(),
        exact: args.exact,
        list: args.list,
        test_threads: Some(args.parallel.max(1)),
        ..libtest_mimic::Arguments::default()
    }
}

/// `--list`: the selected scenarios as the test runner lists them.
pub(super) fn list(args: &RunArgs, scenarios: &[Scenario]) -> u8 {
    let trials = scenarios
        .iter()
        .map(|s| {
            libtest_mimic::Trial::test(s.name.clone(), || Ok(()))
                .with_kind(s.tags.first().cloned().unwrap_or_default())
        })
        .collect();
    let _ = libtest_mimic::run(&test_args(args), trials);
    exit::OK
}
