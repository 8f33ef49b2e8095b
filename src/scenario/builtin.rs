//! The built-in corpus: scenarios/ embedded at build time, grouped into profiles by tag.

use super::definition::Scenario;
use super::document::LoadError;
use super::load::load_texts;
use super::profile::{Profile, CONFIG_FILE_NAME};

include!(concat!(env!("OUT_DIR"), "/builtin_scenarios.rs"));

/// Profiles users can select; a scenario belongs to a profile when it carries the tag.
/// `cilium` (CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy under Cilium's semantics) is
/// never selected by default and cannot run on a cluster yet: it is checked offline.
pub const PROFILES: &[&str] = &["core", "extended", "k8tre", "cilium", "scale"];

/// The built-in profile config of a profile (`scenarios/<profile>/profile-config.yaml`).
pub fn profile_config(profile: &str) -> Result<Profile, Vec<LoadError>> {
    let rel = format!("{profile}/{}", CONFIG_FILE_NAME);
    let file = format!("builtin:{rel}");
    match FILES.iter().find(|(p, _)| *p == rel) {
        Some((_, text)) => Profile::parse(&file, text),
        None => Err(vec![LoadError {
            file,
            location: None,
            path: String::new(),
            message: format!("profile {profile:?} has no built-in profile config"),
        }]),
    }
}

fn is_scenario_file(rel: &str) -> bool {
    !rel.ends_with(CONFIG_FILE_NAME)
}

/// Loads every built-in scenario. Files are named `builtin:<dir>/<file>` in errors.
pub fn all() -> Result<Vec<Scenario>, Vec<LoadError>> {
    let named: Vec<(String, &str)> = FILES
        .iter()
        .filter(|(p, _)| is_scenario_file(p))
        .map(|(p, t)| (format!("builtin:{p}"), *t))
        .collect();
    let (scenarios, errors) = load_texts(named.iter().map(|(f, t)| (f.as_str(), *t)));
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// The name of the K8TRE isolation scenario, which [`project_isolation`] scales.
pub const PROJECT_ISOLATION: &str = "k8tre-project-isolation";

/// `k8tre-project-isolation` over `projects` throwaway project namespaces (`project-001`, ...),
/// each with a workspace and a shared service: every project reaches itself and nothing of the
/// others, over TCP and UDP. What the built-in file says for two projects, for a TRE of many
/// (`--sandbox-scale projects=N`); its matrix has (2N)^2 paths per protocol.
pub fn project_isolation(projects: u16) -> Result<Scenario, Vec<LoadError>> {
    use std::fmt::Write;
    let names: Vec<String> = (1..=projects).map(|i| format!("project-{i:03}")).collect();
    let mut text = format!(
        "name: {PROJECT_ISOLATION}\n\
         description: >-\n  K8TRE workspaces, at scale: {projects} throwaway project namespaces, each \
         with a workspace and a shared service; each project reaches itself and nothing of the \
         others, over TCP and UDP.\n\
         tags: [k8tre, isolation, stmt-workspace-isolation, stmt-shared-services]\n\
         mode: intent\ntopology:\n  namespaces:\n"
    );
    for n in &names {
        let _ = writeln!(text, "    {n}: {{persona: project}}");
    }
    text.push_str("  pods:\n");
    for n in &names {
        let _ = writeln!(text, "    {n}/workspace: {{labels: {{app: workspace}}}}");
        let _ = writeln!(text, "    {n}/shared: {{labels: {{app: shared-service}}}}");
    }
    text.push_str(
        "  serve:\n    - {port: 8080, protocol: TCP, name: web}\n    \
         - {port: 8080, protocol: UDP, name: web-udp}\n\
         probe:\n  ports: [8080]\n  protocols: [TCP, UDP]\nsteps:\n  \
         - name: projects are isolated and a shared service serves its own project only\n    \
         expect:\n      default: deny\n      cells:\n",
    );
    for n in &names {
        let _ = writeln!(
            text,
            "        - {{from: \"{n}/*\", to: \"{n}/*\", verdict: allow}}"
        );
    }
    let file = format!("builtin:k8tre/project-isolation.yaml (projects={projects})");
    let (mut scenarios, errors) = load_texts(std::iter::once((file.as_str(), text.as_str())));
    match scenarios.pop() {
        Some(s) if errors.is_empty() => Ok(s),
        _ => Err(errors),
    }
}

/// Profiles that include others: K8TRE's "a CNI that fully supports NetworkPolicy" statement
/// is the core profile.
pub fn includes(profile: &str) -> &'static [&'static str] {
    match profile {
        "k8tre" => &["core"],
        _ => &[],
    }
}

