//! Conventions about the Kubernetes objects netassay creates, shared by the product (which
//! creates them) and the sandbox (which recognises them), and what the API server says about
//! them that both wait out.

/// The standard label naming the tool that manages an object (DESIGN §9).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// [`MANAGED_BY`]'s value on everything a run creates.
pub const MANAGER: &str = "netassay";
/// The run id on everything a run creates.
pub const RUN_LABEL: &str = "netassay.io/run";

/// Whether an API answer is kube-apiserver refusing a pod because its namespace's default
/// ServiceAccount does not exist yet: kube-controller-manager makes it a moment after the
/// namespace, and the ServiceAccount admission plugin answers 403 until then.
pub fn is_service_account_race(code: u16, message: &str) -> bool {
    code == 403 && message.contains("error looking up service account")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_service_account_admission_refusal_is_the_race() {
        let refusal = r#"pods "a" is forbidden: error looking up service account ns/default: serviceaccount "default" not found"#;
        assert!(is_service_account_race(403, refusal));
        assert!(!is_service_account_race(
            403,
            "pods is forbidden: User cannot create"
        ));
        assert!(!is_service_account_race(500, refusal));
    }
}
