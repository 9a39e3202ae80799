//! Loads 10,000 Widgets into an in-process test-apiserver as fast as kube's client allows, then
//! measures a paginated list and a kube-runtime reflector's initial sync, and the process's
//! resident memory. Figures are printed as a Markdown table, never asserted.
//!
//! `cargo bench -p test-apiserver --bench reflector_10k`

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client, CustomResource,
    api::{ListParams, PostParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use test_apiserver::{Config, TestApiServer};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced
)]
struct WidgetSpec {
    owner: String,
    size: i64,
    color: String,
    tags: Vec<String>,
}

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds.yaml");
const OBJECTS: usize = 10_000;
const NAMESPACES: [&str; 4] = ["bench-a", "bench-b", "bench-c", "bench-d"];
/// Creates in flight at once.
const CONCURRENCY: usize = 64;
/// The longest the reflector may take before the benchmark gives up.
const SYNC_LIMIT: Duration = Duration::from_secs(90);

/// The process's resident set size in KiB, from /proc/self/status.
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn per_second(count: usize, elapsed: Duration, what: &str) -> String {
    format!("{:.0} {what}/s", count as f64 / elapsed.as_secs_f64())
}

fn widget(i: usize) -> Widget {
    Widget::new(
        &format!("widget-{i:05}"),
        WidgetSpec {
            owner: format!("team-{}", i % 17),
            size: (i % 5) as i64 + 1,
            color: ["red", "green", "blue"][i % 3].into(),
            tags: vec!["bench".into(), format!("batch-{}", i / 1000)],
        },
    )
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rss_empty = rss_kib();
    let mut config = Config::default().crds(CRDS);
    for namespace in NAMESPACES {
        config = config.namespace(namespace);
    }
    let server = TestApiServer::start(config).await?;
    let client = Client::try_from(kube::Config::new(server.url().parse()?))?;
    let apis: Vec<Api<Widget>> = NAMESPACES
        .iter()
        .map(|ns| Api::namespaced(client.clone(), ns))
        .collect();
    let rss_started = rss_kib();

    // Creates.
    let started = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            async move { api.create(&PostParams::default(), &widget(i)).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await?;
    let create_time = started.elapsed();
    let rss_loaded = rss_kib();

    // A paginated list of every namespace, 500 a page as client-go and kube's watcher page.
    let all: Api<Widget> = Api::all(client.clone());
    let started = Instant::now();
    let mut listed = 0;
    let mut pages = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = all.list(&params).await?;
        listed += page.items.len();
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let list_time = started.elapsed();

    // A reflector: list + watch with the default page size, until its store holds everything.
    let (store, writer) = reflector::store::<Widget>();
    let started = Instant::now();
    let reflecting = reflector::reflector(
        writer,
        watcher(all.clone(), watcher::Config::default()).default_backoff(),
    )
    .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(reflecting);
    while store.len() < OBJECTS {
        if started.elapsed() > SYNC_LIMIT {
            return Err(format!(
                "the reflector holds {} of {OBJECTS} after {SYNC_LIMIT:?}",
                store.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let sync_time = started.elapsed();
    let rss_reflected = rss_kib();
    task.abort();

    let stored = server.object_count();
    println!();
    println!("| Measure | Value |");
    println!("|---|---|");
    println!(
        "| Widgets created | {OBJECTS} in {} namespaces, {CONCURRENCY} in flight |",
        NAMESPACES.len()
    );
    println!("| Create time | {:.2} s |", create_time.as_secs_f64());
    println!(
        "| Create throughput | {} |",
        per_second(OBJECTS, create_time, "requests")
    );
    println!(
        "| Paginated list (limit 500) | {listed} objects, {pages} pages in {:.0} ms |",
        list_time.as_secs_f64() * 1000.0
    );
    println!(
        "| List throughput | {} |",
        per_second(listed, list_time, "objects")
    );
    println!(
        "| Reflector sync (list + watch, page 500) | {:.0} ms |",
        sync_time.as_secs_f64() * 1000.0
    );
    println!(
        "| Reflector throughput | {} |",
        per_second(OBJECTS, sync_time, "objects")
    );
    println!("| Objects in the server's store | {stored} |");
    println!("| RSS before the server starts | {} |", mib(rss_empty));
    println!("| RSS with the server started | {} |", mib(rss_started));
    println!("| RSS after creating {OBJECTS} | {} |", mib(rss_loaded));
    println!(
        "| RSS after the reflector synced | {} |",
        mib(rss_reflected)
    );
    println!();
    server.shutdown().await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}
