//! Which objects of a bound kind claim each account, kept in step with that kind's reflector
//! cache, so a reconcile looks at its own account's objects only instead of scanning every
//! cache (with many accounts, a scan per reconcile would make a full resync quadratic).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, PoisonError, RwLock},
};

use kube::runtime::{reflector::ObjectRef, watcher};

use super::guarded::Guarded;
use crate::kinds::BoundKind;

/// The objects of kind `K` by the account they claim.
pub struct AccountIndex<K: BoundKind> {
    state: Arc<RwLock<State<K>>>,
}

impl<K: BoundKind> Clone for AccountIndex<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<K: BoundKind> Default for AccountIndex<K> {
    fn default() -> Self {
        Self {
            state: Arc::new(RwLock::new(State::default())),
        }
    }
}

struct State<K: BoundKind> {
    live: Entries<K>,
    /// Filled during a (re)list and swapped in when it is complete, as the reflector does.
    relisting: Option<Entries<K>>,
}

impl<K: BoundKind> Default for State<K> {
    fn default() -> Self {
        Self {
            live: Entries::default(),
            relisting: None,
        }
    }
}

type Key<K> = ObjectRef<Guarded<K>>;

struct Entries<K: BoundKind> {
    by_account: HashMap<String, HashSet<Key<K>>>,
    account_of: HashMap<Key<K>, String>,
}

impl<K: BoundKind> Default for Entries<K> {
    fn default() -> Self {
        Self {
            by_account: HashMap::new(),
            account_of: HashMap::new(),
        }
    }
}

impl<K: BoundKind> Entries<K> {
    fn insert(&mut self, object: &Guarded<K>) {
        let key = ObjectRef::from_obj(object);
        let Some(account) = object.claimed_account() else {
            self.remove(&key);
            return;
        };
        if self.account_of.get(&key).map(String::as_str) == Some(account) {
            return;
        }
        self.remove(&key);
        self.account_of.insert(key.clone(), account.to_owned());
        self.by_account
            .entry(account.to_owned())
            .or_default()
            .insert(key);
    }

    fn remove(&mut self, key: &Key<K>) {
        let Some(account) = self.account_of.remove(key) else {
            return;
        };
        if let Some(keys) = self.by_account.get_mut(&account) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }
}

impl<K: BoundKind> AccountIndex<K> {
    /// Follows one watch event (call it before the reflector applies the same event).
    pub fn apply(&self, event: &watcher::Event<Guarded<K>>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => state.live.insert(object),
            watcher::Event::Delete(object) => state.live.remove(&ObjectRef::from_obj(object)),
            watcher::Event::Init => state.relisting = Some(Entries::default()),
            watcher::Event::InitApply(object) => {
                if let Some(relisting) = &mut state.relisting {
                    relisting.insert(object);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = state.relisting.take() {
                    state.live = relisted;
                }
            }
        }
    }

    /// The objects claiming `account`, as keys of the kind's cache.
    pub fn claiming(&self, account: &str) -> Vec<Key<K>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .live
            .by_account
            .get(account)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Website;
    use serde_json::json;

    fn website(name: &str, account: &str) -> Guarded<Website> {
        serde_json::from_value(json!({
            "apiVersion": "hosting.ecuni.se/v1alpha1", "kind": "Website",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"accountRef": account, "hostnames": []},
        }))
        .unwrap()
    }

    fn names(index: &AccountIndex<Website>, account: &str) -> Vec<String> {
        let mut names: Vec<String> = index
            .claiming(account)
            .into_iter()
            .map(|k| k.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let index = AccountIndex::<Website>::default();
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(website("a1", "acme")));
        index.apply(&watcher::Event::InitApply(website("b1", "beta")));
        // Nothing is visible until the list is complete.
        assert!(names(&index, "acme").is_empty());
        index.apply(&watcher::Event::InitDone);
        assert_eq!(names(&index, "acme"), ["a1"]);
        assert_eq!(names(&index, "beta"), ["b1"]);

        index.apply(&watcher::Event::Apply(website("a2", "acme")));
        index.apply(&watcher::Event::Apply(website("a2", "acme")));
        assert_eq!(names(&index, "acme"), ["a1", "a2"]);
        index.apply(&watcher::Event::Delete(website("a1", "acme")));
        assert_eq!(names(&index, "acme"), ["a2"]);

        // A relist replaces everything: what was not listed again is gone.
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(website("b1", "beta")));
        assert_eq!(
            names(&index, "acme"),
            ["a2"],
            "the old state serves until done"
        );
        index.apply(&watcher::Event::InitDone);
        assert!(names(&index, "acme").is_empty());
        assert_eq!(names(&index, "beta"), ["b1"]);
    }

    #[test]
    fn an_object_that_changes_account_moves() {
        let index = AccountIndex::<Website>::default();
        index.apply(&watcher::Event::Apply(website("w", "acme")));
        index.apply(&watcher::Event::Apply(website("w", "beta")));
        assert!(names(&index, "acme").is_empty());
        assert_eq!(names(&index, "beta"), ["w"]);
    }
}
