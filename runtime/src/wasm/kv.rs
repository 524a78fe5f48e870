//! The per-agent key-value store a WASM agent reaches through `host.kv-*`.
//!
//! **Ownership.** A [`KvStore`] belongs to a WASM agent kind and holds one map
//! per agent name (pool members have their own); instances share nothing but
//! reach their agent's map through an `Arc`, so the state survives restarts
//! and hot reloads of the agent. It lives in memory, not on disk.
//!
//! **Backpressure.** Bounded per agent by [`KvLimits`]: a write past a bound is
//! refused with a typed error the guest sees; nothing is evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::wasm::bindings::switchyard::agent::types::KvError;
use crate::wasm::limits::{KvLimits, MAX_KV_KEY};

/// The key-value maps of every agent of one kind.
#[derive(Debug, Default)]
pub struct KvStore {
    agents: Mutex<HashMap<Arc<str>, Arc<Mutex<AgentKv>>>>,
}

/// One agent's map, with its accounting.
#[derive(Debug)]
pub(crate) struct AgentKv {
    map: HashMap<String, Vec<u8>>,
    bytes: usize,
    limits: KvLimits,
}

impl KvStore {
    /// The map of `agent`, created empty on first use.
    pub(crate) fn agent(&self, agent: &str, limits: KvLimits) -> Arc<Mutex<AgentKv>> {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kv) = agents.get(agent) {
            return kv.clone();
        }
        let kv = Arc::new(Mutex::new(AgentKv {
            map: HashMap::new(),
            bytes: 0,
            limits,
        }));
        agents.insert(Arc::from(agent), kv.clone());
        kv
    }

    /// Reads `key` of `agent` (for operators and tests).
    pub fn get(&self, agent: &str, key: &str) -> Option<Vec<u8>> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let kv = agents.get(agent)?.lock().unwrap_or_else(|p| p.into_inner());
        kv.get(key)
    }
}

impl AgentKv {
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    pub(crate) fn set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.len() > MAX_KV_KEY {
            return Err(KvError::KeyTooLong);
        }
        if value.len() > self.limits.max_value_bytes {
            return Err(KvError::ValueTooLarge);
        }
        let old = self.map.get(key).map(|v| key.len() + v.len()).unwrap_or(0);
        let new_total = self.bytes - old + key.len() + value.len();
        if new_total > self.limits.max_total_bytes
            || (old == 0 && self.map.len() >= self.limits.max_keys)
        {
            return Err(KvError::StoreFull);
        }
        match self.map.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                self.map.insert(key.to_owned(), value.to_vec());
            }
        }
        self.bytes = new_total;
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &str) -> bool {
        match self.map.remove(key) {
            Some(v) => {
                self.bytes -= key.len() + v.len();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_and_state_is_shared_per_agent() {
        let store = KvStore::default();
        let limits = KvLimits {
            max_keys: 2,
            max_value_bytes: 4,
            max_total_bytes: 11,
        };
        let a = store.agent("a", limits);
        let mut kv = a.lock().unwrap();
        assert_eq!(kv.set("k", b"12345"), Err(KvError::ValueTooLarge));
        assert_eq!(
            kv.set(&"x".repeat(MAX_KV_KEY + 1), b""),
            Err(KvError::KeyTooLong)
        );
        kv.set("k1", b"1234").unwrap();
        kv.set("k2", b"12").unwrap();
        assert_eq!(kv.set("k3", b""), Err(KvError::StoreFull));
        assert_eq!(kv.set("k2", b"1234"), Err(KvError::StoreFull));
        kv.set("k2", b"123").unwrap();
        assert!(kv.delete("k1"));
        assert!(!kv.delete("k1"));
        drop(kv);
        assert_eq!(store.get("a", "k2").as_deref(), Some(&b"123"[..]));
        assert!(store.get("b", "k2").is_none());
        // The same agent name reaches the same map.
        assert!(Arc::ptr_eq(&a, &store.agent("a", limits)));
    }
}
