//! Name resolution without a global lock.
//!
//! Names map to a [`Route`]: one agent or a pool. The maps are sharded
//! (`DashMap`), so a lookup takes one shard's read lock, and senders only ever
//! read. Registration and removal take one shard's write lock. Ids map to
//! cells for addressing by id (replies to a tell's sender, transports).
//!
//! Names of up to [`INLINE`] bytes are kept inside the map's slot
//! ([`NameKey`]), so a lookup compares the name where it found the slot
//! instead of following a pointer to a heap block that, among thousands of
//! agents, is rarely in cache. Lookups key by the name's bytes.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use crate::address::AgentId;
use crate::cell::AgentCell;
use crate::pool::Pool;

/// What a name resolves to.
#[derive(Clone)]
pub(crate) enum Route {
    Agent(Arc<AgentCell>),
    Pool(Arc<Pool>),
}

impl Route {
    /// The cell a message with routing key `key` goes to.
    pub fn pick(&self, key: Option<u64>) -> &Arc<AgentCell> {
        match self {
            Route::Agent(cell) => cell,
            Route::Pool(pool) => pool.pick(key),
        }
    }

    pub fn cells(&self) -> &[Arc<AgentCell>] {
        match self {
            Route::Agent(cell) => std::slice::from_ref(cell),
            Route::Pool(pool) => &pool.members,
        }
    }

    pub fn same(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Agent(a), Route::Agent(b)) => Arc::ptr_eq(a, b),
            (Route::Pool(a), Route::Pool(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Longest name kept inline in a [`NameKey`] (the key is then as wide as
/// the `Arc<str>` it replaces plus one word).
pub(crate) const INLINE: usize = 22;

/// A name as the registry's key: inline when short, shared otherwise.
#[derive(Clone)]
pub(crate) enum NameKey {
    Inline(u8, [u8; INLINE]),
    Shared(Arc<str>),
}

impl NameKey {
    pub fn new(name: &Arc<str>) -> NameKey {
        let bytes = name.as_bytes();
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            NameKey::Inline(bytes.len() as u8, inline)
        } else {
            NameKey::Shared(name.clone())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            NameKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            NameKey::Shared(name) => name.as_bytes(),
        }
    }
}

impl std::fmt::Display for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Built from a `&str`, so always valid UTF-8.
        f.write_str(&String::from_utf8_lossy(self.bytes()))
    }
}

// Hash and equality are those of the bytes, so lookups by `&[u8]` find it.
impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &NameKey) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for NameKey {}

impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    /// Keyed by name; look up with `name.as_bytes()`.
    pub names: DashMap<NameKey, Route, RandomState>,
    pub ids: DashMap<AgentId, Arc<AgentCell>, RandomState>,
    /// Agents with latency state, the only ones the telemetry ticker visits.
    pub recording: DashMap<AgentId, Arc<AgentCell>, RandomState>,
    /// Topic subscribers, copied on write so publishers read a snapshot.
    pub topics: DashMap<Arc<str>, Arc<[Route]>, RandomState>,
}

impl Registry {
    /// The route of `name`, cloned, so no shard lock is held afterwards.
    pub fn route(&self, name: &str) -> Option<Route> {
        self.names.get(name.as_bytes()).map(|r| r.clone())
    }

    /// Removes `cell`'s own name entry (not a pool's) and its topic subscriptions.
    pub fn unregister_name(&self, cell: &Arc<AgentCell>) {
        self.names.remove_if(
            cell.name.as_bytes(),
            |_, r| matches!(r, Route::Agent(c) if Arc::ptr_eq(c, cell)),
        );
        if self.topics.is_empty() {
            return;
        }
        self.topics.alter_all(|_, subs| {
            if subs
                .iter()
                .any(|r| matches!(r, Route::Agent(c) if Arc::ptr_eq(c, cell)))
            {
                subs.iter()
                    .filter(|r| !matches!(r, Route::Agent(c) if Arc::ptr_eq(c, cell)))
                    .cloned()
                    .collect()
            } else {
                subs
            }
        });
        self.topics.retain(|_, subs| !subs.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_inline_and_every_key_finds_its_name() {
        let registry = Registry::default();
        let long = "a-name-that-is-longer-than-the-inline-room";
        for name in ["", "echo", "exactly-twenty-two-b:x", long] {
            let key = NameKey::new(&Arc::from(name));
            assert_eq!(
                matches!(key, NameKey::Inline(..)),
                name.len() <= INLINE,
                "{name}"
            );
            assert_eq!(key.to_string(), name);
            let cell = Arc::new(AgentCell::new(
                Arc::from(name),
                &crate::config::AgentConfig::default(),
                false,
            ));
            registry.names.insert(key, Route::Agent(cell));
        }
        for name in ["", "echo", "exactly-twenty-two-b:x", long] {
            let found = registry.names.get(name.as_bytes()).expect("registered");
            assert_eq!(&*found.cells()[0].name, name);
        }
        assert!(registry.names.get(&b"ech"[..]).is_none());
        assert!(registry.names.get(&long.as_bytes()[..INLINE]).is_none());
    }
}
