//! The generated CRDs at an API server: the test API server (which validates custom resources
//! against their openAPIV3Schema as kube-apiserver does) loads `crds/` and refuses with 422
//! what the schema refuses, so such input never reaches the operator.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::{Value, json};
use test_apiserver::{Config, TestApiServer};

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
const NAMESPACE: &str = "acme";

async fn server() -> (TestApiServer, Client) {
    let server = TestApiServer::start(Config::default().crds(CRDS).namespace(NAMESPACE))
        .await
        .unwrap();
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    (server, client)
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("hosting.ecuni.se", "v1alpha1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// Creates a `kind` named `name` with `spec` (in [`NAMESPACE`] when `namespaced`); returns the
/// HTTP status of the answer (201 when created).
async fn create(client: &Client, kind: &str, plural: &str, name: &str, spec: Value) -> u16 {
    let resource = resource(kind, plural);
    let namespaced = !matches!(kind, "Account" | "RetentionPolicy" | "DataProcessor");
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), NAMESPACE, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let object = DynamicObject::new(name, &resource).data(json!({ "spec": spec }));
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => 201,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("{kind} {name}: {other}"),
    }
}

#[tokio::test]
async fn a_bound_object_with_an_empty_or_invalid_account_ref_is_refused() {
    let (_server, client) = server().await;
    let website = |account: &str| json!({"accountRef": account, "hostnames": []});
    assert_eq!(
        create(&client, "Website", "websites", "www", website("acme")).await,
        201
    );
    for (name, account) in [("empty", ""), ("upper", "Acme"), ("underscore", "a_b")] {
        assert_eq!(
            create(&client, "Website", "websites", name, website(account)).await,
            422,
            "accountRef {account:?}"
        );
    }
    let backup = json!({"accountRef": "", "sourceRef": {"kind": "Website", "name": "www"},
                        "takenAt": "2026-10-01T02:00:00Z"});
    assert_eq!(
        create(&client, "Backup", "backups", "www-1", backup).await,
        422
    );
}

#[tokio::test]
async fn a_policy_with_an_unrepresentable_duration_or_count_is_refused() {
    let (_server, client) = server().await;
    let policy = |grace: &str, keep_daily: Value| {
        json!({"gracePeriod": grace,
               "backups": {"keepDaily": keep_daily, "keepWeekly": 4, "keepMonthly": 6}})
    };
    let create_policy = |name: &'static str, spec: Value| {
        let client = client.clone();
        async move { create(&client, "RetentionPolicy", "retentionpolicies", name, spec).await }
    };
    assert_eq!(
        create_policy("ok", policy("999999d", json!(999_999))).await,
        201
    );
    for (name, spec) in [
        ("grace-20", policy("99999999999999999999d", json!(7))),
        ("grace-11", policy("99999999999d", json!(7))),
        ("daily-2-40", policy("30d", json!(1_099_511_627_776_u64))),
        ("daily-7", policy("30d", json!(1_000_000))),
    ] {
        assert_eq!(create_policy(name, spec).await, 422, "{name}");
    }
}

#[tokio::test]
async fn a_processor_whose_webhook_url_carries_credentials_is_refused() {
    let (_server, client) = server().await;
    let processor = |url: &str| {
        json!({"legalName": "Key-Systems GmbH", "country": "DE",
               "erasure": {"webhook": {"url": url,
                   "secretRef": {"namespace": "ops", "name": "ks-hmac", "key": "secret"}}}})
    };
    let create_processor = |name: &'static str, spec: Value| {
        let client = client.clone();
        async move { create(&client, "DataProcessor", "dataprocessors", name, spec).await }
    };
    assert_eq!(
        create_processor("ok", processor("https://erasure.example/api")).await,
        201
    );
    assert_eq!(
        create_processor("creds", processor("https://user:pass@erasure.example/api")).await,
        422
    );
}
