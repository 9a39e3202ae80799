//! `retention-operator plan` and `crds` as a user runs them.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

mod support;

const NOW: &str = "2026-11-23T00:00:00Z";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_retention-operator"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn run(args: &[&str]) -> Output {
    binary().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `plan -o json` of the manifests in `dir` at [`NOW`], which must succeed.
fn plan_json(dir: &Path) -> Value {
    let output = run(&[
        "plan",
        "-f",
        dir.to_str().unwrap(),
        "-o",
        "json",
        "--now",
        NOW,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// A scratch directory holding the default policy and the given manifest as `input.yaml`.
fn scratch(name: &str, manifest: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("plan-cli-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("input.yaml"), manifest).unwrap();
    fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    dir
}

const POLICY: &str = "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: RetentionPolicy
metadata: {name: default}
spec:
  gracePeriod: 30d
  gracePeriods: {Mailbox: 14d}
  backups: {keepDaily: 7, keepWeekly: 4, keepMonthly: 6, afterTermination: 90d}
";

const ACME: &str = "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec: {customerRef: C-1, state: Terminated, terminatedAt: 2026-11-01T00:00:00Z}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Website
metadata: {name: www, namespace: acme}
spec: {accountRef: acme, processorRef: key-systems}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Mailbox
metadata: {name: info, namespace: acme}
spec: {accountRef: acme, address: info@example.com}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Mailbox
metadata: {name: stray, namespace: other}
spec: {accountRef: nobody, address: stray@example.com}
";

#[test]
fn examples_plan_as_json_of_the_design_shape() {
    let output = run(&["plan", "-f", "examples/", "-o", "json", "--now", NOW]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["now"], NOW);
    let accounts = plan["accounts"].as_array().unwrap();
    assert!(accounts.len() >= 5, "expected the five example accounts");
    for account in accounts {
        for key in [
            "name",
            "customerRef",
            "phase",
            "terminatedAt",
            "resources",
            "notifications",
        ] {
            assert!(account.get(key).is_some(), "account lacks {key}: {account}");
        }
        for resource in account["resources"].as_array().unwrap() {
            for key in ["kind", "namespace", "name", "deleteAt", "reason"] {
                assert!(
                    resource.get(key).is_some(),
                    "resource lacks {key}: {resource}"
                );
            }
        }
        for notification in account["notifications"].as_array().unwrap() {
            assert!(notification["processor"].is_string() && notification["at"].is_string());
        }
    }
    let phases: Vec<&str> = accounts
        .iter()
        .map(|a| a["phase"].as_str().unwrap())
        .collect();
    for phase in ["Active", "GracePeriod", "Retained", "OnHold"] {
        assert!(
            phases.contains(&phase),
            "no example account in phase {phase}: {phases:?}"
        );
    }
    assert!(plan["unbound"].is_array());
}

#[test]
fn json_plan_gives_exact_schedules() {
    let dir = scratch("exact", ACME);
    let plan = plan_json(&dir);
    let acme = &plan["accounts"][0];
    assert_eq!(acme["name"], "acme");
    // The mailbox (14d) is already due; the website (30d) is not.
    assert_eq!(acme["phase"], "Erasing");
    assert_eq!(acme["terminatedAt"], "2026-11-01T00:00:00Z");
    let schedule: Vec<(String, String)> = acme["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["deleteAt"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        schedule,
        [
            ("info".to_owned(), "2026-11-15T00:00:00Z".to_owned()),
            ("www".to_owned(), "2026-12-01T00:00:00Z".to_owned())
        ]
    );
    assert_eq!(acme["notifications"][0]["processor"], "key-systems");
    assert_eq!(acme["notifications"][0]["at"], "2026-12-01T00:00:00Z");
    assert_eq!(plan["unbound"][0]["name"], "stray");
    assert_eq!(plan["unbound"][0]["reason"], "account not found");
}

#[test]
fn table_lists_each_account_in_time_order() {
    let dir = scratch("table", ACME);
    let output = run(&["plan", "-f", dir.to_str().unwrap(), "--now", NOW]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Account acme (customer C-1)"), "{text}");
    let mailbox = text.find("Mailbox acme/info").unwrap();
    let website = text.find("Website acme/www").unwrap();
    let notify = text.find("DataProcessor key-systems").unwrap();
    assert!(
        mailbox < website && website < notify,
        "not in time order:\n{text}"
    );
    assert!(
        text.contains("2026-11-15T00:00:00Z (due)"),
        "due mark missing:\n{text}"
    );
    assert!(
        text.contains("Mailbox other/stray: account \"nobody\" not found"),
        "{text}"
    );
}

/// A suspended policy plans as usual, and both outputs say that nothing goes until it is lifted;
/// without a suspend, the JSON has no `erasureSuspended` at all (the shape of docs/design.md §6).
#[test]
fn a_suspended_policy_is_shown_with_its_schedules() {
    let dir = scratch("suspended", ACME);
    let running = plan_json(&dir);
    assert!(running["accounts"][0].get("erasureSuspended").is_none());
    fs::write(
        dir.join("policy.yaml"),
        format!("{POLICY}  suspend: true\n"),
    )
    .unwrap();
    let suspended = plan_json(&dir);
    assert_eq!(suspended["accounts"][0]["erasureSuspended"], true);
    assert_eq!(
        suspended["accounts"][0]["resources"], running["accounts"][0]["resources"],
        "the schedules are shown as without the suspend"
    );
    let output = run(&["plan", "-f", dir.to_str().unwrap(), "--now", NOW]);
    let text = stdout(&output);
    assert!(
        text.contains("erasure suspended by its RetentionPolicy"),
        "{text}"
    );
}

/// A schedule that would fall past 9999-12-31T23:59:59Z is "nothing scheduled (beyond 9999)"
/// and blocks nothing else: the JSON carries null there and no year past 9999 anywhere.
#[test]
fn json_plan_never_carries_a_year_past_9999() {
    let manifest = "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: late}
spec: {customerRef: C-9, state: Terminated, terminatedAt: '9999-12-15T00:00:00+01:00'}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Website
metadata: {name: www, namespace: late}
spec: {accountRef: late, processorRef: key-systems}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Mailbox
metadata: {name: info, namespace: late}
spec: {accountRef: late, address: info@example.com}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: DataRecord
metadata: {name: invoices, namespace: late}
spec: {accountRef: late, category: invoices, legalBasis: LegalObligation,
       bookkeeping: {fiscalYearEnd: '9999-12-31'}}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Backup
metadata: {name: www-last, namespace: late}
spec: {accountRef: late, sourceRef: {kind: Website, name: www}, takenAt: '9999-12-31T23:59:59Z'}
";
    let dir = scratch("past-9999", manifest);
    let output = run(&[
        "plan",
        "-f",
        dir.to_str().unwrap(),
        "-o",
        "json",
        "--now",
        NOW,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("\"+"), "a year past 9999 in:\n{text}");
    let plan: Value = serde_json::from_str(&text).unwrap();
    let late = &plan["accounts"][0];
    assert_eq!(late["name"], "late");
    let schedule = |name: &str| {
        late["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not planned: {late}"))
            .clone()
    };
    // 14 days after 9999-12-14T23:00:00Z is still in 9999: the mailbox goes then.
    assert_eq!(schedule("info")["deleteAt"], "9999-12-28T23:00:00Z");
    for name in ["www", "invoices", "www-last"] {
        let resource = schedule(name);
        assert_eq!(resource["deleteAt"], Value::Null, "{name}: {resource}");
        assert!(
            resource["reason"]
                .as_str()
                .is_some_and(|r| r.contains("beyond 9999")),
            "{name}: {resource}"
        );
    }
    assert_eq!(late["nextDeletionAt"], "9999-12-28T23:00:00Z");
    assert_eq!(late["notifications"], serde_json::json!([]));
}

#[test]
fn reads_kubectl_lists_and_standard_input() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        POLICY
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 {
                format!("- {l}\n")
            } else {
                format!("  {l}\n")
            })
            .collect::<String>()
    );
    let mut child = binary()
        .args(["plan", "-f", "-", "-o", "json", "--now", NOW])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let account = "---\napiVersion: hosting.ecuni.se/v1alpha1\nkind: Account\n\
                   metadata: {name: solo}\nspec: {customerRef: C-9}\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{list}{account}").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["accounts"][0]["name"], "solo");
    assert_eq!(plan["accounts"][0]["phase"], "Active");
}

