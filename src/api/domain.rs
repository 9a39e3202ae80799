//! Domain: a domain name with its DNS settings.

use super::hosted::hosted_kind;

hosted_kind! {
    /// A domain name and its DNS settings, registered through a registrar.
    kind = "Domain", shortname = "dom", doc = "A domain name with its DNS settings";
    pub struct DomainSpec {
        /// The fully qualified domain name.
        pub fqdn: String,
        /// The DataProcessor (registrar or registry) that holds the registration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(
            pattern(crate::api::names::DNS1123_SUBDOMAIN),
            length(max = crate::api::names::DNS1123_SUBDOMAIN_MAX)
        )]
        pub registrar: Option<String>,
    }
}
