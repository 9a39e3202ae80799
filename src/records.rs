//! `retention-operator records`: the record of processing activities (GDPR Art. 30(1)) as the
//! objects that exist state it.
//!
//! [`derive()`] is a pure function of the objects `plan` reads (an [`Inventory`], from manifests
//! or from a live cluster): per category of personal data (each bound kind, and each
//! DataRecord `category`), the purposes, the legal bases as the retention rules see them, the
//! recipients, the third-country transfers and the retention periods. [`markdown`], [`json`]
//! and [`csv`] render it. Only counts of objects appear, never an account's name or its
//! `customerRef`: the record describes the processing, not the people.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde::Serialize;

use crate::{
    api::{
        DataCategory, DataProcessorSpec, LegalBasis, RetentionDuration, RetentionPolicySpec,
        TransferMechanism, is_eea,
    },
    kinds::ResourceKind,
    retention::{Inventory, PlanError, ResourceFacts},
};

/// The record of processing activities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    /// How many objects the record was derived from.
    pub derived_from: Counts,
    /// One entry per category of personal data, bound kinds first (in the registry's order),
    /// then DataRecord categories.
    pub categories: Vec<CategoryRecord>,
    /// The DataProcessors that hold data of some account, by name.
    pub recipients: Vec<Recipient>,
    /// Processor names that objects refer to but that no DataProcessor has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_recipients: Vec<String>,
    /// DataProcessors that exist but hold no data of any account now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idle_processors: Vec<String>,
    /// Every recipient established outside the EU/EEA, with its safeguard.
    pub third_country_transfers: Vec<Transfer>,
    /// The retention periods of each RetentionPolicy, by name.
    pub retention_policies: Vec<PolicyRetention>,
}

/// Counts of the objects a record was derived from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Accounts.
    pub accounts: usize,
    /// Bound objects of every kind.
    pub objects: usize,
    /// DataProcessors.
    pub data_processors: usize,
    /// RetentionPolicies.
    pub retention_policies: usize,
}

/// One category of personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRecord {
    /// `Website`, …, `Backup`, or `DataRecord <category>`.
    pub category: String,
    /// The kind the data is held in.
    pub kind: ResourceKind,
    /// The DataRecord category, for DataRecords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_category: Option<DataCategory>,
    /// Objects of the category.
    pub objects: usize,
    /// The consent purposes the data is processed for (`consentPurpose` of the objects under
    /// Consent).
    pub consent_purposes: Vec<String>,
    /// The purposes of each recipient holding data of the category, by recipient.
    pub recipient_purposes: BTreeMap<String, Vec<String>>,
    /// The legal bases in use, as the retention rules see them.
    pub legal_bases: Vec<LegalBasis>,
    /// The DataProcessors holding data of the category.
    pub recipients: Vec<String>,
    /// When the data is erased, per RetentionPolicy in use.
    pub retention: Vec<RetentionRule>,
}

/// A retention rule of a category under one RetentionPolicy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRule {
    /// The RetentionPolicy.
    pub policy: String,
    /// The rule, in words.
    pub rule: String,
}

/// A DataProcessor that holds data of some account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// Name of the DataProcessor.
    pub name: String,
    /// Its registered company name.
    pub legal_name: String,
    /// Its country of establishment (ISO 3166-1 alpha-2).
    pub country: String,
    /// What it does with the data.
    pub purposes: Vec<String>,
    /// The categories of data it holds.
    pub categories: Vec<String>,
    /// Its declared transfer mechanism, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_mechanism: Option<TransferMechanism>,
}

/// A transfer to a recipient outside the EU/EEA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Name of the DataProcessor.
    pub processor: String,
    /// Its registered company name.
    pub legal_name: String,
    /// Its country of establishment.
    pub country: String,
    /// The safeguard; `None` when none is declared.
    pub mechanism: Option<TransferMechanism>,
    /// True when no safeguard is declared: a third-country transfer the operator flags.
    pub flagged: bool,
}

