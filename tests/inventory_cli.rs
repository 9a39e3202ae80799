//! `retention-operator inventory ACCOUNT`: everything bound to one account, read from the test
//! API server, in-process through `inventory::collect` and as a user runs the binary.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Output,
};

use kube::{
    Client, Resource,
    api::{Api, ApiResource, DynamicObject, PostParams},
};
use retention_operator::{
    api::{Account, Backup, DataProcessor, DataRecord, Domain, Mailbox, RetentionPolicy, Website},
    inventory::{self, InventoryError},
};
use serde_json::{Value, json};
use test_apiserver::{Config, FaultRule, TestApiServer};

const NOW: &str = "2026-11-23T00:00:00Z";
const NAMESPACE: &str = "cust-acme";
/// A second namespace: acme's invoices live elsewhere, and must be found all the same.
const BILLING: &str = "billing";

async fn start() -> (TestApiServer, Client) {
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let server = TestApiServer::start(
        Config::default()
            .crds(crds)
            .namespace(NAMESPACE)
            .namespace(BILLING),
    )
    .await
    .unwrap();
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    (server, client)
}

/// Creates an object of kind `K` from its manifest as JSON.
async fn create<K: Resource<DynamicType = ()>>(client: &Client, mut object: Value) {
    object["apiVersion"] = json!(K::api_version(&()));
    object["kind"] = json!(K::kind(&()));
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    let resource = ApiResource::erase::<K>(&());
    let api = match object.metadata.namespace.as_deref() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// The default policy, a registrar, the terminated account acme with five objects in two
/// namespaces, and objects that are not acme's: the active account globex's website, and a
/// mailbox bound to no account at all.
async fn seed(client: &Client) {
    create::<RetentionPolicy>(
        client,
        json!({"metadata": {"name": "default"}, "spec": {
            "gracePeriod": "30d", "gracePeriods": {"Mailbox": "14d"},
            "backups": {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 6,
                        "afterTermination": "90d"},
            "bookkeeping": {"years": 7}}}),
    )
    .await;
    create::<DataProcessor>(
        client,
        json!({"metadata": {"name": "key-systems"}, "spec": {
            "legalName": "Key Systems GmbH", "country": "DE",
            "purposes": ["domain-registration"]}}),
    )
    .await;
    create::<Account>(
        client,
        json!({"metadata": {"name": "acme"}, "spec": {
            "customerRef": "C-10442", "state": "Terminated",
            "terminatedAt": "2026-11-01T00:00:00Z"}}),
    )
    .await;
    create::<Account>(
        client,
        json!({"metadata": {"name": "globex"}, "spec": {"customerRef": "C-2"}}),
    )
    .await;
    create::<Website>(
        client,
        json!({"metadata": {"name": "www", "namespace": NAMESPACE}, "spec": {
            "accountRef": "acme", "processorRef": "key-systems", "hostnames": ["acme.se"]}}),
    )
    .await;
    create::<Mailbox>(
        client,
        json!({"metadata": {"name": "info", "namespace": NAMESPACE}, "spec": {
            "accountRef": "acme", "address": "info@acme.se"}}),
    )
    .await;
    create::<Domain>(
        client,
        json!({"metadata": {"name": "acme-se", "namespace": NAMESPACE}, "spec": {
            "accountRef": "acme", "fqdn": "acme.se", "registrar": "key-systems"}}),
    )
    .await;
    create::<DataRecord>(
        client,
        json!({"metadata": {"name": "invoices", "namespace": BILLING}, "spec": {
            "accountRef": "acme", "legalBasis": "LegalObligation", "category": "invoices",
            "bookkeeping": {"fiscalYearEnd": "2026-12-31"}}}),
    )
    .await;
    create::<Backup>(
        client,
        json!({"metadata": {"name": "www-20261031", "namespace": NAMESPACE}, "spec": {
            "accountRef": "acme", "sourceRef": {"kind": "Website", "name": "www"},
            "takenAt": "2026-10-31T02:00:00Z"}}),
    )
    .await;
    create::<Website>(
        client,
        json!({"metadata": {"name": "shop", "namespace": NAMESPACE}, "spec": {
            "accountRef": "globex", "hostnames": ["globex.se"]}}),
    )
    .await;
    create::<Mailbox>(
        client,
        json!({"metadata": {"name": "stray", "namespace": BILLING}, "spec": {
            "accountRef": "nobody", "address": "stray@example.com"}}),
    )
    .await;
}

/// acme's objects with the deleteAt each has at NOW: the mailbox after 14 days, the website and
/// domain after 30, the backup capped at 90 days after termination (its monthly slot would
/// keep it to 2027-04-30), the invoices until the end of the seventh year after 2026. In the
/// engine's order: by deleteAt, then kind (in the order of docs/design.md §2), namespace and name.
const ACME: [(&str, &str, &str, &str); 5] = [
    ("Mailbox", NAMESPACE, "info", "2026-11-15T00:00:00Z"),
    ("Website", NAMESPACE, "www", "2026-12-01T00:00:00Z"),
    ("Domain", NAMESPACE, "acme-se", "2026-12-01T00:00:00Z"),
    ("Backup", NAMESPACE, "www-20261031", "2027-01-30T00:00:00Z"),
    ("DataRecord", BILLING, "invoices", "2034-01-01T00:00:00Z"),
];

/// Writes the server's kubeconfig where the binary can read it.
fn kubeconfig_file(test: &str, contents: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inventory-cli");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.kubeconfig"));
    fs::write(&path, contents).unwrap();
    path
}

