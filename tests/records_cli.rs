//! `retention-operator records` as a user runs it: the record of processing activities of
//! examples/ (a golden file), its JSON and CSV shapes, a flagged third-country transfer, and
//! bad input.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Value, json};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retention-operator"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `records` of `args`, which must succeed.
fn records(args: &[&str]) -> String {
    let mut all = vec!["records"];
    all.extend(args);
    let output = run(&all);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// Every `customerRef` value in examples/.
fn example_customer_refs() -> Vec<String> {
    let mut refs = Vec::new();
    for entry in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("customerRef:") {
                refs.push(rest.split('#').next().unwrap().trim().to_owned());
            }
        }
    }
    assert!(refs.len() >= 5, "the example accounts' refs: {refs:?}");
    refs
}

#[test]
fn the_record_of_the_examples_is_the_golden_file() {
    let golden =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/records.md"))
            .unwrap();
    let output = records(&["-f", "examples/"]);
    assert!(
        output == golden,
        "records -f examples/ differs from examples/records.md; if the change is intended, \
         regenerate it with `cargo run -q -- records -f examples/ > examples/records.md`.\n\
         --- output ---\n{output}"
    );
    assert_eq!(records(&["-f", "examples/", "-o", "markdown"]), golden);
}

#[test]
fn no_format_names_a_customer() {
    let refs = example_customer_refs();
    for format in ["markdown", "json", "csv"] {
        let output = records(&["-f", "examples/", "-o", format]);
        for customer in &refs {
            assert!(
                !output.contains(customer.as_str()),
                "{format} names {customer}"
            );
        }
        // Nor an account: the example accounts' names.
        for account in [
            "bergstrom-bygg",
            "tallbacken-konsult",
            "nordvik-media",
            "lindqvist-foto",
        ] {
            assert!(!output.contains(account), "{format} names {account}");
        }
    }
}

#[test]
fn the_json_record_has_every_article_30_part() {
    let record: Value = serde_json::from_str(&records(&["-f", "examples/", "-o", "json"])).unwrap();
    assert_eq!(record["derivedFrom"]["accounts"], 6);
    let categories = record["categories"].as_array().unwrap();
    let names: Vec<&str> = categories
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    for expected in [
        "Website",
        "Database",
        "Mailbox",
        "Domain",
        "Backup",
        "DataRecord crm",
        "DataRecord invoices",
        "DataRecord marketing",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    for category in categories {
        for key in [
            "kind",
            "objects",
            "consentPurposes",
            "recipientPurposes",
            "legalBases",
            "recipients",
            "retention",
        ] {
            assert!(category.get(key).is_some(), "{key} missing: {category}");
        }
    }
    let by_name = |name: &str| {
        categories
            .iter()
            .find(|c| c["category"] == name)
            .unwrap()
            .clone()
    };
    // As the rules see them: invoices under the Bookkeeping Act, backups in the provider's
    // legitimate interest.
    let invoices = by_name("DataRecord invoices");
    assert_eq!(invoices["legalBases"], json!(["LegalObligation"]));
    assert_eq!(invoices["recipients"], json!(["svea-ekonomi"]));
    assert!(
        invoices["retention"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("7 years"),
        "{invoices}"
    );
    assert_eq!(
        by_name("Backup")["legalBases"],
        json!(["LegitimateInterest"])
    );
    let marketing = by_name("DataRecord marketing");
    assert_eq!(marketing["consentPurposes"], json!(["marketing"]));
    assert_eq!(
        marketing["recipientPurposes"]["facebook"],
        json!(["marketing"])
    );
    assert_eq!(
        by_name("Mailbox")["retention"][0]["rule"],
        "kept while the account is active or suspended; erased 14d after its termination"
    );
    let recipients = record["recipients"].as_array().unwrap();
    let key_systems = recipients
        .iter()
        .find(|r| r["name"] == "key-systems")
        .unwrap();
    assert_eq!(key_systems["legalName"], "Key Systems GmbH");
    assert_eq!(key_systems["country"], "DE");
    assert_eq!(key_systems["categories"], json!(["Domain"]));
    assert_eq!(record["thirdCountryTransfers"], json!([]));
    let policy = &record["retentionPolicies"][0];
    assert_eq!(policy["name"], "default");
    assert_eq!(policy["gracePeriods"]["Mailbox"], "14d");
    assert_eq!(policy["backupsKeepDaily"], 7);
    assert_eq!(policy["bookkeepingYears"], 7);
    assert_eq!(policy["receiptsKeepFor"], "3653d");
}

/// Splits one CSV line (RFC 4180 quoting) into its fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    assert!(!quoted, "unterminated quote in {line}");
    fields
}

#[test]
fn the_csv_record_has_one_row_per_category() {
    let csv = records(&["-f", "examples/", "-o", "csv"]);
    let json: Value = serde_json::from_str(&records(&["-f", "examples/", "-o", "json"])).unwrap();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    assert_eq!(
        header,
        [
            "category",
            "objects",
            "consent_purposes",
            "recipient_purposes",
            "legal_bases",
            "recipients",
            "third_country_transfers",
            "retention"
        ]
    );
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let categories = json["categories"].as_array().unwrap();
    assert_eq!(rows.len(), categories.len());
    for (row, category) in rows.iter().zip(categories) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[0], category["category"].as_str().unwrap());
        assert_eq!(row[1], category["objects"].to_string());
    }
    let invoices = rows.iter().find(|r| r[0] == "DataRecord invoices").unwrap();
    assert_eq!(invoices[4], "LegalObligation");
    // The rule holds a comma, so the field was quoted and reads back whole.
    assert!(
        invoices[7].starts_with("default: bookkeeping data kept 7 years"),
        "{invoices:?}"
    );
    assert!(
        invoices[7].contains("(Bookkeeping Act 1999:1078, 7 kap. 2 §)"),
        "{invoices:?}"
    );
}