/// The retention periods of one RetentionPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRetention {
    /// Name of the RetentionPolicy.
    pub name: String,
    /// Accounts that use it.
    pub accounts: usize,
    /// The grace period after termination of each hosted kind.
    pub grace_periods: BTreeMap<ResourceKind, RetentionDuration>,
    /// Days every backup is kept.
    pub backups_keep_daily: u32,
    /// Weeks the newest backup of each ISO week is kept.
    pub backups_keep_weekly: u32,
    /// Months the newest backup of each month is kept.
    pub backups_keep_monthly: u32,
    /// The most any backup outlives its account's termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups_after_termination: Option<RetentionDuration>,
    /// Years bookkeeping data is kept (Bookkeeping Act).
    pub bookkeeping_years: u32,
    /// How long an ErasureReceipt is kept after its erasure completed.
    pub receipts_keep_for: RetentionDuration,
    /// Erasure is suspended under the policy.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
}

/// What one category gathers from its objects.
#[derive(Default)]
struct Gathered<'a> {
    objects: usize,
    bases: BTreeSet<LegalBasis>,
    consent_purposes: BTreeSet<&'a str>,
    processors: BTreeSet<&'a str>,
    policies: BTreeSet<&'a str>,
    /// Some object follows the grace period (neither bookkeeping nor a backup).
    grace: bool,
    /// Some object is kept under the Bookkeeping Act.
    bookkeeping: bool,
    /// Some object is processed under consent.
    consent: bool,
}

/// The key of a category: its kind, and a DataRecord's category.
type CategoryKey = (ResourceKind, Option<DataCategory>);

/// Each Account's RetentionPolicy, by account name; refused when the policy does not exist.
fn policies_of(inventory: &Inventory) -> Result<BTreeMap<&str, &str>, PlanError> {
    let mut policy_of = BTreeMap::new();
    for account in &inventory.accounts {
        let name = account.metadata.name.as_deref().unwrap_or_default();
        let policy = account.spec.retention_policy_ref.as_str();
        if !inventory.policies.contains_key(policy) {
            return Err(PlanError::PolicyMissing {
                account: name.to_owned(),
                policy: policy.to_owned(),
            });
        }
        policy_of.insert(name, policy);
    }
    Ok(policy_of)
}

/// What each category's objects state.
fn gather<'a>(
    inventory: &'a Inventory,
    policy_of: &BTreeMap<&str, &'a str>,
) -> BTreeMap<CategoryKey, Gathered<'a>> {
    let mut gathered: BTreeMap<CategoryKey, Gathered<'a>> = BTreeMap::new();
    for resource in &inventory.resources {
        let key = match &resource.facts {
            ResourceFacts::Hosted(facts) => (facts.kind, facts.data_category),
            ResourceFacts::Backup(_) => (ResourceKind::Backup, None),
        };
        let entry = gathered.entry(key).or_default();
        entry.objects += 1;
        entry
            .policies
            .extend(policy_of.get(resource.account.as_str()).copied());
        match &resource.facts {
            ResourceFacts::Hosted(facts) => {
                // As the rules see it: the Bookkeeping Act overrides the declared basis.
                let bookkeeping = facts.fiscal_year_end.is_some();
                let basis = if bookkeeping {
                    LegalBasis::LegalObligation
                } else {
                    facts.legal_basis
                };
                entry.bases.insert(basis);
                entry.bookkeeping |= bookkeeping;
                entry.grace |= !bookkeeping;
                if basis == LegalBasis::Consent {
                    entry.consent = true;
                    entry
                        .consent_purposes
                        .extend(facts.consent_purpose.as_deref());
                }
                entry
                    .processors
                    .extend(facts.processors.iter().map(String::as_str));
            }
            // Backups are kept on the backup schedule, in the provider's legitimate interest.
            ResourceFacts::Backup(_) => {
                entry.bases.insert(LegalBasis::LegitimateInterest);
            }
        }
    }
    gathered
}

