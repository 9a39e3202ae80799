//! Renders a [`Plan`] for people (a table per account) or for programs (JSON, docs/design.md §6).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};

use crate::retention::{
    AccountPlan, Disposition, NotificationDelivery, NotificationPlan, Plan, ResourcePlan,
};

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
    }
    if let Some(hold) = account.legal_hold {
        match hold.until {
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
    if rows.is_empty() {
        return format!("{header}\n  Nothing is bound to this account.\n");
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
    format!("{header}\n{body}\n")
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