/// A scratch directory holding `manifest` as `input.yaml`.
fn scratch(name: &str, manifest: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("records-cli-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("input.yaml"), manifest).unwrap();
    dir
}

const POLICY: &str = "\
apiVersion: hosting.ecuni.se/v1alpha1
kind: RetentionPolicy
metadata: {name: default}
spec:
  gracePeriod: 30d
  backups: {keepDaily: 7, keepWeekly: 4, keepMonthly: 6}
";

const TRANSFERS: &str = "\
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Account
metadata: {name: acme}
spec: {customerRef: C-77}
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
kind: DataRecord
metadata: {name: stats, namespace: acme}
spec: {accountRef: acme, category: analytics, processorRef: us-analytics, legalBasis: Consent, consentPurpose: analytics}
---
apiVersion: hosting.ecuni.se/v1alpha1
kind: Mailbox
metadata: {name: info, namespace: acme}
spec: {accountRef: acme, address: info@example.com, processorRef: us-mail}
";

#[test]
fn a_us_processor_without_a_transfer_mechanism_is_flagged() {
    let dir = scratch("transfers", &format!("{POLICY}{TRANSFERS}"));
    let path = dir.to_str().unwrap();
    let markdown = records(&["-f", path]);
    assert!(
        markdown.contains("| us-analytics | Example Analytics Inc. | US | none — flagged |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| us-mail | Example Mail Inc. | US | StandardContractualClauses |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- Third-country transfers: us-analytics (US): none — flagged"),
        "{markdown}"
    );
    assert!(!markdown.contains("C-77"), "{markdown}");
    let record: Value = serde_json::from_str(&records(&["-f", path, "-o", "json"])).unwrap();
    assert_eq!(
        record["thirdCountryTransfers"],
        json!([
            {"processor": "us-analytics", "legalName": "Example Analytics Inc.",
             "country": "US", "mechanism": null, "flagged": true},
            {"processor": "us-mail", "legalName": "Example Mail Inc.",
             "country": "US", "mechanism": "StandardContractualClauses", "flagged": false},
        ])
    );
    let csv = records(&["-f", path, "-o", "csv"]);
    let analytics = csv
        .lines()
        .find(|l| l.starts_with("DataRecord analytics,"))
        .unwrap();
    assert!(
        csv_fields(analytics)[6] == "us-analytics (US): none — flagged",
        "{analytics}"
    );
}

#[test]
fn bad_input_exits_2_with_one_message_as_plan_does() {
    let cases = [
        (
            "unassigned-country",
            format!(
                "{POLICY}---\napiVersion: hosting.ecuni.se/v1alpha1\nkind: DataProcessor\n\
                 metadata: {{name: ks}}\nspec: {{legalName: KS, country: XX}}\n"
            ),
            vec!["input.yaml", "DataProcessor ks", "spec.country"],
        ),
        (
            "country-name",
            format!(
                "{POLICY}---\napiVersion: hosting.ecuni.se/v1alpha1\nkind: DataProcessor\n\
                 metadata: {{name: ks}}\nspec: {{legalName: KS, country: Sweden}}\n"
            ),
            vec!["input.yaml", "DataProcessor ks", "spec.country"],
        ),
        (
            "missing-policy",
            "apiVersion: hosting.ecuni.se/v1alpha1\nkind: Account\nmetadata: {name: acme}\n\
             spec: {customerRef: C-77, retentionPolicyRef: strict}\n"
                .to_owned(),
            vec!["input.yaml", "Account acme", "\"strict\""],
        ),
    ];
    for (name, manifest, expected) in cases {
        let dir = scratch(name, &manifest);
        let output = run(&["records", "-f", dir.to_str().unwrap()]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {message}");
        assert!(stdout(&output).is_empty(), "{name}: printed before failing");
        for fragment in &expected {
            assert!(
                message.contains(fragment),
                "{name}: {fragment:?} not in {message}"
            );
        }
        assert_eq!(
            message.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{name}: {message}"
        );
        assert!(!message.contains("C-77"), "{name}: {message}");
    }
    let output = run(&["records", "-f", "does/not/exist.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = run(&["records", "-f", "examples/", "-o", "yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
