//! Shared by the integration tests: a server with the fixture CRDs and a kube `Client` for it.
#![allow(dead_code)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use test_apiserver::{Config, TestApiServer};

/// The fixture `Widget`, typed with the fields the tests set.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced
)]
pub struct WidgetSpec {
    pub owner: String,
    pub size: i64,
}

/// The fixture `Gadget` (cluster-scoped), typed.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "test.example.com", version = "v1", kind = "Gadget")]
pub struct GadgetSpec {
    pub level: i64,
}

/// The fixture CRDs (`Widget`, namespaced with a status subresource; `Gadget`, cluster-scoped).
pub const FIXTURE_CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds.yaml");

/// Starts a server with the fixture CRDs and returns it with a client pointed at it.
pub async fn start() -> (TestApiServer, kube::Client) {
    start_with(Config::default()).await
}

/// Starts a server from `config` plus the fixture CRDs and returns it with a client.
pub async fn start_with(config: Config) -> (TestApiServer, kube::Client) {
    let server = TestApiServer::start(config.crds(FIXTURE_CRDS))
        .await
        .expect("the test server starts");
    let client = client_for(&server);
    (server, client)
}

/// A kube `Client` for `server`.
pub fn client_for(server: &TestApiServer) -> kube::Client {
    let url = server.url().parse().expect("the server URL parses");
    kube::Client::try_from(kube::Config::new(url)).expect("a client for the test server")
}

/// A server with the fixture CRDs and a client that does not retry, so a test sees every
/// injected 429 and 503 (kube retries them by default).
pub async fn start_without_retries() -> (TestApiServer, kube::Client) {
    let server = TestApiServer::start(Config::default().crds(FIXTURE_CRDS))
        .await
        .expect("the test server starts");
    let mut config = kube::Config::new(server.url().parse().expect("the server URL parses"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("a client for the test server");
    (server, client)
}
