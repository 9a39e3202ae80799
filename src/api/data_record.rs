//! DataRecord: personal data held outside the cluster, such as a CRM entry or invoices.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::hosted::hosted_kind;

hosted_kind! {
    /// Personal data held outside the cluster; erasing it means notifying its processor and
    /// then deleting the record.
    kind = "DataRecord", shortname = "drec", doc = "Personal data held outside the cluster";
    pub struct DataRecordSpec {
        /// What kind of data this is.
        pub category: DataCategory,
        /// Present when the Bookkeeping Act requires the data to be kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bookkeeping: Option<Bookkeeping>,
    }
}

/// The categories of externally held personal data.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    Crm,
    Support,
    Invoices,
    Marketing,
    Analytics,
    CallRecordings,
}

impl DataCategory {
    /// The name used in the API (`category:`) and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Support => "support",
            Self::Invoices => "invoices",
            Self::Marketing => "marketing",
            Self::Analytics => "analytics",
            Self::CallRecordings => "call-recordings",
        }
    }
}

/// Bookkeeping Act (bokföringslagen 1999:1078, 7 kap. 2 §) facts about a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bookkeeping {
    /// Last day of the fiscal year the record belongs to.
    pub fiscal_year_end: NaiveDate,
}