/// Derives the record of processing activities from the objects. An Account whose
/// RetentionPolicy does not exist is refused as `plan` refuses it.
pub fn derive(inventory: &Inventory) -> Result<Records, PlanError> {
    let policy_of = policies_of(inventory)?;
    let gathered = gather(inventory, &policy_of);
    let categories: Vec<CategoryRecord> = gathered
        .iter()
        .map(|(key, g)| category_record(*key, g, inventory))
        .collect();
    let named: BTreeSet<&str> = gathered
        .values()
        .flat_map(|g| g.processors.iter().copied())
        .collect();
    let recipients: Vec<Recipient> = named
        .iter()
        .filter_map(|name| {
            let spec = inventory.processors.get(*name)?;
            Some(recipient(name, spec, &categories))
        })
        .collect();
    Ok(Records {
        derived_from: Counts {
            accounts: inventory.accounts.len(),
            objects: inventory.resources.len(),
            data_processors: inventory.processors.len(),
            retention_policies: inventory.policies.len(),
        },
        categories,
        third_country_transfers: recipients
            .iter()
            .filter(|r| !is_eea(&r.country))
            .map(|r| Transfer {
                processor: r.name.clone(),
                legal_name: r.legal_name.clone(),
                country: r.country.clone(),
                mechanism: r.transfer_mechanism,
                flagged: r.transfer_mechanism.is_none(),
            })
            .collect(),
        recipients,
        unknown_recipients: named
            .iter()
            .filter(|name| !inventory.processors.contains_key(**name))
            .map(|name| (*name).to_owned())
            .collect(),
        idle_processors: inventory
            .processors
            .keys()
            .filter(|name| !named.contains(name.as_str()))
            .cloned()
            .collect(),
        retention_policies: inventory
            .policies
            .iter()
            .map(|(name, spec)| policy_retention(name, spec, &policy_of))
            .collect(),
    })
}

fn category_name((kind, data_category): CategoryKey) -> String {
    match data_category {
        Some(category) => format!("{kind} {}", category.as_str()),
        None => kind.as_str().to_owned(),
    }
}

fn category_record(key: CategoryKey, g: &Gathered<'_>, inventory: &Inventory) -> CategoryRecord {
    let recipient_purposes = g
        .processors
        .iter()
        .filter_map(|name| {
            let spec = inventory.processors.get(*name)?;
            Some(((*name).to_owned(), spec.purposes.clone()))
        })
        .collect();
    let mut retention = Vec::new();
    for policy in &g.policies {
        let Some(spec) = inventory.policies.get(*policy) else {
            continue;
        };
        let rule = |rule: String| RetentionRule {
            policy: (*policy).to_owned(),
            rule,
        };
        if key.0 == ResourceKind::Backup {
            retention.push(rule(backup_rule(spec)));
            continue;
        }
        if g.consent {
            retention.push(rule(
                "erased at once when the consent is not given or withdrawn".to_owned(),
            ));
        }
        if g.grace {
            retention.push(rule(format!(
                "kept while the account is active or suspended; erased {} after its termination",
                spec.grace_for(key.0)
            )));
        }
        if g.bookkeeping {
            retention.push(rule(format!(
                "bookkeeping data kept {} years after the end of the calendar year in which its \
                 fiscal year ended (Bookkeeping Act 1999:1078, 7 kap. 2 §), then erased",
                spec.bookkeeping.years
            )));
        }
    }
    CategoryRecord {
        category: category_name(key),
        kind: key.0,
        data_category: key.1,
        objects: g.objects,
        consent_purposes: g.consent_purposes.iter().map(|p| (*p).to_owned()).collect(),
        recipient_purposes,
        legal_bases: g.bases.iter().copied().collect(),
        recipients: g.processors.iter().map(|p| (*p).to_owned()).collect(),
        retention,
    }
}

fn backup_rule(spec: &RetentionPolicySpec) -> String {
    let b = &spec.backups;
    let mut rule = format!(
        "every backup kept {} days, the newest of each ISO week {} weeks, the newest of each \
         month {} months after it was taken",
        b.keep_daily, b.keep_weekly, b.keep_monthly
    );
    if let Some(cap) = b.after_termination {
        let _ = write!(rule, "; none kept longer than {cap} after the termination");
    }
    rule
}

fn recipient(name: &str, spec: &DataProcessorSpec, categories: &[CategoryRecord]) -> Recipient {
    Recipient {
        name: name.to_owned(),
        legal_name: spec.legal_name.clone(),
        country: spec.country.clone(),
        purposes: spec.purposes.clone(),
        categories: categories
            .iter()
            .filter(|c| c.recipients.iter().any(|r| r == name))
            .map(|c| c.category.clone())
            .collect(),
        transfer_mechanism: spec.transfer_mechanism,
    }
}

fn policy_retention(
    name: &str,
    spec: &RetentionPolicySpec,
    policy_of: &BTreeMap<&str, &str>,
) -> PolicyRetention {
    PolicyRetention {
        name: name.to_owned(),
        accounts: policy_of.values().filter(|p| **p == name).count(),
        grace_periods: ResourceKind::hosted()
            .map(|kind| (kind, spec.grace_for(kind)))
            .collect(),
        backups_keep_daily: spec.backups.keep_daily,
        backups_keep_weekly: spec.backups.keep_weekly,
        backups_keep_monthly: spec.backups.keep_monthly,
        backups_after_termination: spec.backups.after_termination,
        bookkeeping_years: spec.bookkeeping.years,
        receipts_keep_for: spec.receipts_keep_for(),
        suspended: spec.suspend,
    }
}