#[test]
fn bad_input_is_one_clear_message_and_exit_code_2() {
    let cases = [
        (
            "unparsable YAML",
            "a: [1, 2\nb: 3\n".to_owned(),
            vec!["invalid YAML", "line 2"],
        ),
        (
            "unknown kind",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n".to_owned(),
            vec!["document 1", "unknown kind Deployment"],
        ),
        (
            "missing required field",
            object(
                "Website",
                "metadata: {name: www, namespace: acme}\nspec: {hostnames: []}\n",
            ),
            vec![
                "document 1",
                "Website acme/www",
                "missing field `accountRef`",
            ],
        ),
        (
            "invalid duration",
            format!(
                "---\n{}",
                POLICY
                    .replace("name: default", "name: p2")
                    .replace("30d", "30days")
            ),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.gracePeriod",
                "invalid duration",
            ],
        ),
        (
            "policy that does not exist",
            object(
                "Account",
                "metadata: {name: acme}\nspec: {customerRef: C-1, retentionPolicyRef: strict}\n",
            ),
            vec!["document 1", "Account acme", "RetentionPolicy \"strict\""],
        ),
        (
            "unknown enum value",
            format!(
                "{ACME}---\n{}",
                object(
                    "Account",
                    "metadata: {name: b}\nspec: {customerRef: C-2, state: Closed}\n"
                )
            ),
            vec!["document 5", "Account b", "spec.state", "Closed"],
        ),
        (
            "consent without purpose (CEL rule)",
            object(
                "DataRecord",
                "metadata: {name: n, namespace: a}\nspec: {accountRef: a, category: marketing, legalBasis: Consent}\n",
            ),
            vec![
                "document 1",
                "consentPurpose is required when legalBasis is Consent",
            ],
        ),
        (
            "terminated without terminatedAt (CEL rule)",
            object(
                "Account",
                "metadata: {name: acme}\nspec: {customerRef: C-1, state: Terminated}\n",
            ),
            vec![
                "document 1",
                "Account acme",
                "terminatedAt is required when state is Terminated",
            ],
        ),
        (
            "misspelt field",
            object(
                "Account",
                "metadata: {name: acme}\nspec: {customerRef: C-1, legalhold: {reason: case-1}}\n",
            ),
            vec![
                "document 1",
                "Account acme",
                "unknown field(s): spec.legalhold",
            ],
        ),
        (
            "misspelt kind in gracePeriods",
            format!(
                "---\n{}",
                POLICY
                    .replace("name: default", "name: p2")
                    .replace("Mailbox:", "Mailboxes:")
            ),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.gracePeriods.Mailboxes",
            ],
        ),
        (
            "duplicate object",
            format!("{ACME}---\n{}", ACME.split("---\n").next().unwrap()),
            vec!["document 5", "Account acme is defined twice", "document 1"],
        ),
        (
            "not an object",
            "just a string\n".to_owned(),
            vec!["document 1", "expected a Kubernetes object"],
        ),
    ];
    for (name, manifest, expected) in cases {
        assert_bad_input(name, &manifest, &expected);
    }
}

