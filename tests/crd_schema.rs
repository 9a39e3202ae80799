//! The generated openAPIV3Schema accepts the examples and rejects bad input, checked with an
//! independent JSON Schema validator. (The CEL rules are checked by the test API server and by
//! `plan`; JSON Schema has no CEL.)

use std::{fs, path::Path};

use retention_operator::api::all_crds;
use serde_json::{Value, json};

/// The CRD's openAPIV3Schema as JSON Schema: OpenAPI's `nullable: true` becomes a `null` type.
fn validator(kind: &str) -> jsonschema::Validator {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    let mut schema = serde_json::to_value(schema).unwrap();
    nullable_to_null_type(&mut schema);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn nullable_to_null_type(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            if fields.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(t)) = fields.get("type").cloned()
            {
                fields.insert("type".into(), json!([t, "null"]));
            }
            fields.values_mut().for_each(nullable_to_null_type);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_null_type),
        _ => {}
    }
}

fn errors(kind: &str, object: &Value) -> Vec<String> {
    validator(kind)
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn example_documents() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let options = serde_saphyr::options! { strict_booleans: true };
    files
        .into_iter()
        .flat_map(|file| {
            let text = fs::read_to_string(&file).unwrap();
            let docs: Vec<Value> =
                serde_saphyr::from_multiple_with_options(&text, options.clone()).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            docs.into_iter().map(move |doc| (name.clone(), doc))
        })
        .collect()
}

