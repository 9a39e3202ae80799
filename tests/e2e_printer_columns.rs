//! End to end: what `kubectl get` shows of the operator's objects while it runs. The Account's
//! Ready and Hold columns come from its conditions, a bound object's Bound column from its
//! `Bound` condition, a Backup shows its Age. kubectl 1.35 asks the API server for a table, so
//! the columns are the CRDs' printer columns as the server evaluates them. Runs against the
//! test server and, with `RETENTION_E2E_KUBECONFIG`, the real control plane.

mod e2e_support;
mod tools;

use retention_operator::api::AccountPhase;

use e2e_support::{
    AccountExt, Harness, account, at, backup, create, create_cluster, default_policy, eventually,
    kubeconfig_file, wait_phase, website,
};

/// The row of `name` in a `kubectl get` table, as a map from column header to value.
fn row(table: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut lines = table.lines();
    let header = lines.next()?;
    // Columns start where their header starts; headers are single words or words joined by
    // one space ("NEXT DELETION"), and two spaces at least separate columns.
    let mut starts = Vec::new();
    let mut previous_blank = 2;
    for (i, c) in header.char_indices() {
        if c != ' ' && previous_blank >= 2 {
            starts.push(i);
        }
        previous_blank = if c == ' ' { previous_blank + 1 } else { 0 };
    }
    let line = lines.find(|l| l.split_whitespace().any(|cell| cell == name))?;
    let cell = |from: usize, to: Option<usize>| -> String {
        let end = to.unwrap_or(line.len()).min(line.len());
        line.get(from.min(end)..end).unwrap_or("").trim().to_owned()
    };
    Some(
        starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = starts.get(i + 1).copied();
                (
                    header[start..end.unwrap_or(header.len())].trim().to_owned(),
                    cell(start, end),
                )
            })
            .collect(),
    )
}

fn column<'a>(row: &'a [(String, String)], header: &str) -> Option<&'a str> {
    row.iter()
        .find(|(h, _)| h == header)
        .map(|(_, value)| value.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_shows_ready_hold_bound_and_age() {
    let harness = Harness::start(at("2026-11-02T00:00:00Z")).await;
    let client = harness.client.clone();
    create_cluster(&client, &default_policy()).await;
    create_cluster(&client, &account("cols-live")).await;
    create_cluster(
        &client,
        &account("cols-held")
            .terminated_at("2026-11-01T00:00:00Z")
            .hold(None::<&str>),
    )
    .await;
    create(&client, &website("cols-www", "cols-live")).await;
    create(&client, &website("cols-orphan", "cols-nobody")).await;
    create(
        &client,
        &backup("cols-bkp", "cols-live", "cols-db", "2026-11-01T02:00:00Z"),
    )
    .await;
    wait_phase(&client, "cols-live", AccountPhase::Active).await;
    wait_phase(&client, "cols-held", AccountPhase::OnHold).await;

    let dir = tempfile_dir();
    let kubeconfig = kubeconfig_file(harness.test_server(), &dir);
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    let get = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "get"];
        all.extend_from_slice(args);
        tools::run(tools::kubectl(), &all)
    };

    let accounts = get(&["accounts"]);
    let live = row(&accounts, "cols-live").unwrap_or_else(|| panic!("{accounts}"));
    assert_eq!(column(&live, "READY"), Some("True"), "{accounts}");
    assert_eq!(column(&live, "HOLD"), Some("False"), "{accounts}");
    let held = row(&accounts, "cols-held").unwrap_or_else(|| panic!("{accounts}"));
    assert_eq!(column(&held, "HOLD"), Some("True"), "{accounts}");

    let websites = eventually("the orphan reported on its status", || {
        let websites = get(&["websites", "-A"]);
        let orphan = row(&websites, "cols-orphan");
        let reported = orphan.is_some_and(|r| column(&r, "BOUND") == Some("False"));
        async move { reported.then_some(websites) }
    })
    .await;
    let bound = row(&websites, "cols-www").unwrap_or_else(|| panic!("{websites}"));
    assert_eq!(
        column(&bound, "BOUND"),
        Some(""),
        "a bound object carries no condition until it was unbound once:\n{websites}"
    );

    let backups = get(&["backups", "-A"]);
    let backup = row(&backups, "cols-bkp").unwrap_or_else(|| panic!("{backups}"));
    assert!(
        column(&backup, "AGE").is_some_and(|age| !age.is_empty()),
        "{backups}"
    );
    assert!(column(&backup, "EXPIRES").is_some(), "{backups}");
    let _ = std::fs::remove_dir_all(&dir);
    harness.stop().await;
}

/// A directory of this test's own.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("retention-columns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
