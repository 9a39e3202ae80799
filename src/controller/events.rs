//! Events: published through a recorder of this operator's own, and grouped, so that a pass
//! publishes one event per kind of news on an account, not one per object.
//!
//! kube-runtime's `Recorder` does what client-go's does: an event repeated within six minutes
//! is a patch of the first one's `series` instead of a new object. But on every publish it
//! walks its whole six-minute cache under a write lock to drop what expired, so each event
//! costs more than the last: a burst of 10,000 deletions spent 43% of the operator's CPU
//! there. Here the cache expires through a queue ordered by time, at constant cost per event,
//! and a repeat is only an event with the same note (kube's merges events whose notes differ,
//! keeping the first note, so a later "7 objects deleted" would show as the earlier "3").

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use serde_json::json;

use crate::retention::ResourceRef;

/// How long a published event is remembered, so that the same event within it extends its
/// series (client-go's and kube-runtime's six minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The longest note the API server accepts (events.k8s.io/v1: 1 kB).
pub const NOTE_LIMIT: usize = 1024;

/// Publishes events, a repeat within six minutes as a patch of its series.
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    series: Mutex<SeriesCache>,
}

impl EventRecorder {
    /// A recorder that publishes as `reporter` through `client`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::new(SeriesCache::default()),
        }
    }

    /// Publishes `event` regarding `regarding` (in its namespace; "default" for a
    /// cluster-scoped object, as kube's recorder does).
    ///
    /// # Errors
    /// The API server's refusal of the create or patch.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = EventKey::of(event, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.cache().repeat_of(&key, Instant::now());
        let (name, count) = match repeat {
            Some(Repeat { name, count }) => {
                let patch = json!({
                    "series": { "count": count, "lastObservedTime": MicroTime(Timestamp::now()) }
                });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => (name, count),
                    // The first event is gone (deleted, or expired early): start a new one.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        (self.create(&events, event, regarding).await?, 1)
                    }
                    Err(error) => return Err(error),
                }
            }
            None => (self.create(&events, event, regarding).await?, 1),
        };
        self.cache().record(key, name, count, Instant::now());
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        // The cache only saves requests: one a panic left half-updated is still usable.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the event; its name.
    async fn create(
        &self,
        events: &Api<K8sEvent>,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<String, kube::Error> {
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let object = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: events_namespace(regarding),
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(type_name(event.type_).to_owned()),
            ..K8sEvent::default()
        };
        events.create(&PostParams::default(), &object).await?;
        Ok(name)
    }
}