/// Runs `retention-operator inventory ARGS...` against the kubeconfig. On a blocking thread, so
/// the test server, which runs on this test's runtime, keeps serving meanwhile.
async fn run_inventory(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_retention-operator"));
    command
        .arg("inventory")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test]
async fn collect_reads_exactly_the_accounts_objects_and_writes_nothing() {
    let (server, client) = start().await;
    seed(&client).await;
    server.clear_requests();

    let found = inventory::collect(&client, "acme").await.unwrap();

    let accounts: Vec<_> = found
        .accounts
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(accounts, ["acme"]);
    assert_eq!(found.accounts[0].spec.customer_ref, "C-10442");
    assert_eq!(found.policies.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(found.processors.keys().collect::<Vec<_>>(), ["key-systems"]);
    let mut listed: Vec<(String, String, String)> = found
        .resources
        .iter()
        .map(|r| {
            assert_eq!(r.account, "acme", "{}", r.reference);
            let r = &r.reference;
            (r.kind.to_string(), r.namespace.clone(), r.name.clone())
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, String, String)> = ACME
        .iter()
        .map(|(kind, ns, name, _)| (kind.to_string(), ns.to_string(), name.to_string()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let requests = server.requests();
    assert!(
        requests.iter().all(|r| !r.is_write()),
        "inventory must only read: {requests:?}"
    );
}

#[tokio::test]
async fn binary_prints_the_accounts_objects_with_their_exact_schedule_as_json() {
    let (server, client) = start().await;
    seed(&client).await;
    let kubeconfig = kubeconfig_file("json", &server.kubeconfig());

    let output = run_inventory(&kubeconfig, &["acme", "--now", NOW, "-o", "json"]).await;

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "nothing is logged");
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["now"], NOW);
    assert_eq!(plan["unbound"], json!([]));
    let accounts = plan["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{plan:#}");
    let acme = &accounts[0];
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["customerRef"], "C-10442");
    assert_eq!(acme["state"], "Terminated");
    assert_eq!(acme["phase"], "Erasing", "the mailbox is due");
    assert_eq!(acme["terminatedAt"], "2026-11-01T00:00:00Z");
    let listed: Vec<(&str, &str, &str, &str)> = acme["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["deleteAt"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, ACME);
    let resource = |name: &str| {
        acme["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(resource("www")["processors"], json!(["key-systems"]));
    assert_eq!(resource("acme-se")["processors"], json!(["key-systems"]));
    assert_eq!(resource("invoices")["legalBasis"], "LegalObligation");
    assert_eq!(resource("info")["legalBasis"], "Contract");
    assert_eq!(resource("invoices")["disposition"], "retain");
    assert!(
        resource("www")["reason"]
            .as_str()
            .unwrap()
            .contains("grace period")
    );
    assert_eq!(
        acme["notifications"],
        json!([{"processor": "key-systems", "at": "2026-12-01T00:00:00Z", "delivery": "Manual",
                "resources": [
                    {"kind": "Website", "namespace": NAMESPACE, "name": "www"},
                    {"kind": "Domain", "namespace": NAMESPACE, "name": "acme-se"}]}])
    );
}

#[tokio::test]
async fn binary_table_shows_the_account_its_schedule_and_its_processors() {
    let (server, client) = start().await;
    seed(&client).await;
    let kubeconfig = kubeconfig_file("table", &server.kubeconfig());

    let output = run_inventory(&kubeconfig, &["acme", "--now", NOW]).await;

    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "Account acme (customer C-10442): Terminated, phase Erasing, \
             terminated 2026-11-01T00:00:00Z"
        ),
        "{text}"
    );
    assert!(text.contains("2034-01-01T00:00:00Z"), "{text}");
    assert!(text.contains("DataRecord billing/invoices"), "{text}");
    let mailbox = text
        .lines()
        .find(|line| line.contains("Mailbox cust-acme/info"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = mailbox.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            "2026-11-15T00:00:00Z",
            "(due)",
            "erase",
            "Mailbox",
            "cust-acme/info",
            "Contract"
        ],
        "{text}"
    );
    assert!(
        text.contains("Also held by data processors (account acme):\n")
            && text.contains("  Website cust-acme/www: key-systems\n")
            && text.contains("  Domain cust-acme/acme-se: key-systems\n"),
        "{text}"
    );
    for other in ["globex", "shop", "stray", "nobody"] {
        assert!(!text.contains(other), "{other} is not acme's: {text}");
    }
}

#[tokio::test]
async fn a_missing_account_is_bad_input_named_in_the_message() {
    let (server, client) = start().await;
    seed(&client).await;

    let error = inventory::collect(&client, "ghost").await.unwrap_err();
    assert!(matches!(error, InventoryError::AccountNotFound(ref a) if a == "ghost"));

    let kubeconfig = kubeconfig_file("missing", &server.kubeconfig());
    let output = run_inventory(&kubeconfig, &["ghost", "--now", NOW, "-o", "json"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "nothing is half-printed");
    assert_eq!(stderr(&output), "error: Account \"ghost\" does not exist\n");

    let output = run_inventory(&kubeconfig, &["Not/AName"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("\"Not/AName\" is not a valid Account name"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_missing_policy_is_bad_input_with_the_plan_message() {
    let (server, client) = start().await;
    create::<Account>(
        &client,
        json!({"metadata": {"name": "orphan"}, "spec": {
            "customerRef": "C-3", "retentionPolicyRef": "gone"}}),
    )
    .await;
    let kubeconfig = kubeconfig_file("policy", &server.kubeconfig());

    let output = run_inventory(&kubeconfig, &["orphan", "--now", NOW]).await;

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error: account \"orphan\" refers to RetentionPolicy \"gone\", which does not exist\n"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_exits_1() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = kubeconfig_file(
        "unreachable",
        &test_apiserver::kubeconfig(&format!("http://127.0.0.1:{port}")),
    );

    let output = run_inventory(&kubeconfig, &["acme", "--now", NOW]).await;

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    let message = stderr(&output);
    assert!(
        message.starts_with("error: cannot reach the cluster to read Account \"acme\": "),
        "{message}"
    );
}

#[tokio::test]
async fn an_api_error_is_reported_with_what_was_being_read() {
    // 403 as when RBAC lacks a rule (kube's client itself retries 429, 503 and 504 at length).
    let (server, client) = start().await;
    seed(&client).await;
    server.update_faults(|faults| {
        faults
            .rules
            .push(FaultRule::always(403).verb("list").resource("backups"));
    });

    let error = inventory::collect(&client, "acme").await.unwrap_err();

    assert_eq!(error.exit_code(), 1);
    let message = error.to_string();
    assert!(
        message.starts_with("the API server refused to list backups.hosting.ecuni.se: "),
        "{message}"
    );
}

/// A processor outside the EU/EEA without a transfer mechanism holding the account's mailbox
/// is flagged in the table and the JSON.
#[tokio::test]
async fn binary_flags_a_third_country_transfer_without_a_mechanism() {
    let (server, client) = start().await;
    seed(&client).await;
    create::<DataProcessor>(
        &client,
        json!({"metadata": {"name": "us-mail"}, "spec": {
            "legalName": "Example Mail Inc.", "country": "US"}}),
    )
    .await;
    create::<Mailbox>(
        &client,
        json!({"metadata": {"name": "sales", "namespace": NAMESPACE}, "spec": {
            "accountRef": "acme", "address": "sales@acme.se", "processorRef": "us-mail"}}),
    )
    .await;
    let kubeconfig = kubeconfig_file("transfers", &server.kubeconfig());

    let output = run_inventory(&kubeconfig, &["acme", "--now", NOW]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("third-country transfer: us-mail (US) without a transfer mechanism"),
        "{text}"
    );
    assert!(!text.contains("key-systems (DE)"), "{text}");

    let output = run_inventory(&kubeconfig, &["acme", "--now", NOW, "-o", "json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        plan["accounts"][0]["thirdCountryTransfers"],
        json!([{"processor": "us-mail", "legalName": "Example Mail Inc.", "country": "US"}])
    );
}
