//! The fields every hosted resource shares: which account it belongs to and on what legal basis
//! it is processed.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::names::{DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX};

/// Binds a hosted resource to its Account and states the legal basis of the processing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.legalBasis) || self.legalBasis != 'Consent' || has(self.consentPurpose)"
).message("consentPurpose is required when legalBasis is Consent").reason(kube::core::Reason::FieldValueRequired))]
pub struct AccountBinding {
    /// Name of the Account this resource belongs to (a DNS-1123 subdomain). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("accountRef is immutable"))]
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = DNS1123_SUBDOMAIN_MAX))]
    pub account_ref: String,
    /// Name of a DataProcessor that also holds this data and must be told to erase it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(max = DNS1123_SUBDOMAIN_MAX))]
    pub processor_ref: Option<String>,
    /// The GDPR Art. 6 basis on which the data is processed.
    #[serde(default)]
    pub legal_basis: LegalBasis,
    /// The consent purpose (a key of the Account's `consents`) when `legalBasis` is Consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_purpose: Option<String>,
}

/// A legal basis for processing personal data (GDPR Art. 6(1)).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum LegalBasis {
    /// Art. 6(1)(b): needed to perform the customer's contract.
    #[default]
    Contract,
    /// Art. 6(1)(c): required by law, such as the Bookkeeping Act.
    LegalObligation,
    /// Art. 6(1)(f): the provider's legitimate interest.
    LegitimateInterest,
    /// Art. 6(1)(a): the customer's consent for a named purpose.
    Consent,
}

impl LegalBasis {
    /// The name used in the API and in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contract => "Contract",
            Self::LegalObligation => "LegalObligation",
            Self::LegitimateInterest => "LegitimateInterest",
            Self::Consent => "Consent",
        }
    }
}
