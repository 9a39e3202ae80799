//! The checked-in `crds/` must be exactly what the Rust types generate.

use std::{collections::BTreeSet, fs, path::Path};

use retention_operator::{api::all_crds, crds};

const REGENERATE: &str = "run `cargo run -- crds --out-dir crds` and commit the result";

#[test]
fn every_checked_in_crd_matches_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for crd in all_crds() {
        let path = dir.join(crds::file_name(&crd));
        let on_disk = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}): {REGENERATE}", path.display()));
        let generated = crds::render(&crd).unwrap();
        assert!(
            on_disk == generated,
            "{} has drifted from the Rust types: {REGENERATE}",
            path.display()
        );
    }
}

#[test]
fn crds_directory_holds_nothing_else() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let expected: BTreeSet<String> = all_crds().iter().map(crds::file_name).collect();
    let actual: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(actual, expected, "stale files in crds/: {REGENERATE}");
}

#[test]
fn there_is_one_crd_per_kind_of_the_design() {
    let kinds: Vec<String> = all_crds().into_iter().map(|c| c.spec.names.kind).collect();
    assert_eq!(
        kinds,
        [
            "Account",
            "Website",
            "Database",
            "Mailbox",
            "Domain",
            "DataRecord",
            "Backup",
            "RetentionPolicy",
            "DataProcessor",
            "ErasureReceipt"
        ]
    );
}

#[test]
fn every_crd_has_status_category_and_short_name() {
    let short_names = [
        ("Account", "acct"),
        ("Website", "web"),
        ("Database", "hdb"),
        ("Mailbox", "mbx"),
        ("Domain", "dom"),
        ("DataRecord", "drec"),
        ("Backup", "bkp"),
        ("RetentionPolicy", "rpol"),
        ("DataProcessor", "dproc"),
    ];
    for (crd, (kind, short)) in all_crds().iter().zip(short_names) {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.group, "hosting.ecuni.se");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["hosting".to_owned()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has no status subresource"
        );
        let cluster_scoped = matches!(kind, "Account" | "RetentionPolicy" | "DataProcessor");
        let scope = if cluster_scoped {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, scope, "{kind}");
    }
}

#[test]
fn printer_columns_show_what_an_sre_needs() {
    let columns = |kind: &str| -> Vec<String> {
        let crd = all_crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap();
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(
        columns("Account"),
        [
            "Customer",
            "State",
            "Phase",
            "Ready",
            "Hold",
            "Next deletion",
            "Age"
        ]
    );
    assert_eq!(
        columns("Backup"),
        ["Account", "Source", "Taken", "Expires", "Bound", "Age"]
    );
    for hosted in ["Website", "Database", "Mailbox", "Domain", "DataRecord"] {
        assert_eq!(
            columns(hosted),
            ["Account", "Bound", "Delete at", "Age"],
            "{hosted}"
        );
    }
}

/// Every status's `conditions` is a map list keyed by `type`, as Kubernetes' own conditions
/// are: another controller can server-side apply a condition of its own beside the operator's.
#[test]
fn conditions_are_map_lists_keyed_by_type() {
    let mut seen = Vec::new();
    for crd in all_crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let conditions = schema
            .pointer("/openAPIV3Schema/properties/status/properties/conditions")
            .cloned();
        let Some(conditions) = conditions else {
            continue;
        };
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{kind}: {conditions}"
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
        let required = conditions["items"]["required"].as_array().unwrap();
        assert!(
            required.iter().any(|r| r == "type"),
            "{kind}: a map key must be required"
        );
        seen.push(kind);
    }
    for kind in [
        "Account",
        "Website",
        "Backup",
        "RetentionPolicy",
        "DataProcessor",
    ] {
        assert!(
            seen.iter().any(|k| k == kind),
            "{kind} has no conditions: {seen:?}"
        );
    }
}