/// The record as pretty-printed JSON.
pub fn json(records: &Records) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(records).map(|json| json + "\n")
}

/// The header of [`csv`].
pub const CSV_HEADER: &str = "category,objects,consent_purposes,recipient_purposes,legal_bases,\
                              recipients,third_country_transfers,retention";

/// The record as CSV: one row per category, lists joined with `; `.
pub fn csv(records: &Records) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for category in &records.categories {
        let transfers: Vec<String> = records
            .third_country_transfers
            .iter()
            .filter(|t| category.recipients.contains(&t.processor))
            .map(transfer_text)
            .collect();
        let retention: Vec<String> = category
            .retention
            .iter()
            .map(|r| format!("{}: {}", r.policy, r.rule))
            .collect();
        let bases: Vec<&str> = category.legal_bases.iter().map(|b| b.as_str()).collect();
        let fields = [
            category.category.clone(),
            category.objects.to_string(),
            category.consent_purposes.join("; "),
            recipient_purposes(category).join("; "),
            bases.join("; "),
            category.recipients.join("; "),
            transfers.join("; "),
            retention.join("; "),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `<processor> (<country>): <mechanism>`, or `none — flagged`.
fn transfer_text(transfer: &Transfer) -> String {
    format!(
        "{} ({}): {}",
        transfer.processor,
        transfer.country,
        transfer
            .mechanism
            .map_or("none — flagged", TransferMechanism::as_str)
    )
}

/// Text for a Markdown table cell: `|` escaped, line breaks as spaces.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

/// The record as Markdown, for people.
pub fn markdown(records: &Records) -> String {
    let mut out = String::new();
    let counts = records.derived_from;
    let _ = writeln!(
        out,
        "# Record of processing activities (GDPR Art. 30(1))\n\n\
         Derived by retention-operator from the objects that exist: {}, {}, {} and {}. It \
         names no customer.\n\n\
         Not held in these objects, to be completed by the controller: the controller's name \
         and contact details (a), the categories of data subjects (c: the customers whose \
         accounts these are and the people whose data they host), and the security measures \
         (g). The purposes listed are those the objects state: the consent purposes and the \
         recipients' purposes; what data under Contract, LegalObligation or \
         LegitimateInterest serves is for the controller to describe.",
        count(counts.accounts, "Account", "Accounts"),
        count(counts.objects, "bound object", "bound objects"),
        count(counts.data_processors, "DataProcessor", "DataProcessors"),
        count(
            counts.retention_policies,
            "RetentionPolicy",
            "RetentionPolicies"
        ),
    );
    out.push_str("\n## Categories of personal data\n");
    if records.categories.is_empty() {
        out.push_str("\nNo objects hold personal data.\n");
    }
    for category in &records.categories {
        category_section(&mut out, category, records);
    }
    recipients_section(&mut out, records);
    transfers_section(&mut out, records);
    policies_section(&mut out, records);
    out
}

fn category_section(out: &mut String, category: &CategoryRecord, records: &Records) {
    let _ = writeln!(out, "\n### {}\n", category.category);
    let _ = writeln!(out, "- Objects: {}", category.objects);
    let _ = writeln!(
        out,
        "- Purposes under consent: {}",
        list_or(&category.consent_purposes, "none")
    );
    let _ = writeln!(
        out,
        "- Purposes of the recipients: {}",
        list_or(&recipient_purposes(category), "none")
    );
    let bases: Vec<String> = category
        .legal_bases
        .iter()
        .map(|b| legal_basis_text(*b).to_owned())
        .collect();
    let _ = writeln!(out, "- Legal bases: {}", bases.join(", "));
    let _ = writeln!(
        out,
        "- Recipients: {}",
        list_or(&category.recipients, "none")
    );
    let transfers: Vec<String> = records
        .third_country_transfers
        .iter()
        .filter(|t| category.recipients.contains(&t.processor))
        .map(transfer_text)
        .collect();
    let _ = writeln!(
        out,
        "- Third-country transfers: {}",
        list_or(&transfers, "none")
    );
    if category.retention.is_empty() {
        out.push_str("- Retention: no RetentionPolicy applies (no existing Account)\n");
    } else {
        out.push_str("- Retention:\n");
        for rule in &category.retention {
            let _ = writeln!(out, "  - {} (RetentionPolicy {})", rule.rule, rule.policy);
        }
    }
}

/// `<purpose> (<recipient>)`, sorted by purpose.
fn recipient_purposes(category: &CategoryRecord) -> Vec<String> {
    let mut purposes: Vec<String> = category
        .recipient_purposes
        .iter()
        .flat_map(|(recipient, purposes)| {
            purposes.iter().map(move |p| format!("{p} ({recipient})"))
        })
        .collect();
    purposes.sort();
    purposes
}

/// `1 Account`, `2 Accounts`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn legal_basis_text(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Contract => "Contract (Art. 6(1)(b))",
        LegalBasis::LegalObligation => "LegalObligation (Art. 6(1)(c))",
        LegalBasis::LegitimateInterest => "LegitimateInterest (Art. 6(1)(f))",
        LegalBasis::Consent => "Consent (Art. 6(1)(a))",
    }
}

