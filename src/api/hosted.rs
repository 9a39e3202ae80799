//! The shape every hosted kind shares, generated once so the five kinds cannot drift apart.

/// Declares a namespaced hosted kind: its CRD attributes, printer columns, and a spec that
/// starts with the flattened [`AccountBinding`](super::AccountBinding) followed by the
/// kind-specific fields given in the body.
macro_rules! hosted_kind {
    (
        $(#[$spec_meta:meta])*
        kind = $kind:tt, shortname = $short:tt, doc = $doc:tt;
        pub struct $spec:ident { $($body:tt)* }
    ) => {
        $(#[$spec_meta])*
        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Eq,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        #[kube(
            group = "hosting.ecuni.se",
            version = "v1alpha1",
            kind = $kind,
            doc = $doc,
            namespaced,
            shortname = $short,
            category = "hosting",
            status = "crate::api::condition::BoundResourceStatus",
            derive = "PartialEq",
            cel,
            printcolumn(name = "Account", type_ = "string", json_path = ".spec.accountRef"),
            printcolumn(
                name = "Bound",
                type_ = "string",
                description = "False while the Account it names does not exist",
                json_path = ".status.conditions[?(@.type==\"Bound\")].status"
            ),
            printcolumn(
                name = "Delete at",
                type_ = "string",
                description = "When the operator erases this resource",
                json_path = ".metadata.annotations.hosting\\.ecuni\\.se/delete-at"
            ),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct $spec {
            /// The account binding and legal basis.
            #[serde(flatten)]
            pub binding: crate::api::AccountBinding,
            $($body)*
        }
    };
}

pub(crate) use hosted_kind;
