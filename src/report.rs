//! Renders a [`Plan`] for people (a table per account) or for programs (JSON, docs/design.md §6).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};

use std::collections::BTreeMap;

use crate::retention::{
    AccountPlan, Disposition, Inventory, NotificationDelivery, NotificationPlan, Plan,
    ResourcePlan, TerminationSource, brake,
};

/// The most due objects the preview lists one by one.
const DUE_LISTED: usize = 20;

/// The JSON of docs/design.md §6, pretty-printed.
pub fn json(plan: &Plan) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(plan)
}

/// A readable report: per account, every erasure, retention and notification in time order.
pub fn table(plan: &Plan) -> String {
    let mut out = format!("Plan at {}\n", crate::clock::rfc3339(plan.now));
    if plan.accounts.is_empty() {
        out.push_str("\nNo accounts.\n");
    }
    for account in &plan.accounts {
        out.push('\n');
        out.push_str(&account_section(account, plan.now));
    }
    if !plan.unbound.is_empty() {
        out.push_str("\nBound to no existing account (reported, never deleted):\n");
        for unbound in &plan.unbound {
            let _ = writeln!(
                out,
                "  {} {}/{}: account {:?} not found",
                unbound.resource.kind,
                unbound.resource.namespace,
                unbound.resource.name,
                unbound.account_ref
            );
        }
    }
    if !plan.receipts.is_empty() {
        out.push_str("\nErasure receipts:\n");
        for receipt in &plan.receipts {
            let until = receipt.delete_at.map_or_else(
                || "kept".to_owned(),
                |at| format!("delete at {}", crate::clock::rfc3339(at)),
            );
            let _ = writeln!(
                out,
                "  {} (account {}, erasure time {}, {} object{}): {until}, {}{}",
                receipt.name,
                receipt.account,
                crate::clock::rfc3339(receipt.erasure_at),
                receipt.erased,
                if receipt.erased == 1 { "" } else { "s" },
                receipt.reason,
                if receipt.verified {
                    ""
                } else {
                    "; DIGEST DOES NOT VERIFY: its spec was changed after it was written"
                }
            );
        }
    }
    out
}

/// What the operator would do if started now: the objects due, overdue first, and a summary
/// line with whether a RetentionPolicy's mass-deletion brake would engage.
pub fn due_now(plan: &Plan, inventory: &Inventory) -> String {
    let policy_of: BTreeMap<&str, &str> = inventory
        .accounts
        .iter()
        .filter_map(|a| {
            Some((
                a.metadata.name.as_deref()?,
                a.spec.retention_policy_ref.as_str(),
            ))
        })
        .collect();
    let mut due: Vec<(DateTime<Utc>, &AccountPlan, &ResourcePlan)> = Vec::new();
    let mut held = 0;
    let mut due_by_policy: BTreeMap<String, Vec<Option<DateTime<Utc>>>> = BTreeMap::new();
    for account in &plan.accounts {
        for resource in account.resources.iter().filter(|r| r.is_due(plan.now)) {
            if account.erasure_suspended {
                held += 1;
                continue;
            }
            let at = resource.schedule.delete_at.unwrap_or(plan.now);
            due.push((at, account, resource));
            if let Some(policy) = policy_of.get(account.name.as_str()) {
                due_by_policy
                    .entry((*policy).to_owned())
                    .or_default()
                    .push(resource.schedule.delete_at);
            }
        }
    }
    due.sort_by(|a, b| {
        (a.0, &a.1.name, &a.2.resource.to_string()).cmp(&(
            b.0,
            &b.1.name,
            &b.2.resource.to_string(),
        ))
    });
    let mut out = String::new();
    if !due.is_empty() {
        out.push_str("\nDue now, overdue first:\n");
        for (at, account, resource) in due.iter().take(DUE_LISTED) {
            let _ = writeln!(
                out,
                "  {}  {} (account {}): {}",
                crate::clock::rfc3339(*at),
                resource.resource,
                account.name,
                resource.schedule.reason
            );
        }
        if due.len() > DUE_LISTED {
            let _ = writeln!(out, "  … and {} more", due.len() - DUE_LISTED);
        }
    }
    let accounts: std::collections::BTreeSet<&str> =
        due.iter().map(|(_, a, _)| a.name.as_str()).collect();
    out.push_str(&summary_line(
        plan,
        inventory,
        &due_by_policy,
        (due.len(), accounts.len(), held),
    ));
    out
}

