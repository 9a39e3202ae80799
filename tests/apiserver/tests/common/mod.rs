//! Shared by the integration tests: a server with the fixture CRDs and a kube `Client` for it.
#![allow(dead_code)]

use test_apiserver::{Config, TestApiServer};

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
