//! Cilium's policy kinds on a real cluster: `cilium.io/v2` CiliumNetworkPolicy (namespaced) and
//! CiliumClusterwideNetworkPolicy (cluster-scoped), handled as dynamic objects (k8s-openapi has
//! no types for CRDs). The fixture applies them (fixture/cilium.rs); cleanup sweeps the
//! cluster-scoped ones, which no namespace deletion takes along.

use super::error::{status_code, ClusterError};
use super::fixture::run_selector;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::Api;
use netassay_core::policy::cilium::CiliumPolicy;

/// Why a step with Cilium policies cannot be judged on a cluster without Cilium's CRDs.
pub const NO_CILIUM_API: &str =
    "this cluster serves no CiliumNetworkPolicy API (cilium.io/v2): its CNI is not Cilium, or \
     Cilium's CRDs are not installed";

/// `cilium.io/v2` CiliumNetworkPolicy (namespaced).
pub fn cnp_resource() -> ApiResource {
    ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: "CiliumNetworkPolicy".into(),
        plural: "ciliumnetworkpolicies".into(),
    }
}

/// `cilium.io/v2` CiliumClusterwideNetworkPolicy (cluster-scoped).
pub fn ccnp_resource() -> ApiResource {
    ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: "CiliumClusterwideNetworkPolicy".into(),
        plural: "ciliumclusterwidenetworkpolicies".into(),
    }
}

/// Whether the cluster serves Cilium's policy kinds. It lists this run's CCNPs (which the run
/// needs the right to do anyway, to clean them up): 404 means no such API; discovery would say
/// the same, through a path the least-privilege role need not grant.
pub async fn served(client: &kube::Client, run: &str) -> Result<bool, ClusterError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ccnp_resource());
    match api
        .list(&ListParams::default().labels(&run_selector(run)).limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if status_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(ClusterError::api(
            "looking for the CiliumClusterwideNetworkPolicy API (cilium.io/v2)",
            e,
        )),
    }
}

/// A Cilium policy as a dynamic object (apiVersion, kind, metadata, spec/specs).
pub fn to_object(cp: &CiliumPolicy) -> Result<DynamicObject, String> {
    serde_json::to_value(cp)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("cannot encode the policy for the API server: {e}"))
}

/// True when the API server alone can refuse the policy: some problem is the CRD schema's (or
/// a plain field error), not only the agent's `Sanitize` or netassay's own "not modelled".
/// The agent's refusals are not visible through the API (it ignores the object and logs),
/// so a `reject` of that kind is checked offline only.
pub fn api_server_refuses(problems: &[netassay_core::policy::validate::FieldError]) -> bool {
    problems
        .iter()
        .any(|p| !(p.detail.starts_with("Cilium agent:") || p.detail.starts_with("not modelled")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netassay_core::policy::cilium::validate_cilium_policy;

    fn policy(v: serde_json::Value) -> CiliumPolicy {
        serde_json::from_value(v).expect("policy")
    }

    #[test]
    fn a_policy_becomes_a_dynamic_object_of_its_kind() {
        let cp = policy(serde_json::json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"endpointSelector": {}, "ingress": [{}]}
        }));
        let o = to_object(&cp).expect("object");
        let types = o.types.expect("types");
        assert_eq!(types.api_version, "cilium.io/v2");
        assert_eq!(types.kind, "CiliumClusterwideNetworkPolicy");
        assert_eq!(o.metadata.name.as_deref(), Some("n"));
        assert_eq!(o.data["spec"]["ingress"], serde_json::json!([{}]));
    }

    /// Which refusals a cluster can show: the CRD schema's answer is a 422 from the API server;
    /// the agent's Sanitize refusal (pkg/policy/k8s/cilium_network_policy.go:140-146) only a
    /// log line.
    #[test]
    fn only_schema_refusals_are_checked_against_the_api_server() {
        for (spec, api_server) in [
            // CRD: spec `anyOf` one of the four sections.
            (serde_json::json!({"endpointSelector": {}}), true),
            // CRD: endPort maximum 65535.
            (
                serde_json::json!({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80", "endPort": 70000}]}]}]}),
                true,
            ),
            // Agent: "combining FromEndpoints and FromCIDR is not supported yet"
            // (rule_validation.go:200-216); the CRD accepts it.
            (
                serde_json::json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}], "fromCIDR": ["10.0.0.0/8"]}]}),
                false,
            ),
        ] {
            let cp = policy(serde_json::json!({
                "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "n", "namespace": "x"}, "spec": spec
            }));
            let problems = validate_cilium_policy(&cp);
            assert!(!problems.is_empty(), "{spec}");
            assert_eq!(
                api_server_refuses(&problems),
                api_server,
                "{spec}: {problems:?}"
            );
        }
    }
}
