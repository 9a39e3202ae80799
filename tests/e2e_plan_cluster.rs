//! End to end: `plan --cluster` reads a live cluster (read only) and prints the same plan as
//! `plan -f` on the same objects exported with `kubectl get -o yaml`, with the summary line
//! and whether the brake would engage; `records --cluster` the same record as `records -f`. Runs against the test server and, with
//! `RETENTION_E2E_KUBECONFIG`, against the real control plane.

mod e2e_support;
mod tools;

use std::path::PathBuf;

use retention_operator::api::BrakeSpec;

use e2e_support::{
    AccountExt, Cluster, HostedExt, account, create, create_cluster, data_record, default_policy,
    kubeconfig_file, processor, run_operator, website, website_backup,
};
use tools::run_kubectl;

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "retention-plan-cluster-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The instant both plans are made for.
const NOW: &str = "2026-12-15T00:00:00Z";

#[tokio::test(flavor = "multi_thread")]
async fn plan_cluster_prints_the_plan_of_the_same_objects_exported_with_kubectl() {
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    let mut policy = default_policy();
    policy.spec.brake = Some(BrakeSpec {
        max_deletions: 3,
        per: "1h".parse().unwrap(),
    });
    create_cluster(&client, &policy).await;
    create_cluster(&client, &processor("pipedrive")).await;
    // Past its 30-day grace period: two websites and a CRM record are due; its backup, the
    // newest of its month, is kept until the 90-day cap.
    create_cluster(
        &client,
        &account("acme").terminated_at("2026-10-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("www", "acme")).await;
    create(&client, &website("shop", "acme")).await;
    create(&client, &data_record("crm", "acme").processor("pipedrive")).await;
    create(
        &client,
        &website_backup("www-old", "acme", "www", "2026-09-30T02:00:00Z"),
    )
    .await;
    // Live: a backup neither the newest of its week nor of its month, past its 7 days; the
    // newer ones are kept.
    create_cluster(&client, &account("beta")).await;
    create(&client, &website("blog", "beta")).await;
    for (name, taken_at) in [
        ("blog-old", "2026-11-01T02:00:00Z"),
        ("blog-nov", "2026-11-20T02:00:00Z"),
        ("blog-new", "2026-12-14T02:00:00Z"),
    ] {
        create(&client, &website_backup(name, "beta", "blog", taken_at)).await;
    }
    // In its grace period: nothing due.
    create_cluster(
        &client,
        &account("gamma").terminated_at("2026-12-10T00:00:00Z"),
    )
    .await;
    create(&client, &website("later", "gamma")).await;
    // Bound to no Account: reported, never deleted.
    create(&client, &website("stray", "nobody")).await;

    let dir = TempDir::new();
    let kubeconfig = kubeconfig_file(cluster.test_server(), dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    let exported = run_kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "get",
        "accounts,retentionpolicies,dataprocessors,websites,databases,mailboxes,domains,\
         datarecords,backups",
        "--all-namespaces",
        "-o",
        "yaml",
    ]);
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("exported.yaml"), exported).unwrap();
    let manifests = manifests.to_str().unwrap();

    for output in ["table", "json"] {
        let from_files = run_operator(&["plan", "-f", manifests, "--now", NOW, "-o", output]);
        let from_cluster = run_operator(&[
            "plan",
            "--cluster",
            "--kubeconfig",
            kubeconfig,
            "--now",
            NOW,
            "-o",
            output,
        ]);
        assert_eq!(from_cluster, from_files, "-o {output}");
    }
    // `records` reads the cluster as `plan` does: the same record as from the export.
    for output in ["markdown", "json", "csv"] {
        let from_files = run_operator(&["records", "-f", manifests, "-o", output]);
        let from_cluster = run_operator(&[
            "records",
            "--cluster",
            "--kubeconfig",
            kubeconfig,
            "-o",
            output,
        ]);
        assert_eq!(from_cluster, from_files, "records -o {output}");
        assert!(from_cluster.contains("pipedrive"), "{from_cluster}");
    }
    let table = run_operator(&[
        "plan",
        "--cluster",
        "--kubeconfig",
        kubeconfig,
        "--now",
        NOW,
    ]);
    assert!(
        table.contains("4 objects due now across 2 accounts; brake would engage: yes"),
        "{table}"
    );
    assert!(
        table.contains("RetentionPolicy default: 4 due, room for 3 of maxDeletions 3 per 1h"),
        "{table}"
    );
    // Overdue first: the acme objects (due 2026-10-31) before beta's backup (2026-11-08).
    let due = table.split("Due now, overdue first:").nth(1).unwrap();
    let first_beta = due.find("account beta").unwrap();
    let last_acme = due.rfind("account acme").unwrap();
    assert!(last_acme < first_beta, "{due}");
    assert!(
        table.contains("stray"),
        "the unbound website is reported: {table}"
    );
}
