//! How the caches fill, at start and after a watch could not resume (410 Gone, as after an
//! etcd compaction): streaming lists where the API server offers them, paged lists otherwise.
//!
//! A streaming list (KEP-3157, `sendInitialEvents`) is a watch that first sends every current
//! object, one event each, then a bookmark marking their end. The API server serves it from
//! its watch cache, and no continue token can expire under it: a paged list of a large kind is
//! cut by 410 when etcd compacts between two pages and starts over, again and again under
//! load. Whether the server offers it is found out once, at start, with a watch that selects
//! nothing: a server with the feature answers it with that bookmark at once; one without
//! refuses the parameter (422) or ignores it, and then sends no such bookmark.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client,
    api::{WatchEvent, WatchParams},
    runtime::watcher,
};
use tracing::{info, warn};

use crate::api::RetentionPolicy;

/// How the caches list what they watch (`--initial-lists`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InitialLists {
    /// Streaming lists if the API server answers the probe with them, paged lists otherwise.
    #[default]
    Auto,
    /// Streaming lists, without asking (a server without them leaves the caches unsynced).
    Streaming,
    /// Paged lists (500 objects a page), as before Kubernetes offered streaming lists.
    Paged,
}

/// The bookmark annotation that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A selector no object carries: the probe's watch sends nothing but its bookmark.
const PROBE_SELECTOR: &str = "hosting.ecuni.se/streaming-list-probe=none";

/// How long the probe waits for the bookmark before it settles for paged lists.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The watcher configuration every cache uses, after asking the API server when `lists` is
/// [`InitialLists::Auto`].
pub async fn watcher_config(client: &Client, lists: InitialLists) -> watcher::Config {
    let streaming = match lists {
        InitialLists::Streaming => true,
        InitialLists::Paged => false,
        InitialLists::Auto => {
            let offered = streaming_lists_offered(client).await;
            if offered {
                info!("the API server offers streaming lists: the caches fill through them");
            } else {
                info!("the API server offers no streaming lists: the caches fill page by page");
            }
            offered
        }
    };
    if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    }
}

/// Whether the API server answers a streaming list: a watch with `sendInitialEvents` whose
/// selector matches nothing, which it ends with the bookmark at once.
pub async fn streaming_lists_offered(client: &Client) -> bool {
    let policies: Api<RetentionPolicy> = Api::all(client.clone());
    let params = WatchParams {
        label_selector: Some(PROBE_SELECTOR.to_owned()),
        bookmarks: true,
        send_initial_events: true,
        timeout: Some(PROBE_TIMEOUT.as_secs().try_into().unwrap_or(10)),
        ..WatchParams::default()
    };
    let probe = async {
        let mut events = match policies.watch(&params, "0").await {
            Ok(events) => events.boxed(),
            Err(error) => {
                // 422 from a server with the feature off; anything else is no better a sign.
                info!(%error, "streaming list refused");
                return false;
            }
        };
        while let Ok(Some(event)) = events.try_next().await {
            if let WatchEvent::Bookmark(bookmark) = event
                && bookmark
                    .metadata
                    .annotations
                    .contains_key(INITIAL_EVENTS_END)
            {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| {
            warn!("no answer to the streaming list probe in time");
            false
        })
}