/// Plans `manifest` (as `input.yaml`, beside the default policy) and asserts exit code 2, an
/// empty standard output and one error line naming the file and every fragment of `expected`.
fn assert_bad_input(name: &str, manifest: &str, expected: &[&str]) {
    let dir = scratch(
        &name.replace([' ', ':'], "-").replace(['(', ')'], ""),
        manifest,
    );
    let input = dir.join("input.yaml");
    let output = run(&[
        "plan",
        "-f",
        dir.join("policy.yaml").to_str().unwrap(),
        "-f",
        input.to_str().unwrap(),
        "--now",
        NOW,
        "-o",
        "json",
    ]);
    let message = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{name}: exit code; stderr: {message}"
    );
    assert!(stdout(&output).is_empty(), "{name}: printed before failing");
    assert!(
        message.contains(input.to_str().unwrap()),
        "{name}: file not named: {message}"
    );
    for fragment in expected {
        assert!(
            message.contains(fragment),
            "{name}: {fragment:?} not in: {message}"
        );
    }
    assert_eq!(
        message.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{name}"
    );
}

fn object(kind: &str, rest: &str) -> String {
    format!("apiVersion: hosting.ecuni.se/v1alpha1\nkind: {kind}\n{rest}")
}

/// A reference to another object is a DNS-1123 name: `accountRef: ""` and the like are bad
/// input, not an object reported Unbound for ever.
#[test]
fn references_that_are_not_dns_1123_names_are_bad_input() {
    let cases = [
        (
            "empty accountRef",
            object(
                "Website",
                "metadata: {name: www, namespace: acme}\nspec: {accountRef: ''}\n",
            ),
            vec![
                "document 1",
                "Website acme/www",
                "spec.accountRef",
                "pattern",
            ],
        ),
        (
            "upper-case processorRef",
            object(
                "Mailbox",
                "metadata: {name: info, namespace: acme}\n\
                 spec: {accountRef: acme, address: i@example.com, processorRef: KeySystems}\n",
            ),
            vec!["document 1", "Mailbox acme/info", "spec.processorRef"],
        ),
        (
            "retentionPolicyRef with an underscore",
            object(
                "Account",
                "metadata: {name: acme}\nspec: {customerRef: C-1, retentionPolicyRef: my_policy}\n",
            ),
            vec!["document 1", "Account acme", "spec.retentionPolicyRef"],
        ),
        (
            "secret namespace with a dot",
            object(
                "DataProcessor",
                "metadata: {name: ks}\nspec: {legalName: KS, country: DE, erasure: {webhook: \
                 {url: 'https://erasure.example/api', secretRef: {namespace: a.b, name: ks, \
                 key: secret}}}}\n",
            ),
            vec![
                "document 1",
                "DataProcessor ks",
                "spec.erasure.webhook.secretRef.namespace",
            ],
        ),
    ];
    for (name, manifest, expected) in cases {
        assert_bad_input(name, &manifest, &expected);
    }
}

