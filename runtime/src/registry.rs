//! Name resolution without a global lock.
//!
//! Names map to a [`Route`]: one agent or a pool. The maps are sharded
//! (`DashMap`), so a lookup takes one shard's read lock, and senders only ever
//! read. Registration and removal take one shard's write lock. Ids map to
//! cells for addressing by id (replies to a tell's sender, transports).

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

#[derive(Default)]
pub(crate) struct Registry {
    pub names: DashMap<Arc<str>, Route, RandomState>,
    pub ids: DashMap<AgentId, Arc<AgentCell>, RandomState>,
    /// Agents with latency state, the only ones the telemetry ticker visits.
    pub recording: DashMap<AgentId, Arc<AgentCell>, RandomState>,
    /// Topic subscribers, copied on write so publishers read a snapshot.
    pub topics: DashMap<Arc<str>, Arc<[Route]>, RandomState>,
}

impl Registry {
    /// Removes `cell`'s own name entry (not a pool's) and its topic subscriptions.
    pub fn unregister_name(&self, cell: &Arc<AgentCell>) {
        self.names.remove_if(
            &*cell.name,
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