/// `N objects due now across M accounts; brake would engage: yes|no`, naming each policy whose
/// brake would engage.
fn summary_line(
    plan: &Plan,
    inventory: &Inventory,
    due_by_policy: &BTreeMap<String, Vec<Option<DateTime<Utc>>>>,
    (due, accounts, held): (usize, usize, usize),
) -> String {
    let mut out = String::new();
    let previews = brake::preview(
        &inventory.policies,
        &inventory.brakes,
        due_by_policy,
        plan.now,
    );
    let engaging: Vec<String> = previews
        .iter()
        .filter(|p| p.engages())
        .map(|p| {
            format!(
                "RetentionPolicy {}: {} due, room for {} of maxDeletions {} per {}",
                p.policy, p.due, p.room, p.limit.max_deletions, p.limit.per
            )
        })
        .collect();
    let _ = write!(
        out,
        "\n{due} objects due now across {accounts} accounts; brake would engage: "
    );
    if engaging.is_empty() {
        out.push_str("no");
    } else {
        let _ = write!(out, "yes ({})", engaging.join("; "));
    }
    if held > 0 {
        let _ = write!(out, "; {held} more held by a suspended RetentionPolicy");
    }
    out.push('\n');
    out
}

fn account_section(account: &AccountPlan, now: DateTime<Utc>) -> String {
    let mut header = format!(
        "Account {} (customer {}): {:?}, phase {}",
        account.name,
        account.customer_ref,
        account.state,
        account.phase.as_str()
    );
    if let Some(at) = account.terminated_at {
        let _ = write!(header, ", terminated {}", crate::clock::rfc3339(at));
        if account
            .termination
            .is_some_and(|t| t.source == TerminationSource::Deletion)
        {
            header.push_str(" (its Account object was deleted)");
        }
    }
    if let Some(hold) = account.legal_hold {
        match hold.until {
            Some(until) if until <= now => {
                let _ = write!(
                    header,
                    ", legal hold ended {} (no longer in force)",
                    crate::clock::rfc3339(until)
                );
            }
            Some(until) => {
                let _ = write!(
                    header,
                    ", legal hold until {}",
                    crate::clock::rfc3339(until)
                );
            }
            None => header.push_str(", legal hold without end date"),
        }
    }
    if account.erasure_suspended {
        header.push_str(", erasure suspended by its RetentionPolicy (nothing is deleted or sent)");
    }
    let mut rows: Vec<Row> = account
        .resources
        .iter()
        .map(|r| resource_row(r, now))
        .chain(
            account
                .notifications
                .iter()
                .map(|n| notification_row(n, now)),
        )
        .collect();
    // Time order, unscheduled last; a notification follows the erasure that triggers it.
    rows.sort_by_key(|row| (row.at.is_none(), row.at));
    let transfers = transfer_lines(account);
    if rows.is_empty() {
        return format!("{header}\n  Nothing is bound to this account.\n{transfers}");
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(["WHEN", "ACTION", "OBJECT", "BASIS", "WHY"]);
    for row in rows {
        table.add_row(row.cells);
    }
    let body = table
        .lines()
        .map(|line| format!("  {}", line.trim_end()))
        .collect::<Vec<_>>()
        .join("\n");
    format!("{header}\n{body}\n{transfers}")
}

/// One line per processor holding the account's data outside the EU/EEA without a transfer
/// mechanism (GDPR Chapter V).
fn transfer_lines(account: &AccountPlan) -> String {
    account
        .third_country_transfers
        .iter()
        .map(|t| {
            format!(
                "  third-country transfer: {} without a transfer mechanism\n",
                t.label()
            )
        })
        .collect()
}

struct Row {
    at: Option<DateTime<Utc>>,
    cells: [String; 5],
}

fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        Some(at) if at <= now => format!("{} (due)", crate::clock::rfc3339(at)),
        Some(at) => crate::clock::rfc3339(at),
        None => "-".to_owned(),
    }
}

fn resource_row(plan: &ResourcePlan, now: DateTime<Utc>) -> Row {
    let action = match plan.schedule.disposition {
        Disposition::Keep => "keep",
        Disposition::Erase => "erase",
        Disposition::Retain => "retain, then erase",
        Disposition::Expire => "expire",
    };
    Row {
        at: plan.schedule.delete_at,
        cells: [
            when(plan.schedule.delete_at, now),
            action.to_owned(),
            format!(
                "{} {}/{}",
                plan.resource.kind, plan.resource.namespace, plan.resource.name
            ),
            plan.schedule.legal_basis.as_str().to_owned(),
            plan.schedule.reason.clone(),
        ],
    }
}

fn notification_row(notification: &NotificationPlan, now: DateTime<Utc>) -> Row {
    let how = match notification.delivery {
        NotificationDelivery::Webhook => "by webhook",
        NotificationDelivery::Manual => "manually by staff",
        NotificationDelivery::UnknownProcessor => {
            "UNKNOWN DataProcessor: create it or fix the reference"
        }
    };
    let names: Vec<String> = notification
        .resources
        .iter()
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    Row {
        at: Some(notification.at),
        cells: [
            when(Some(notification.at), now),
            "notify".to_owned(),
            format!("DataProcessor {}", notification.processor),
            "Art. 19".to_owned(),
            format!("request erasure of {} ({how})", names.join(", ")),
        ],
    }
}
