//! The syntax of object names that references must follow, as Kubernetes defines it
//! (`k8s.io/apimachinery/pkg/util/validation`). A reference the API server could never resolve
//! (`accountRef: ""`) is refused by the schema rather than reported as Unbound for ever.

/// A DNS-1123 subdomain: the name of an Account, RetentionPolicy, DataProcessor, Secret or any
/// custom resource of this API.
pub const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// The longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: u32 = 253;
/// A DNS-1123 label: the name of a namespace.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// The longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: u32 = 63;
/// A key of a Secret's `data` (`IsConfigMapKey`).
pub const SECRET_KEY: &str = "^[-._a-zA-Z0-9]+$";
/// The longest key of a Secret's `data`.
pub const SECRET_KEY_MAX: u32 = 253;
