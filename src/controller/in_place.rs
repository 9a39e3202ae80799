//! kube's reflector store, with a relist applied in place.
//!
//! kube's reflector gathers a relist (after a watch could not resume: 410 Gone, as after an
//! etcd compaction) into a second map beside the store and swaps it in at the list's end, so
//! for the length of the list the process holds every object twice. The Accounts stay in a
//! reflector store (they feed kube's Controller, which reads its objects from one), so their
//! relist is applied here as [`super::compact`] applies the bound kinds': each listed object
//! replaces its entry at once, and at the list's end the entries the list did not name are
//! removed. Readers see, during the list, each object either as it was or as listed — as they
//! would see it from kube's store before its swap, or fresher.
//!
//! The first list fills the store as kube's reflector does (there is nothing to double yet),
//! so the store turns ready, for `wait_until_ready`, at its end as before.

use std::{collections::HashSet, hash::Hash};

use futures::{Stream, TryStreamExt};
use kube::{
    Resource,
    runtime::{
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};

/// Applies a watch's events to `writer`'s store, each relist in place (see the module's
/// documentation), and passes the events on unchanged.
pub fn reflect_in_place<K, S>(
    stream: S,
    writer: Writer<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut store = InPlace::new(writer);
    stream.inspect_ok(move |event| store.apply(event))
}

/// A reflector store's writer that applies relists in place.
struct InPlace<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    reader: Store<K>,
    /// Whether the first list has ended: from then on, lists are applied in place.
    filled: bool,
    /// The objects the list under way has named so far.
    named: Option<HashSet<ObjectRef<K>>>,
}

impl<K> InPlace<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    fn new(writer: Writer<K>) -> Self {
        Self {
            reader: writer.as_reader(),
            writer,
            filled: false,
            named: None,
        }
    }

    fn apply(&mut self, event: &watcher::Event<K>) {
        if !self.filled {
            self.writer.apply_watcher_event(event);
            self.filled = matches!(event, watcher::Event::InitDone);
            return;
        }
        match event {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                self.writer.apply_watcher_event(event);
            }
            // A list that starts over (cut before its end) starts its naming over too.
            watcher::Event::Init => self.named = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                self.named
                    .get_or_insert_with(HashSet::new)
                    .insert(ObjectRef::from_obj_with(object, K::DynamicType::default()));
                self.writer
                    .apply_watcher_event(&watcher::Event::Apply(object.clone()));
            }
            watcher::Event::InitDone => {
                let named = self.named.take().unwrap_or_default();
                for object in self.reader.state() {
                    let key = ObjectRef::from_obj_with(&*object, K::DynamicType::default());
                    if !named.contains(&key) {
                        self.writer
                            .apply_watcher_event(&watcher::Event::Delete((*object).clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn config_map(name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ns".to_owned()),
                resource_version: Some(version.to_owned()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    /// The store's objects as `name@resourceVersion`, sorted.
    fn contents(store: &Store<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|c| {
                format!(
                    "{}@{}",
                    c.metadata.name.as_deref().unwrap_or_default(),
                    c.metadata.resource_version.as_deref().unwrap_or_default()
                )
            })
            .collect();
        names.sort();
        names
    }

    /// A store filled by a first list of a, b and c (resourceVersion 1), and its reader.
    fn filled() -> (Store<ConfigMap>, InPlace<ConfigMap>) {
        let (reader, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut store = InPlace::new(writer);
        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(config_map("a", "1")));
        store.apply(&watcher::Event::InitApply(config_map("b", "1")));
        store.apply(&watcher::Event::InitApply(config_map("c", "1")));
        store.apply(&watcher::Event::InitDone);
        (reader, store)
    }

    #[test]
    fn the_first_list_fills_the_store_at_its_end_and_makes_it_ready() {
        let (reader, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut store = InPlace::new(writer);
        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(config_map("a", "1")));
        assert!(contents(&reader).is_empty(), "nothing before the list ends");
        store.apply(&watcher::Event::InitApply(config_map("b", "1")));
        store.apply(&watcher::Event::InitApply(config_map("c", "1")));
        store.apply(&watcher::Event::InitDone);
        assert_eq!(contents(&reader), ["a@1", "b@1", "c@1"]);
        assert!(
            futures::FutureExt::now_or_never(reader.wait_until_ready()).is_some(),
            "ready once the first list ended"
        );
    }

    #[test]
    fn a_relist_replaces_entries_as_it_goes_and_drops_the_unnamed_at_its_end() {
        let (reader, mut store) = filled();
        let unchanged = reader
            .get(&ObjectRef::new("c").within("ns"))
            .expect("c is cached");

        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(config_map("a", "2")));
        // During the list: each object once, as it was or as listed.
        assert_eq!(contents(&reader), ["a@2", "b@1", "c@1"]);
        store.apply(&watcher::Event::InitApply(config_map("c", "1")));
        store.apply(&watcher::Event::InitApply(config_map("d", "2")));
        assert_eq!(contents(&reader), ["a@2", "b@1", "c@1", "d@2"]);
        store.apply(&watcher::Event::InitDone);
        // b was deleted while the watch was cut: the list did not name it.
        assert_eq!(contents(&reader), ["a@2", "c@1", "d@2"]);
        assert!(
            !Arc::ptr_eq(
                &unchanged,
                &reader
                    .get(&ObjectRef::new("c").within("ns"))
                    .expect("c is cached")
            ),
            "a listed object replaces its entry"
        );
    }

    #[test]
    fn a_relist_cut_and_started_over_names_only_what_the_completed_list_named() {
        let (reader, mut store) = filled();
        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(config_map("a", "2")));
        store.apply(&watcher::Event::InitApply(config_map("b", "2")));
        // Cut (410 between two pages): the list starts over, and b is gone by then.
        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(config_map("a", "3")));
        store.apply(&watcher::Event::InitApply(config_map("c", "3")));
        store.apply(&watcher::Event::InitDone);
        assert_eq!(contents(&reader), ["a@3", "c@3"]);
    }

    #[test]
    fn watch_events_between_lists_apply_as_in_kubes_store() {
        let (reader, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let events = futures::stream::iter(
            [
                watcher::Event::Init,
                watcher::Event::InitApply(config_map("a", "1")),
                watcher::Event::InitDone,
                watcher::Event::Apply(config_map("b", "2")),
                watcher::Event::Apply(config_map("a", "3")),
                watcher::Event::Delete(config_map("b", "4")),
            ]
            .map(Ok::<_, watcher::Error>),
        );
        let passed: Vec<_> = futures::executor::block_on(
            reflect_in_place(events, writer)
                .map(|event| event.map(|_| ()))
                .collect(),
        );
        assert_eq!(passed.len(), 6, "every event is passed on");
        assert_eq!(contents(&reader), ["a@3"]);
    }
}
