//! NetworkPolicy v1 validation equal to the Kubernetes 1.33 API server's, with its field paths and messages.
//
// What is mirrored (Kubernetes 1.33, default feature gates, create path):
// - `pkg/apis/networking/validation`: ValidateNetworkPolicy, ValidateNetworkPolicySpec,
//   ValidateNetworkPolicyPort, ValidateNetworkPolicyPeer, ValidateIPBlock (non-strict CIDR
//   parsing: StrictIPCIDRValidation is alpha and off in 1.33).
// - `apimachinery/pkg/api/validation`: ValidateObjectMetaAccessor (generateName, name,
//   namespace, generation, labels, annotations, ownerReferences, finalizers) and core's extra
//   finalizer-name check. managedFields are not checked (the server's field manager owns them).
// - `apimachinery/pkg/apis/meta/v1/validation`: ValidateLabelSelector, ValidateLabels.
// - `apimachinery/pkg/util/validation`: IsDNS1123Label/Subdomain, IsQualifiedName,
//   IsValidLabelValue, IsValidPortName, IsValidPortNum, and field.Error's message format.
// - `k8s.io/utils/net.ParseCIDRSloppy` (the forked Go 1.16 parser: leading zeros allowed).
//
// Like upstream ValidateObjectMeta, `validate_network_policy` expects create-time preparation to
// have happened already (name generated from generateName, namespace taken from the request).

mod cidr;
pub(crate) mod field_error;
pub(crate) mod go_text;
mod labels;
mod names;
mod network_policy;

pub use cidr::parse_cidr;
pub use field_error::{FieldError, FieldErrorKind};
pub use labels::{validate_label_selector, validate_labels};
pub use names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    is_valid_port_name,
};
pub use network_policy::validate_network_policy;