/// A duration or count that cannot be represented is bad input, never "keep for ever".
#[test]
fn durations_and_counts_beyond_six_digits_are_bad_input() {
    let policy = |from: &str, to: &str| {
        format!(
            "---\n{}",
            POLICY
                .replace("name: default", "name: p2")
                .replace(from, to)
        )
    };
    let cases = [
        (
            "gracePeriod of 11 digits",
            policy("gracePeriod: 30d", "gracePeriod: 99999999999d"),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.gracePeriod",
                "at most 6 digits",
            ],
        ),
        (
            "afterTermination of 7 digits",
            policy("afterTermination: 90d", "afterTermination: 1000000h"),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.backups.afterTermination",
                "at most 6 digits",
            ],
        ),
        (
            "keepDaily of 2^40",
            policy("keepDaily: 7", "keepDaily: 1099511627776"),
            vec!["document 1", "RetentionPolicy p2", "spec.backups.keepDaily"],
        ),
        (
            "keepMonthly of 7 digits",
            policy("keepMonthly: 6", "keepMonthly: 1000000"),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.backups.keepMonthly",
                "at most 999999",
            ],
        ),
    ];
    for (name, manifest, expected) in cases {
        assert_bad_input(name, &manifest, &expected);
    }
}

/// A webhook URL with credentials is bad input, and the message does not repeat them.
#[test]
fn a_webhook_url_with_credentials_is_bad_input_and_not_echoed() {
    let manifest = object(
        "DataProcessor",
        "metadata: {name: ks}\nspec: {legalName: KS, country: DE, erasure: {webhook: \
         {url: 'https://admin:hunter2@erasure.example/api', secretRef: {namespace: ops, \
         name: ks, key: secret}}}}\n",
    );
    assert_bad_input(
        "webhook URL with credentials",
        &manifest,
        &["document 1", "DataProcessor ks", "spec.erasure.webhook.url"],
    );
    let dir = scratch("webhook-URL-with-credentials", &manifest);
    let output = run(&["plan", "-f", dir.join("input.yaml").to_str().unwrap()]);
    assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
}

