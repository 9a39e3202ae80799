//! `retention-operator sandbox` as a newcomer runs it: the binary with the built-in examples,
//! kubectl against its API server while it runs, and the timeline it prints. The sandbox
//! carries its own in-memory API server, so this test needs no cluster.

mod tools;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The longest the sandbox may take to print a line the test waits for; a failing sandbox
/// fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(120);

/// Kills the sandbox when the test ends, however it ends.
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads lines until one contains `marker`; every line read is added to `seen`.
fn read_until(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, marker: &str) {
    loop {
        match lines.recv_timeout(DEADLINE) {
            Ok(line) => {
                let found = line.contains(marker);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(e) => panic!(
                "no line with {marker:?} ({e}); the sandbox printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend_from_slice(args);
    tools::run(tools::kubectl(), &all)
}

/// The line of the timeline that contains every one of `parts`.
fn line_with<'a>(timeline: &'a [String], parts: &[&str]) -> &'a str {
    timeline
        .iter()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{}", timeline.join("\n")))
}

#[test]
fn the_sandbox_shows_the_operator_at_work_and_kubectl_reads_it_meanwhile() {
    let dir = std::env::temp_dir().join(format!("retention-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("sandbox.kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_retention-operator"))
        .args([
            "sandbox",
            "--speed",
            "172800",
            "--until",
            "2026-12-21T00:00:00Z",
            "--port",
            "0",
            "--kubeconfig",
            &kubeconfig,
            "--stay",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _sandbox = Sandbox(child);
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let mut timeline = Vec::new();

    // While it runs, kubectl sees the examples through the CRDs' category.
    read_until(&lines, &mut timeline, "While it runs: kubectl --kubeconfig");
    let listed = kubectl(&kubeconfig, &["get", "hosting", "-A"]);
    for object in [
        "account.hosting.ecuni.se/lindqvist-foto",
        "website.hosting.ecuni.se/www",
        "backup.hosting.ecuni.se/shop-db-",
    ] {
        assert!(listed.contains(object), "no {object} in:\n{listed}");
    }

    read_until(
        &lines,
        &mut timeline,
        "Summary of 2026-11-23 00:00 to 2026-12-21 00:00",
    );
    read_until(&lines, &mut timeline, "Ctrl-C stops it");

    // Schedules, a deletion of each kind with its date and rule, a backup expiring, a
    // processor's acknowledgement, a receipt, and the phases up to Erased.
    line_with(
        &timeline,
        &[
            "lindqvist-foto",
            "scheduled",
            "Website cust-lindqvist-foto/www for 2026-12-20 00:00",
        ],
    );
    for (kind, due) in [
        (
            "Mailbox cust-lindqvist-foto/bokning",
            "(due 2026-12-04 00:00): grace period 14d",
        ),
        (
            "Website cust-lindqvist-foto/www",
            "(due 2026-12-20 00:00): grace period 30d",
        ),
        ("Domain cust-lindqvist-foto/", "(due 2026-12-20 00:00)"),
        (
            "Database cust-bergstrom-bygg/wp-db",
            "(due 2026-12-10 00:00)",
        ),
        (
            "DataRecord cust-solros-design/newsletter",
            "consent for \"marketing\"",
        ),
        ("Backup cust-acme/shop-db-", "daily backup kept 7d"),
    ] {
        let line = line_with(&timeline, &["DELETED", kind, due]);
        // Never before its time: the line starts with when it happened.
        let happened = &line[..16];
        let due_at = line
            .split("(due ")
            .nth(1)
            .map(|rest| &rest[..16])
            .unwrap_or(happened);
        assert!(happened >= due_at, "deleted before its time: {line}");
    }
    line_with(
        &timeline,
        &[
            "lindqvist-foto",
            "processor key-systems acknowledged the erasure request",
        ],
    );
    line_with(&timeline, &["microsoft has no webhook"]);
    line_with(
        &timeline,
        &[
            "lindqvist-foto",
            "receipt    ErasureReceipt lindqvist-foto-",
        ],
    );
    line_with(
        &timeline,
        &["lindqvist-foto", "phase GracePeriod -> Erasing"],
    );
    line_with(&timeline, &["lindqvist-foto", "phase Erasing -> Erased"]);
    line_with(&timeline, &["    lindqvist-foto", "Erased"]);
    line_with(&timeline, &["    nordvik-media", "OnHold"]);

    // After the summary, --stay keeps the API server up: kubectl shows the end state.
    let accounts = kubectl(&kubeconfig, &["get", "accounts"]);
    let erased = accounts
        .lines()
        .find(|line| line.starts_with("lindqvist-foto"))
        .unwrap_or_else(|| panic!("{accounts}"));
    assert!(erased.contains("Erased"), "{accounts}");
    let websites = kubectl(
        &kubeconfig,
        &["get", "websites", "-n", "cust-lindqvist-foto"],
    );
    assert!(
        !websites.contains("www"),
        "the website is gone:\n{websites}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    for (args, says) in [
        (vec!["--speed", "0"], "--speed must be above 0"),
        (
            vec![
                "--from",
                "2026-12-01T00:00:00Z",
                "--until",
                "2026-11-01T00:00:00Z",
            ],
            "must be after --from",
        ),
        (vec!["--from", "yesterday"], "RFC 3339"),
        (
            vec!["-f", "/nonexistent/manifests.yaml"],
            "cannot read /nonexistent/manifests.yaml",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_retention-operator"))
            .arg("sandbox")
            .args(&args)
            .args(["--kubeconfig", "/nonexistent/dir/kubeconfig"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
