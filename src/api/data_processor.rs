//! DataProcessor: a sub-processor or partner that must be told to erase what it holds.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    condition::Condition,
    countries::{ISO_3166_ALPHA2, is_eea},
    names::{
        DNS1123_LABEL, DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX, SECRET_KEY,
        SECRET_KEY_MAX,
    },
};

/// A partner that processes customer data on the provider's behalf (GDPR Art. 28) and must be
/// told to erase it (Art. 19).
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hosting.ecuni.se",
    version = "v1alpha1",
    kind = "DataProcessor",
    doc = "A sub-processor or partner that must be told to erase an account's data",
    shortname = "dproc",
    category = "hosting",
    status = "DataProcessorStatus",
    derive = "PartialEq",
    printcolumn(name = "Legal name", type_ = "string", json_path = ".spec.legalName"),
    printcolumn(name = "Country", type_ = "string", json_path = ".spec.country"),
    printcolumn(
        name = "Webhook",
        type_ = "string",
        json_path = ".spec.erasure.webhook.url"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessorSpec {
    /// The processor's registered company name.
    pub legal_name: String,
    /// ISO 3166-1 alpha-2 code (upper case) of the country of establishment, e.g. SE.
    #[schemars(extend("enum" = ISO_3166_ALPHA2))]
    pub country: String,
    /// What the processor does with the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    /// The safeguard under which personal data is transferred to a processor established
    /// outside the EU/EEA (GDPR Chapter V); without it such a processor is flagged as a
    /// third-country transfer. Not needed within the EU/EEA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_mechanism: Option<TransferMechanism>,
    /// How the processor is asked to erase data.
    #[serde(default)]
    pub erasure: ErasureChannel,
}

impl DataProcessorSpec {
    /// Whether erasure requests are delivered automatically or by staff.
    pub fn delivery(&self) -> ErasureDelivery {
        match self.erasure.webhook {
            Some(_) => ErasureDelivery::Webhook,
            None => ErasureDelivery::Manual,
        }
    }
}

/// The safeguard of a transfer of personal data to a third country (GDPR Chapter V), as staff
/// declare it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum TransferMechanism {
    /// Art. 45: the European Commission decided that the country ensures an adequate level of
    /// protection (e.g. CH, GB, JP).
    AdequacyDecision,
    /// Art. 46(2)(c): the Commission's standard contractual clauses are signed.
    StandardContractualClauses,
    /// Art. 47: binding corporate rules approved by a supervisory authority.
    BindingCorporateRules,
}

impl TransferMechanism {
    /// The name used in the API, in plans and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdequacyDecision => "AdequacyDecision",
            Self::StandardContractualClauses => "StandardContractualClauses",
            Self::BindingCorporateRules => "BindingCorporateRules",
        }
    }
}

/// Whether the data a processor holds is transferred to a third country without a declared
/// safeguard: it is established outside the EU/EEA and names no `transferMechanism`.
pub fn third_country_transfer(spec: &DataProcessorSpec) -> bool {
    !is_eea(&spec.country) && spec.transfer_mechanism.is_none()
}

/// How an erasure request reaches the processor; without a webhook, staff send it by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureChannel {
    /// An HTTPS endpoint that accepts signed erasure requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<ErasureWebhook>,
}

/// What a webhook URL must look like: `https://`, a host (and port) without `user:password@`,
/// then optionally a path, query or fragment. Credentials in the URL would be sent to the
/// processor and could end up in logs; the signature authenticates the request instead. A
/// backslash in the host part is refused too, as URL parsers disagree on what it means.
pub const WEBHOOK_URL_PATTERN: &str = r"^https://[^@/?#\\]+([/?#].*)?$";

/// An HTTPS endpoint for signed erasure requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureWebhook {
    /// The endpoint's URL: https://, without a user name or password. It must reach a public
    /// address unless the operator's --webhook-allow-cidr allows its network.
    #[schemars(pattern(WEBHOOK_URL_PATTERN))]
    pub url: String,
    /// The Secret key holding the HMAC-SHA256 signing secret.
    pub secret_ref: SecretKeyRef,
    /// PEM certificates of CAs trusted for this endpoint, in addition to the system roots
    /// (for a processor whose endpoint uses a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// A key in a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Namespace of the Secret (a DNS-1123 label).
    #[schemars(pattern(DNS1123_LABEL), length(max = DNS1123_LABEL_MAX))]
    pub namespace: String,
    /// Name of the Secret (a DNS-1123 subdomain).
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = DNS1123_SUBDOMAIN_MAX))]
    pub name: String,
    /// Key within the Secret's data: letters, digits, '-', '_' and '.'.
    #[schemars(pattern(SECRET_KEY), length(max = SECRET_KEY_MAX))]
    pub key: String,
}

/// How an erasure request is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErasureDelivery {
    /// Sent automatically to the processor's webhook.
    Webhook,
    /// Requested by staff; the operator raises a ManualActionRequired condition.
    Manual,
}

/// What the operator observed about the processor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessorStatus {
    /// Observations of the processor, such as a missing signing secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(country: &str, mechanism: Option<TransferMechanism>) -> DataProcessorSpec {
        DataProcessorSpec {
            legal_name: "Example Inc.".to_owned(),
            country: country.to_owned(),
            purposes: Vec::new(),
            transfer_mechanism: mechanism,
            erasure: ErasureChannel::default(),
        }
    }

    #[test]
    fn only_a_processor_outside_the_eea_without_a_mechanism_is_flagged() {
        assert!(third_country_transfer(&processor("US", None)));
        assert!(third_country_transfer(&processor("GB", None)));
        for mechanism in [
            TransferMechanism::AdequacyDecision,
            TransferMechanism::StandardContractualClauses,
            TransferMechanism::BindingCorporateRules,
        ] {
            assert!(!third_country_transfer(&processor("US", Some(mechanism))));
        }
        for country in ["SE", "DE", "NO", "IS", "LI"] {
            assert!(
                !third_country_transfer(&processor(country, None)),
                "{country}"
            );
        }
    }

    #[test]
    fn the_mechanism_reads_and_writes_as_in_the_api() {
        let spec: DataProcessorSpec = serde_json::from_value(serde_json::json!({
            "legalName": "Example Inc.", "country": "US",
            "transferMechanism": "StandardContractualClauses"
        }))
        .unwrap();
        assert_eq!(
            spec.transfer_mechanism,
            Some(TransferMechanism::StandardContractualClauses)
        );
        let written = serde_json::to_value(processor("SE", None)).unwrap();
        assert!(written.get("transferMechanism").is_none(), "{written}");
    }

    #[test]
    fn the_schema_lists_every_assigned_country_code() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(DataProcessor::crd()).unwrap();
        let country = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/country")
            .unwrap();
        let codes = country["enum"].as_array().unwrap();
        assert_eq!(codes.len(), 249);
        assert!(codes.contains(&serde_json::json!("SE")));
        assert!(country.get("pattern").is_none(), "{country}");
    }
}
