//! Third-country transfers (GDPR Chapter V): which processors holding an account's data are
//! established outside the EU/EEA without a declared transfer mechanism.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::plan::ResourcePlan;
use crate::api::{DataProcessorSpec, third_country_transfer};

/// Condition type, on a DataProcessor and on the Accounts whose data it holds: personal data
/// is transferred outside the EU/EEA without a declared transfer mechanism.
pub const THIRD_COUNTRY_TRANSFER: &str = "ThirdCountryTransfer";

/// A processor that holds data of the account in a third country without a safeguard.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThirdCountryTransfer {
    /// Name of the DataProcessor.
    pub processor: String,
    /// Its registered company name.
    pub legal_name: String,
    /// Its country of establishment (ISO 3166-1 alpha-2).
    pub country: String,
}

impl ThirdCountryTransfer {
    /// `<processor> (<country>)`, as conditions and reports name it.
    pub fn label(&self) -> String {
        format!("{} ({})", self.processor, self.country)
    }
}

/// The flagged processors among those holding a copy of `resources`, by name. A name that
/// matches no DataProcessor is reported elsewhere (`UnboundResources`), not here.
pub fn third_country_transfers(
    resources: &[ResourcePlan],
    processors: &BTreeMap<String, DataProcessorSpec>,
) -> Vec<ThirdCountryTransfer> {
    let named: BTreeSet<&str> = resources
        .iter()
        .flat_map(|r| r.processors.iter().map(String::as_str))
        .collect();
    named
        .into_iter()
        .filter_map(|name| {
            let spec = processors.get(name)?;
            third_country_transfer(spec).then(|| ThirdCountryTransfer {
                processor: name.to_owned(),
                legal_name: spec.legal_name.clone(),
                country: spec.country.clone(),
            })
        })
        .collect()
}
