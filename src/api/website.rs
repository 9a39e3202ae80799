//! Website: a hosted site of an account.

use super::hosted::hosted_kind;

hosted_kind! {
    /// A website hosted for an account.
    kind = "Website", shortname = "web", doc = "A website hosted for an account";
    pub struct WebsiteSpec {
        /// Host names the site answers to.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub hostnames: Vec<String>,
    }
}