#[test]
fn every_example_object_is_valid() {
    let mut checked = 0;
    for (file, doc) in example_documents() {
        if doc["apiVersion"] != "hosting.ecuni.se/v1alpha1" {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap();
        let found = errors(kind, &doc);
        assert!(
            found.is_empty(),
            "{file}: {kind} {}: {found:?}",
            doc["metadata"]["name"]
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} example objects were checked");
}

fn policy(grace: &str) -> Value {
    json!({
        "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": "default"},
        "spec": {"gracePeriod": grace, "gracePeriods": {"Mailbox": "14d"},
                 "backups": {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 6,
                             "afterTermination": "90d"},
                 "bookkeeping": {"years": 7}}
    })
}

#[test]
fn durations_must_be_an_integer_and_one_unit() {
    for good in ["30d", "12h", "1w", "90m", "45s", "0d"] {
        assert_eq!(
            errors("RetentionPolicy", &policy(good)),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in [
        "30days", "1.5d", "30D", "d", "30", "-1d", "30 d", "1y", "P30D", "",
    ] {
        assert!(
            !errors("RetentionPolicy", &policy(bad)).is_empty(),
            "{bad:?} was accepted"
        );
    }
    let mut override_bad = policy("30d");
    override_bad["spec"]["gracePeriods"]["Mailbox"] = json!("two weeks");
    assert!(!errors("RetentionPolicy", &override_bad).is_empty());
}

#[test]
fn durations_have_at_most_six_digits() {
    for good in ["999999d", "999999w", "000030d", "1s"] {
        assert_eq!(
            errors("RetentionPolicy", &policy(good)),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in [
        "1000000d",
        "0000030d",
        "99999999999d",
        "99999999999999999999d",
    ] {
        assert!(
            !errors("RetentionPolicy", &policy(bad)).is_empty(),
            "{bad:?} was accepted"
        );
        for field in [
            "/spec/gracePeriods/Mailbox",
            "/spec/backups/afterTermination",
        ] {
            let mut object = policy("30d");
            *object.pointer_mut(field).unwrap() = json!(bad);
            assert!(
                !errors("RetentionPolicy", &object).is_empty(),
                "{field} = {bad:?} was accepted"
            );
        }
    }
}

#[test]
fn backup_counts_are_whole_numbers_of_at_most_six_digits() {
    for field in ["keepDaily", "keepWeekly", "keepMonthly"] {
        for good in [0, 1, 999_999] {
            let mut object = policy("30d");
            object["spec"]["backups"][field] = json!(good);
            assert_eq!(
                errors("RetentionPolicy", &object),
                Vec::<String>::new(),
                "{field}: {good}"
            );
        }
        for bad in [
            json!(-1),
            json!(1_000_000),
            json!(1_099_511_627_776_u64),
            json!(1.5),
        ] {
            let mut object = policy("30d");
            object["spec"]["backups"][field] = bad.clone();
            assert!(
                !errors("RetentionPolicy", &object).is_empty(),
                "{field}: {bad} was accepted"
            );
        }
    }
    for (years, valid) in [(0, false), (1, true), (100, true), (101, false)] {
        let mut object = policy("30d");
        object["spec"]["bookkeeping"]["years"] = json!(years);
        assert_eq!(
            errors("RetentionPolicy", &object).is_empty(),
            valid,
            "bookkeeping.years {years}"
        );
    }
}

fn account(state: &str) -> Value {
    json!({
        "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "Account",
        "metadata": {"name": "acme"},
        "spec": {"customerRef": "C-1", "state": state, "terminatedAt": "2026-11-01T00:00:00Z"}
    })
}

#[test]
fn account_state_must_be_known() {
    for good in ["Active", "Suspended", "Terminated"] {
        assert_eq!(
            errors("Account", &account(good)),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in ["Closed", "terminated", "ACTIVE", ""] {
        assert!(
            !errors("Account", &account(bad)).is_empty(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn account_requires_customer_ref_and_a_real_timestamp() {
    let mut no_customer = account("Active");
    no_customer["spec"]
        .as_object_mut()
        .unwrap()
        .remove("customerRef");
    assert!(!errors("Account", &no_customer).is_empty());
    let mut bad_time = account("Terminated");
    bad_time["spec"]["terminatedAt"] = json!("last week");
    assert!(!errors("Account", &bad_time).is_empty());
}

#[test]
fn every_bound_kind_requires_account_ref() {
    let objects = [
        (
            "Website",
            json!({"accountRef": "acme", "hostnames": ["www.example.com"]}),
        ),
        (
            "Database",
            json!({"accountRef": "acme", "engine": "mariadb"}),
        ),
        (
            "Mailbox",
            json!({"accountRef": "acme", "address": "info@example.com"}),
        ),
        (
            "Domain",
            json!({"accountRef": "acme", "fqdn": "example.com", "registrar": "ks"}),
        ),
        (
            "DataRecord",
            json!({"accountRef": "acme", "category": "crm"}),
        ),
        (
            "Backup",
            json!({"accountRef": "acme", "sourceRef": {"kind": "Database", "name": "db"},
                          "takenAt": "2026-10-01T02:00:00Z"}),
        ),
    ];
    for (kind, spec) in objects {
        let object = json!({"apiVersion": "hosting.ecuni.se/v1alpha1", "kind": kind,
                            "metadata": {"name": "x", "namespace": "acme"}, "spec": spec});
        assert_eq!(errors(kind, &object), Vec::<String>::new(), "{kind} valid");
        let mut missing = object.clone();
        missing["spec"]
            .as_object_mut()
            .unwrap()
            .remove("accountRef");
        assert!(
            !errors(kind, &missing).is_empty(),
            "{kind} without accountRef was accepted"
        );
    }
}

#[test]
fn enumerations_reject_unknown_values() {
    let cases = [
        ("Database", json!({"accountRef": "a", "engine": "oracle"})),
        (
            "DataRecord",
            json!({"accountRef": "a", "category": "secrets"}),
        ),
        ("Website", json!({"accountRef": "a", "legalBasis": "Whim"})),
        (
            "Backup",
            json!({"accountRef": "a", "sourceRef": {"kind": "Backup", "name": "b"},
                          "takenAt": "2026-10-01T02:00:00Z"}),
        ),
    ];
    for (kind, spec) in cases {
        let object = json!({"apiVersion": "hosting.ecuni.se/v1alpha1", "kind": kind,
                            "metadata": {"name": "x", "namespace": "a"}, "spec": spec});
        assert!(
            !errors(kind, &object).is_empty(),
            "{kind} {spec} was accepted"
        );
    }
}

#[test]
fn bookkeeping_fiscal_year_end_must_be_a_date() {
    let record = |end: &str| {
        json!({"apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "DataRecord",
               "metadata": {"name": "inv", "namespace": "a"},
               "spec": {"accountRef": "a", "category": "invoices", "legalBasis": "LegalObligation",
                        "bookkeeping": {"fiscalYearEnd": end}}})
    };
    assert_eq!(
        errors("DataRecord", &record("2026-12-31")),
        Vec::<String>::new()
    );
    for bad in ["2026-13-01", "31/12/2026", "2026"] {
        assert!(
            !errors("DataRecord", &record(bad)).is_empty(),
            "{bad} was accepted"
        );
    }
}

/// A name of `length` characters that is otherwise a valid DNS-1123 label or subdomain.
fn long_name(length: usize) -> String {
    "a".repeat(length)
}

/// Names that no reference may hold: empty, upper case, underscores, leading or trailing
/// dashes or dots, spaces, and a subdomain one character too long.
fn bad_subdomains() -> Vec<String> {
    [
        "", "Acme", "a_b", "-acme", "acme-", ".acme", "acme.", "a..b", "a b", "acme/x",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([long_name(254)])
    .collect()
}

fn good_subdomains() -> Vec<String> {
    ["acme", "a", "0", "acme-1", "key-systems.eu", "a.b-c.d"]
        .into_iter()
        .map(str::to_owned)
        .chain([long_name(253)])
        .collect()
}

/// Asserts that `object` is valid with every good name at `pointer` and refused with every bad
/// one.
fn assert_name_field(kind: &str, object: &Value, pointer: &str, good: &[String], bad: &[String]) {
    for name in good {
        let mut candidate = object.clone();
        *candidate.pointer_mut(pointer).unwrap() = json!(name);
        assert_eq!(
            errors(kind, &candidate),
            Vec::<String>::new(),
            "{kind} {pointer} = {name:?} was refused"
        );
    }
    for name in bad {
        let mut candidate = object.clone();
        *candidate.pointer_mut(pointer).unwrap() = json!(name);
        assert!(
            !errors(kind, &candidate).is_empty(),
            "{kind} {pointer} = {name:?} was accepted"
        );
    }
}

#[test]
fn references_to_other_objects_are_dns_1123_names() {
    let (good, bad) = (good_subdomains(), bad_subdomains());
    let bound = |kind: &str, spec: Value| {
        json!({"apiVersion": "hosting.ecuni.se/v1alpha1", "kind": kind,
               "metadata": {"name": "x", "namespace": "acme"}, "spec": spec})
    };
    let objects = [
        (
            "Website",
            bound(
                "Website",
                json!({"accountRef": "acme", "processorRef": "ks"}),
            ),
        ),
        (
            "Database",
            bound(
                "Database",
                json!({"accountRef": "acme", "engine": "mariadb", "processorRef": "ks"}),
            ),
        ),
        (
            "Mailbox",
            bound(
                "Mailbox",
                json!({"accountRef": "acme", "address": "info@example.com", "processorRef": "ks"}),
            ),
        ),
        (
            "Domain",
            bound(
                "Domain",
                json!({"accountRef": "acme", "fqdn": "example.com", "registrar": "ks", "processorRef": "ks"}),
            ),
        ),
        (
            "DataRecord",
            bound(
                "DataRecord",
                json!({"accountRef": "acme", "category": "crm", "processorRef": "ks"}),
            ),
        ),
    ];
    for (kind, object) in &objects {
        assert_name_field(kind, object, "/spec/accountRef", &good, &bad);
        assert_name_field(kind, object, "/spec/processorRef", &good, &bad);
    }
    assert_name_field("Domain", &objects[3].1, "/spec/registrar", &good, &bad);
    let backup = bound(
        "Backup",
        json!({"accountRef": "acme", "sourceRef": {"kind": "Database", "name": "db"},
               "takenAt": "2026-10-01T02:00:00Z"}),
    );
    assert_name_field("Backup", &backup, "/spec/accountRef", &good, &bad);
    assert_name_field("Backup", &backup, "/spec/sourceRef/name", &good, &bad);
    let mut account = account("Active");
    account["spec"]["retentionPolicyRef"] = json!("default");
    assert_name_field("Account", &account, "/spec/retentionPolicyRef", &good, &bad);
}

#[test]
fn a_webhook_secret_reference_names_a_secret_its_namespace_and_a_key() {
    let processor = json!({
        "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "DataProcessor",
        "metadata": {"name": "key-systems"},
        "spec": {"legalName": "Key-Systems GmbH", "country": "DE",
                 "erasure": {"webhook": {"url": "https://erasure.key-systems.example/api",
                     "secretRef": {"namespace": "retention-system", "name": "ks-hmac",
                                   "key": "secret"}}}}
    });
    assert_eq!(errors("DataProcessor", &processor), Vec::<String>::new());
    let secret_ref = "/spec/erasure/webhook/secretRef";
    assert_name_field(
        "DataProcessor",
        &processor,
        &format!("{secret_ref}/name"),
        &good_subdomains(),
        &bad_subdomains(),
    );
    // A namespace is a DNS-1123 label: no dots, at most 63 characters.
    let labels: Vec<String> = ["retention-system", "a", "ns-1"]
        .into_iter()
        .map(str::to_owned)
        .chain([long_name(63)])
        .collect();
    let not_labels: Vec<String> = ["", "Retention", "a.b", "-ns", "ns-", "a_b"]
        .into_iter()
        .map(str::to_owned)
        .chain([long_name(64)])
        .collect();
    assert_name_field(
        "DataProcessor",
        &processor,
        &format!("{secret_ref}/namespace"),
        &labels,
        &not_labels,
    );
    // A key of a Secret's data: letters, digits, '-', '_' and '.'.
    let keys: Vec<String> = ["secret", "hmac.key", "HMAC_KEY", "-a", ".key", "a-b_c.D9"]
        .into_iter()
        .map(str::to_owned)
        .chain([long_name(253)])
        .collect();
    let not_keys: Vec<String> = ["", "a/b", "a b", "key:1", "ключ"]
        .into_iter()
        .map(str::to_owned)
        .chain([long_name(254)])
        .collect();
    assert_name_field(
        "DataProcessor",
        &processor,
        &format!("{secret_ref}/key"),
        &keys,
        &not_keys,
    );
}

#[test]
fn a_webhook_url_is_https_without_credentials() {
    let processor = |url: &str| {
        json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "DataProcessor",
            "metadata": {"name": "key-systems"},
            "spec": {"legalName": "Key-Systems GmbH", "country": "DE",
                     "erasure": {"webhook": {"url": url,
                         "secretRef": {"namespace": "retention-system", "name": "ks-hmac",
                                       "key": "secret"}}}}
        })
    };
    for good in [
        "https://erasure.key-systems.example/api",
        "https://erasure.example",
        "https://erasure.example:8443/v1/erase?tenant=7#x",
        "https://[2001:db8::1]/erase",
        "https://erasure.example/path/with@at-sign",
    ] {
        assert_eq!(
            errors("DataProcessor", &processor(good)),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in [
        "https://user:pass@erasure.example/",
        "https://user@erasure.example/",
        "https://:pass@erasure.example/",
        "https://erasure.example\\@127.0.0.1/",
        "http://erasure.example/",
        "HTTPS://erasure.example/",
        "https://",
        "https:///path",
        "ftp://erasure.example/",
    ] {
        assert!(
            !errors("DataProcessor", &processor(bad)).is_empty(),
            "{bad:?} was accepted"
        );
    }
}
