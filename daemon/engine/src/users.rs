//! The embedded store's users by name: one allocation a user, holding its name and its state,
//! and a table of pointers to them.
//!
//! ```text
//!  table slot (8 B) ──▶ UserCell { name (inline up to 24 bytes), Mutex<UserState> }
//! ```
//!
//! A map of name → boxed state took a 24-byte slot (the name's pointer and length, the state's
//! pointer) and two allocations a user, the name's and the state's; and a lookup read both,
//! the name to compare it and the state to lock it. Here the slot is one pointer, the name
//! sits beside the state it names (a lookup's compare brings in the line the lock is on), and
//! a table at half its load costs 16 bytes a user instead of 48 (memory per user, issue 13).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use compact_str::CompactString;
use dashmap::DashMap;
use parking_lot::{Mutex, MutexGuard};

use crate::user::UserState;

/// One user: its name and its state.
pub(crate) struct UserCell {
    name: CompactString,
    state: Mutex<UserState>,
}

impl UserCell {
    /// The user's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The user's state, under its mutex.
    pub(crate) fn lock(&self) -> MutexGuard<'_, UserState> {
        self.state.lock()
    }
}

/// The table's key: a user, hashed and compared by its name (so that a `&str` finds it).
pub(crate) struct ByName(Box<UserCell>);

impl ByName {
    fn new(name: &str) -> ByName {
        ByName(Box::new(UserCell {
            name: CompactString::from(name),
            state: Mutex::new(UserState::default()),
        }))
    }
}

impl Deref for ByName {
    type Target = UserCell;
    fn deref(&self) -> &UserCell {
        &self.0
    }
}

impl Hash for ByName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` requires the two to agree.
        self.0.name.as_str().hash(state);
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &ByName) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByName {}

impl Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

/// A user found in the table (its shard read-locked while held).
pub(crate) type UserRef<'a> = dashmap::mapref::one::Ref<'a, ByName, ()>;

/// Users by name.
pub(crate) struct Users(DashMap<ByName, (), ahash::RandomState>);

impl Users {
    pub(crate) fn new() -> Users {
        Users(DashMap::with_hasher(ahash::RandomState::new()))
    }

    /// The user named `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<UserRef<'_>> {
        self.0.get(name)
    }

    /// The user named `name`, or a vacant place for it holding a fresh, unenrolled state that
    /// is kept only if inserted ([`dashmap::mapref::entry::VacantEntry::insert`]). The shard
    /// stays write-locked while the entry is held: two creators of one user take turns.
    pub(crate) fn entry(&self, name: &str) -> dashmap::Entry<'_, ByName, ()> {
        self.0.entry(ByName::new(name))
    }

    /// The user named `name`, created unenrolled if absent (start-up replay).
    pub(crate) fn get_or_create(&self, name: &str) -> dashmap::mapref::one::RefMut<'_, ByName, ()> {
        match self.0.get_mut(name) {
            Some(r) => r,
            None => self.0.entry(ByName::new(name)).or_insert(()),
        }
    }

    /// Every user, in no order.
    pub(crate) fn iter(
        &self,
    ) -> impl Iterator<Item = dashmap::mapref::multiple::RefMulti<'_, ByName, ()>> {
        self.0.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_found_by_its_name_and_only_by_it() {
        let users = Users::new();
        for name in ["ann", "a-name-longer-than-twenty-four", "bo"] {
            if let dashmap::Entry::Vacant(v) = users.entry(name) {
                v.key().lock().enrolled = true;
                v.insert(());
            }
        }
        assert_eq!(users.len(), 3);
        let long = users.get("a-name-longer-than-twenty-four").expect("found");
        assert_eq!(long.key().name(), "a-name-longer-than-twenty-four");
        assert!(long.key().lock().enrolled, "the state inserted with it");
        drop(long);
        assert!(users.get("an").is_none());
        assert!(users.get("ann").is_some());
        // A vacant place not inserted leaves nothing behind.
        assert!(matches!(users.entry("cy"), dashmap::Entry::Vacant(_)));
        assert!(users.get("cy").is_none());
        // The same name twice is one user.
        assert!(matches!(users.entry("bo"), dashmap::Entry::Occupied(_)));
        assert!(!users.get_or_create("dee").key().lock().enrolled);
        assert_eq!(users.len(), 4);
    }
}