/// What the API server refuses by the schema (patterns, lengths, bounds, date formats), `plan`
/// refuses too, naming the field; serde alone accepted each of these.
#[test]
fn schema_constraints_are_bad_input_as_for_the_api_server() {
    let cases = [
        (
            "enum: a lower-case country code",
            object(
                "DataProcessor",
                "metadata: {name: ks}\nspec: {legalName: KS, country: de}\n",
            ),
            vec!["document 1", "DataProcessor ks", "spec.country", "one of"],
        ),
        (
            "enum: a country's name",
            object(
                "DataProcessor",
                "metadata: {name: ks}\nspec: {legalName: KS, country: Sweden}\n",
            ),
            vec!["document 1", "DataProcessor ks", "spec.country", "one of"],
        ),
        (
            "enum: an unassigned country code",
            object(
                "DataProcessor",
                "metadata: {name: ks}\nspec: {legalName: KS, country: XX}\n",
            ),
            vec!["document 1", "DataProcessor ks", "spec.country", "one of"],
        ),
        (
            "enum: a transfer mechanism that does not exist",
            object(
                "DataProcessor",
                "metadata: {name: ks}\nspec: {legalName: KS, country: US, \
                 transferMechanism: PrivacyShield}\n",
            ),
            vec!["document 1", "DataProcessor ks", "spec.transferMechanism"],
        ),
        (
            "minLength: empty customerRef",
            object(
                "Account",
                "metadata: {name: acme}\nspec: {customerRef: ''}\n",
            ),
            vec![
                "document 1",
                "Account acme",
                "spec.customerRef",
                "at least 1",
            ],
        ),
        (
            "minimum: zero bookkeeping years",
            format!(
                "---\n{}  bookkeeping: {{years: 0}}\n",
                POLICY.replace("name: default", "name: p2")
            ),
            vec![
                "document 1",
                "RetentionPolicy p2",
                "spec.bookkeeping.years",
                "at least 1",
            ],
        ),
        (
            "date-time: a five-digit year",
            object(
                "Backup",
                "metadata: {name: b, namespace: acme}\nspec: {accountRef: acme, \
                 sourceRef: {kind: Database, name: db}, takenAt: '+10000-01-01T00:00:00Z'}\n",
            ),
            vec!["document 1", "Backup acme/b", "spec.takenAt", "date-time"],
        ),
        (
            "date: a five-digit year",
            object(
                "DataRecord",
                "metadata: {name: inv, namespace: acme}\nspec: {accountRef: acme, \
                 category: invoices, bookkeeping: {fiscalYearEnd: '+10000-12-31'}}\n",
            ),
            vec![
                "document 1",
                "DataRecord acme/inv",
                "spec.bookkeeping.fiscalYearEnd",
                "date",
            ],
        ),
    ];
    for (name, manifest, expected) in cases {
        assert_bad_input(name, &manifest, &expected);
    }
}

#[test]
fn missing_paths_and_empty_directories_are_bad_input() {
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-cli-empty-dir");
    fs::create_dir_all(&empty).unwrap();
    for path in ["does/not/exist.yaml", empty.to_str().unwrap()] {
        let output = run(&["plan", "-f", path]);
        assert_eq!(output.status.code(), Some(2), "{path}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(path),
            "{path}: {}",
            stderr(&output)
        );
    }
    let output = run(&["plan", "-f", "examples/", "--now", "tomorrow"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"));
}

#[test]
fn crds_command_prints_every_crd() {
    let output = run(&["crds"]);
    assert!(output.status.success());
    let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout(&output)).unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10);
    assert!(
        names.iter().all(|n| n.ends_with(".hosting.ecuni.se")),
        "{names:?}"
    );
    assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
}

/// The table reads as a person would say it (issue 14, item 5): one case per wording, each
/// with the manifests that call for it and the words the table must (and must not) use.
#[test]
fn the_table_says_what_holds_in_words_a_person_would_use() {
    struct Case {
        name: &'static str,
        manifest: &'static str,
        says: &'static str,
        never: &'static str,
    }
    let cases = [
        Case {
            name: "hold-ended",
            manifest: "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec:
  customerRef: C-1
  state: Terminated
  terminatedAt: 2026-09-01T00:00:00Z
  legalHold: {reason: audit, until: 2026-11-20T00:00:00Z}
",
            says: "legal hold ended 2026-11-20T00:00:00Z (no longer in force)",
            never: "legal hold until",
        },
        Case {
            name: "hold-standing",
            manifest: "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec:
  customerRef: C-1
  state: Terminated
  terminatedAt: 2026-09-01T00:00:00Z
  legalHold: {reason: audit, until: 2026-12-20T00:00:00Z}
",
            says: "legal hold until 2026-12-20T00:00:00Z",
            never: "legal hold ended",
        },
        Case {
            name: "deleted-account",
            manifest: "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata:
  name: acme
  deletionTimestamp: 2026-11-10T00:00:00Z
  finalizers: [hosting.ecuni.se/erasure]
spec: {customerRef: C-1}
",
            says: "terminated 2026-11-10T00:00:00Z (its Account object was deleted)",
            never: "Active",
        },
        Case {
            name: "one-month",
            manifest: "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: RetentionPolicy
metadata: {name: monthly}
spec:
  gracePeriod: 30d
  backups: {keepDaily: 1, keepWeekly: 0, keepMonthly: 1}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec: {customerRef: C-1, retentionPolicyRef: monthly}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Backup
metadata: {name: db-1101, namespace: acme}
spec:
  accountRef: acme
  sourceRef: {kind: Database, name: db}
  takenAt: 2026-11-01T02:00:00Z
",
            says: "newest backup of 2026-11 kept 1 month",
            never: "1 months",
        },
        Case {
            name: "backup-basis",
            manifest: "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec: {customerRef: C-1}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Backup
metadata: {name: db-1101, namespace: acme}
spec:
  accountRef: acme
  sourceRef: {kind: Database, name: db}
  takenAt: 2026-11-01T02:00:00Z
",
            says: "Backup acme/db-1101  LegitimateInterest",
            never: "Backup acme/db-1101  Contract",
        },
    ];
    for case in cases {
        let dir = scratch(case.name, case.manifest);
        let output = run(&["plan", "-f", dir.to_str().unwrap(), "--now", NOW]);
        assert!(
            output.status.success(),
            "{}: {}",
            case.name,
            stderr(&output)
        );
        let table = stdout(&output);
        assert!(
            table.contains(case.says),
            "{}: the table does not say {:?}:\n{table}",
            case.name,
            case.says
        );
        assert!(
            !table.contains(case.never),
            "{}: the table says {:?}:\n{table}",
            case.name,
            case.never
        );
    }
}