/// Built-in scenarios of the given profiles and those they include (all of them when
/// `profiles` is empty).
pub fn select(profiles: &[String]) -> Result<Vec<Scenario>, Vec<LoadError>> {
    let mut wanted: Vec<&str> = profiles.iter().map(String::as_str).collect();
    for p in profiles {
        wanted.extend(includes(p));
    }
    Ok(all()?
        .into_iter()
        .filter(|s| profiles.is_empty() || wanted.iter().any(|p| s.has_tag(p)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The scale profile's 1,000 policies: policy i selects pod-(i/10 mod 10) of ns-(i mod 10),
    // so ten select each pod, and the oracle reasons over those ten only (its index of the
    // policies selecting each pod), never over all 1,000. The union of their rules admits the
    // diagonal pods ns-c/pod-c (NetworkPolicy: allows are additive across selecting policies).
    #[test]
    fn the_thousand_policies_select_ten_per_pod_and_admit_the_diagonal() {
        let s = select(&["scale".to_string()])
            .expect("built-ins")
            .into_iter()
            .find(|s| s.name == "scale-thousand-policies")
            .expect("the scenario");
        let policies = &s.steps[0].apply;
        assert_eq!(policies.len(), 1000);
        let oracle =
            netassay_core::policy::oracle::Oracle::new(&s.topology, policies).expect("compiles");
        let idx = |r: &str| {
            s.topology
                .pod_index(&r.parse().expect("ref"))
                .expect("a pod")
        };
        // Every pod: ns-a/pod-b is selected by p-(a + 10 b + 100 c) for c in 0..10.
        for a in 0..10 {
            for b in 0..10 {
                let to = idx(&format!("ns-{a:02}/pod-{b:02}"));
                let want: Vec<String> = (0..10)
                    .map(|c| format!("p-{:04}", a + 10 * b + 100 * c))
                    .collect();
                for c in 0..10 {
                    for k in 0..10 {
                        let from = idx(&format!("ns-{c:02}/pod-{k:02}"));
                        let e = oracle.explain(from, to, 80, netassay_core::model::Protocol::Tcp);
                        let selecting: Vec<String> = e
                            .ingress
                            .isolated_by
                            .iter()
                            .map(|p| p.name.clone())
                            .collect();
                        assert_eq!(selecting, want);
                        assert!(e
                            .ingress
                            .missed
                            .iter()
                            .all(|m| want.contains(&m.policy.name)));
                        let allowed = e.verdict == netassay_core::model::Verdict::Allow;
                        assert_eq!(
                            allowed,
                            c == k,
                            "ns-{c:02}/pod-{k:02} -> ns-{a:02}/pod-{b:02}"
                        );
                    }
                }
            }
        }
    }

    // The scaled isolation scenario is the built-in one grown: same name, tags and statements,
    // N project namespaces of a workspace and a shared service, one allow pin per project.
    #[test]
    fn project_isolation_at_n_has_n_projects_of_two_pods_and_n_allow_pins() {
        let builtin = all()
            .expect("built-ins")
            .into_iter()
            .find(|s| s.name == PROJECT_ISOLATION)
            .expect("the built-in isolation scenario");
        let s = project_isolation(7).expect("loads");
        assert_eq!(s.name, builtin.name);
        assert_eq!(s.tags, builtin.tags);
        assert_eq!(s.mode, builtin.mode);
        assert_eq!(s.topology.namespaces.len(), 7);
        assert_eq!(s.topology.pods.len(), 14);
        assert_eq!(s.topology.namespaces[6].name, "project-007");
        assert!(s.personas.values().all(|p| p == "project"));
        assert_eq!(s.steps.len(), 1);
        let pins = &s.steps[0].expect.as_ref().expect("expectations").cells;
        assert_eq!(pins.len(), 7);
        assert_eq!(pins[0].from, "project-001/*");
        assert_eq!(pins[0].to, "project-001/*");
        assert_eq!(
            s.steps[0].matrix.protocols,
            builtin.steps[0].matrix.protocols
        );
        assert_eq!(s.steps[0].matrix.ports, builtin.steps[0].matrix.ports);
    }
}