fn events_namespace(regarding: &ObjectReference) -> Option<String> {
    Some(
        regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
    )
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// What makes two events the same event: the same news about the same objects.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct EventKey {
    type_: &'static str,
    reason: String,
    note: Option<String>,
    regarding: ObjectKey,
    related: Option<ObjectKey>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ObjectKey {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl ObjectKey {
    fn of(reference: &ObjectReference) -> Self {
        Self {
            kind: reference.kind.clone(),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

impl EventKey {
    fn of(event: &Event, regarding: &ObjectReference) -> Self {
        Self {
            type_: type_name(event.type_),
            reason: event.reason.clone(),
            note: event.note.clone(),
            regarding: ObjectKey::of(regarding),
            related: event.secondary.as_ref().map(ObjectKey::of),
        }
    }
}

/// An event seen before within the window: the name of its first publication, and the
/// count its series reaches with this one.
#[derive(Debug, PartialEq, Eq)]
struct Repeat {
    name: String,
    count: i32,
}

/// The events published within the last [`SERIES_WINDOW`].
#[derive(Default)]
struct SeriesCache {
    seen: HashMap<EventKey, Seen>,
    /// Every publication in time order, to expire the oldest first.
    order: VecDeque<(Instant, EventKey)>,
}

struct Seen {
    name: String,
    count: i32,
    last: Instant,
}

impl SeriesCache {
    /// Forgets what expired by `now`, then tells whether `key` repeats an event still
    /// remembered.
    fn repeat_of(&mut self, key: &EventKey, now: Instant) -> Option<Repeat> {
        self.expire(now);
        self.seen.get(key).map(|seen| Repeat {
            name: seen.name.clone(),
            count: seen.count.saturating_add(1),
        })
    }

    /// Remembers that `key` was published as `name`, the `count`th time in its series.
    fn record(&mut self, key: EventKey, name: String, count: i32, now: Instant) {
        self.order.push_back((now, key.clone()));
        self.seen.insert(
            key,
            Seen {
                name,
                count,
                last: now,
            },
        );
    }

    /// Drops the events last published a whole window before `now`: each publication is
    /// looked at once, when it leaves the window.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < SERIES_WINDOW {
                break;
            }
            let Some((at, key)) = self.order.pop_front() else {
                break;
            };
            // A later publication of the same event keeps it.
            if self.seen.get(&key).is_some_and(|seen| seen.last == at) {
                self.seen.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// A note about several objects: `lead`, then each group's objects and what is said of
/// them (`"Website cust-a/www, Database cust-a/db at 2026-12-01T00:00:00Z (grace period 30d)"`),
/// cut to [`NOTE_LIMIT`] with how many objects the cut left out. The audit log and
/// `retention-operator inventory` name every object.
pub fn group_note(lead: &str, groups: &[(String, Vec<&ResourceRef>)]) -> String {
    let total: usize = groups.iter().map(|(_, objects)| objects.len()).sum();
    let mut note = format!("{lead}:");
    let mut named = 0;
    'groups: for (index, (said, objects)) in groups.iter().enumerate() {
        let mut part = String::from(if index == 0 { " " } else { "; " });
        for (position, object) in objects.iter().enumerate() {
            let name = format!("{}{object}", if position == 0 { "" } else { ", " });
            let left = total - named - 1;
            // Room for this name, the group's words and the tail that counts the rest.
            let tail = if left == 0 { 0 } else { omitted(left).len() };
            if note.len() + part.len() + name.len() + 1 + said.len() + tail > NOTE_LIMIT {
                if position > 0 {
                    note.push_str(&part);
                    note.push(' ');
                    note.push_str(said);
                }
                note.push_str(&omitted(total - named));
                break 'groups;
            }
            part.push_str(&name);
            named += 1;
        }
        note.push_str(&part);
        if !said.is_empty() {
            note.push(' ');
            note.push_str(said);
        }
    }
    truncate(note)
}

fn omitted(count: usize) -> String {
    format!(" … and {count} more")
}

/// `note` cut to [`NOTE_LIMIT`] bytes on a character boundary.
pub fn truncate(mut note: String) -> String {
    if note.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// "1 object" or "N objects".
pub fn objects(count: usize) -> String {
    if count == 1 {
        "1 object".to_owned()
    } else {
        format!("{count} objects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceKind;

    fn key(note: &str) -> EventKey {
        EventKey {
            type_: "Normal",
            reason: "Deleted".into(),
            note: Some(note.into()),
            regarding: ObjectKey {
                kind: Some("Account".into()),
                namespace: None,
                name: Some("acme".into()),
                uid: None,
            },
            related: None,
        }
    }

    #[test]
    fn a_repeat_within_the_window_extends_the_series_and_a_later_one_starts_anew() {
        let start = Instant::now();
        let mut cache = SeriesCache::default();
        assert_eq!(cache.repeat_of(&key("3 objects deleted"), start), None);
        cache.record(key("3 objects deleted"), "acme.1".into(), 1, start);
        let later = start + Duration::from_secs(60);
        assert_eq!(
            cache.repeat_of(&key("3 objects deleted"), later),
            Some(Repeat {
                name: "acme.1".into(),
                count: 2
            })
        );
        assert_eq!(
            cache.repeat_of(&key("7 objects deleted"), later),
            None,
            "another note is other news"
        );
        cache.record(key("3 objects deleted"), "acme.1".into(), 2, later);
        // Six minutes after the first, the repeat keeps it; six after the repeat, it is gone.
        assert!(
            cache
                .repeat_of(&key("3 objects deleted"), start + SERIES_WINDOW)
                .is_some()
        );
        assert_eq!(
            cache.repeat_of(&key("3 objects deleted"), later + SERIES_WINDOW),
            None
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn expiry_looks_at_each_publication_once() {
        let start = Instant::now();
        let mut cache = SeriesCache::default();
        for i in 0..10_000 {
            cache.record(
                key(&format!("{i}")),
                format!("e{i}"),
                1,
                start + Duration::from_millis(i),
            );
        }
        cache.expire(start + SERIES_WINDOW + Duration::from_millis(4_999));
        assert_eq!(
            cache.len(),
            5_000,
            "those published in the last window stay"
        );
        assert_eq!(cache.order.len(), 5_000);
    }

    fn website(name: &str) -> ResourceRef {
        ResourceRef {
            kind: ResourceKind::Website,
            namespace: "cust-acme".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_group_note_names_each_object_with_what_is_said_of_its_group() {
        let (www, shop, blog) = (website("www"), website("shop"), website("blog"));
        let note = group_note(
            "3 objects deleted",
            &[
                ("(grace period 30d)".into(), vec![&www, &shop]),
                ("(backup schedule)".into(), vec![&blog]),
            ],
        );
        assert_eq!(
            note,
            "3 objects deleted: Website cust-acme/www, Website cust-acme/shop (grace period \
             30d); Website cust-acme/blog (backup schedule)"
        );
    }

    #[test]
    fn a_long_group_note_is_cut_to_the_limit_and_counts_what_it_left_out() {
        let sites: Vec<ResourceRef> = (0..200).map(|i| website(&format!("site-{i:03}"))).collect();
        let note = group_note(
            "200 objects deleted",
            &[("(grace period 30d)".into(), sites.iter().collect())],
        );
        assert!(note.len() <= NOTE_LIMIT, "{} bytes", note.len());
        let named = note.matches("Website ").count();
        assert!(named > 10, "{note}");
        assert!(
            note.ends_with(&format!(" … and {} more", 200 - named)),
            "{note}"
        );
        assert!(note.contains("(grace period 30d)"), "{note}");
    }
}