/// Two processors outside the EU/EEA holding the account's data: one without a transfer
/// mechanism (flagged) and one with standard contractual clauses (not flagged).
const TRANSFERS: &str = "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec: {customerRef: C-1}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: DataProcessor
metadata: {name: us-analytics}
spec: {legalName: Example Analytics Inc., country: US, purposes: [analytics]}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: DataProcessor
metadata: {name: us-mail}
spec: {legalName: Example Mail Inc., country: US, transferMechanism: StandardContractualClauses}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Website
metadata: {name: www, namespace: acme}
spec: {accountRef: acme, processorRef: us-analytics}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Mailbox
metadata: {name: info, namespace: acme}
spec: {accountRef: acme, address: info@example.com, processorRef: us-mail}
";

#[test]
fn a_processor_outside_the_eea_without_a_transfer_mechanism_is_flagged_in_the_plan() {
    let dir = scratch("transfers", TRANSFERS);
    let output = run(&["plan", "-f", dir.to_str().unwrap(), "--now", NOW]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("third-country transfer: us-analytics (US) without a transfer mechanism"),
        "{text}"
    );
    assert!(!text.contains("us-mail (US)"), "{text}");
    let plan = plan_json(&dir);
    assert_eq!(
        plan["accounts"][0]["thirdCountryTransfers"],
        serde_json::json!([
            {"processor": "us-analytics", "legalName": "Example Analytics Inc.", "country": "US"}
        ])
    );
    // An account without such a processor carries no such field.
    let plain = plan_json(&scratch("no-transfers", ACME));
    assert!(plain["accounts"][0].get("thirdCountryTransfers").is_none());
}

/// [`support::written_receipt`] of account `gone` as YAML; `tamper` edits the spec after the
/// digest was taken.
fn receipt_yaml(tamper: bool) -> String {
    let mut receipt = support::written_receipt("gone");
    if tamper {
        receipt.spec.erased[0].uid = "u-2".into();
    }
    serde_saphyr::to_string(&receipt).unwrap()
}

#[test]
fn plan_shows_each_erasure_receipt_with_its_own_deletion_and_whether_it_verifies() {
    let dir = scratch("receipts", &receipt_yaml(false));
    fs::write(
        dir.join("tampered.yaml"),
        receipt_yaml(true).replace("gone-3f2a9c1e-20261031000000", "gone-tampered"),
    )
    .unwrap();
    let output = run(&["plan", "-f", dir.to_str().unwrap(), "--now", NOW]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "gone-3f2a9c1e-20261031000000 (account gone, erasure time 2026-10-31T00:00:00Z, \
             1 object): delete at 2036-10-31T00:00:05Z, receipt kept 3653d after its erasure \
             completed\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("gone-tampered (account gone") && text.contains("DIGEST DOES NOT VERIFY"),
        "{text}"
    );
    let json = plan_json(&dir);
    let receipts = json["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[0]["deleteAt"], "2036-10-31T00:00:05Z");
    assert_eq!(receipts[0]["verified"], true);
    assert_eq!(receipts[1]["verified"], false);
}