fn recipients_section(out: &mut String, records: &Records) {
    out.push_str("\n## Recipients (data processors)\n\n");
    if records.recipients.is_empty() {
        out.push_str("No DataProcessor holds data of any account.\n");
    } else {
        out.push_str(
            "| Processor | Legal name | Country | Purposes | Categories |\n\
             | --- | --- | --- | --- | --- |\n",
        );
        for r in &records.recipients {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&r.name),
                cell(&r.legal_name),
                cell(&r.country),
                cell(&list_or(&r.purposes, "-")),
                cell(&r.categories.join(", "))
            );
        }
    }
    if !records.unknown_recipients.is_empty() {
        let _ = writeln!(
            out,
            "\nNamed by objects but no DataProcessor of that name exists (create it or fix the \
             reference): {}.",
            records.unknown_recipients.join(", ")
        );
    }
    if !records.idle_processors.is_empty() {
        let _ = writeln!(
            out,
            "\nDataProcessors that hold no data of any account now: {}.",
            records.idle_processors.join(", ")
        );
    }
}

fn transfers_section(out: &mut String, records: &Records) {
    out.push_str("\n## Transfers to third countries (outside the EU/EEA)\n\n");
    if records.third_country_transfers.is_empty() {
        out.push_str("None: every recipient is established in the EU/EEA.\n");
        return;
    }
    out.push_str(
        "| Processor | Legal name | Country | Transfer mechanism |\n\
         | --- | --- | --- | --- |\n",
    );
    for t in &records.third_country_transfers {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&t.processor),
            cell(&t.legal_name),
            cell(&t.country),
            t.mechanism
                .map_or("none — flagged", TransferMechanism::as_str)
        );
    }
}

fn policies_section(out: &mut String, records: &Records) {
    out.push_str(
        "\n## Retention periods (RetentionPolicies)\n\nA legal hold on an account postpones \
         every erasure of its data while it stands.\n",
    );
    if records.retention_policies.is_empty() {
        out.push_str("\nNo RetentionPolicy exists.\n");
    }
    for p in &records.retention_policies {
        let _ = writeln!(
            out,
            "\n### {} (used by {})\n",
            p.name,
            count(p.accounts, "account", "accounts")
        );
        if p.suspended {
            out.push_str(
                "- Suspended: nothing is erased under it until the suspension is lifted\n",
            );
        }
        let grace: Vec<String> = p
            .grace_periods
            .iter()
            .map(|(kind, period)| format!("{kind} {period}"))
            .collect();
        let _ = writeln!(
            out,
            "- Grace period after termination: {}",
            grace.join(", ")
        );
        let _ = write!(
            out,
            "- Backups: every backup {} days, the newest of each ISO week {} weeks, the newest \
             of each month {} months",
            p.backups_keep_daily, p.backups_keep_weekly, p.backups_keep_monthly
        );
        match p.backups_after_termination {
            Some(cap) => {
                let _ = writeln!(out, "; at most {cap} after termination");
            }
            None => out.push('\n'),
        }
        let _ = writeln!(
            out,
            "- Bookkeeping data: {} years (Bookkeeping Act 1999:1078, 7 kap. 2 §)",
            p.bookkeeping_years
        );
        let _ = writeln!(
            out,
            "- Erasure receipts (the proof of erasure): kept {} after the erasure completed",
            p.receipts_keep_for
        );
    }
}
