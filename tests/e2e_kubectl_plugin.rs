//! End to end: the binary installed as `kubectl-retention` is the kubectl plugin
//! `kubectl retention`: `kubectl retention inventory ACCOUNT` (kubectl 1.35) reads the cluster of
//! `KUBECONFIG` or of `--kubeconfig`, and its help names the plugin. Runs against the test
//! server and, with `RETENTION_E2E_KUBECONFIG`, the real control plane.

mod e2e_support;
mod tools;

use std::{path::PathBuf, process::Command};

use e2e_support::{AccountExt, Cluster, account, create, create_cluster, kubeconfig_file, website};

/// A directory of this test's own holding `kubectl-retention` (the binary under the plugin's
/// name) and a kubeconfig for the cluster the test runs against.
fn plugin_dir(cluster: &Cluster) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("retention-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-retention");
    let _ = std::fs::remove_file(&plugin);
    std::fs::copy(env!("CARGO_BIN_EXE_retention-operator"), &plugin).unwrap();
    let kubeconfig = kubeconfig_file(cluster.test_server(), &dir);
    (dir, kubeconfig)
}

/// `kubectl` with `args`, finding plugins in `dir` first, with `KUBECONFIG` set when given.
fn kubectl(dir: &std::path::Path, kubeconfig: Option<&std::path::Path>, args: &[&str]) -> String {
    let path = std::env::join_paths(std::iter::once(dir.to_owned()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut command = Command::new(tools::kubectl());
    command
        .args(args)
        .env("PATH", path)
        .env_remove("KUBECONFIG");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_retention_inventory_reads_the_account_of_the_current_cluster() {
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    create_cluster(&client, &e2e_support::default_policy()).await;
    create_cluster(
        &client,
        &account("plugin-acct").terminated_at("2026-11-01T00:00:00Z"),
    )
    .await;
    create(&client, &website("plugin-www", "plugin-acct")).await;
    let (dir, kubeconfig) = plugin_dir(&cluster);

    let listed = kubectl(&dir, None, &["plugin", "list", "--name-only"]);
    assert!(listed.lines().any(|l| l == "kubectl-retention"), "{listed}");
    let help = kubectl(&dir, None, &["retention", "--help"]);
    assert!(help.contains("Usage: kubectl retention"), "{help}");

    let by_env = kubectl(
        &dir,
        Some(&kubeconfig),
        &["retention", "inventory", "plugin-acct", "-o", "json"],
    );
    let plan: serde_json::Value = serde_json::from_str(&by_env).unwrap();
    let text = plan.to_string();
    assert!(text.contains("plugin-www"), "{by_env}");
    let kubeconfig_arg = kubeconfig.to_str().unwrap();
    let by_flag = kubectl(
        &dir,
        None,
        &[
            "retention",
            "inventory",
            "plugin-acct",
            "-o",
            "json",
            "--kubeconfig",
            kubeconfig_arg,
        ],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&by_flag).unwrap()["accounts"],
        plan["accounts"],
        "the same account either way"
    );
    let table = kubectl(
        &dir,
        Some(&kubeconfig),
        &["retention", "inventory", "plugin-acct"],
    );
    assert!(table.contains("plugin-www"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `completions` prints a script each shell accepts, naming every command.
#[test]
fn completions_name_every_command_in_each_shell() {
    let operator = env!("CARGO_BIN_EXE_retention-operator");
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(operator)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for command in [
            "plan",
            "inventory",
            "receipts",
            "records",
            "crds",
            "completions",
        ] {
            assert!(script.contains(command), "{shell} completes no {command}");
        }
        assert!(script.contains("retention"), "{shell}");
    }
    let bash = Command::new(operator)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("retention-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("retention-operator.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
