//! Pools: N instances of one agent behind one name.
//!
//! The pool is not a task: a sender picks the member in its own context and
//! delivers straight into that member's mailbox. Each member has its own
//! mailbox, counters and supervision.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cell::AgentCell;

/// Largest pool accepted: far more members than cores helps nothing.
pub const MAX_POOL_SIZE: usize = 65_536;

/// How a pool picks the member for a message.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Members in turn.
    #[default]
    RoundRobin,
    /// The member with the shortest mailbox (first one on ties).
    LeastLoaded,
    /// Jump consistent hash of the message's routing key, so one key always
    /// reaches the same member; messages without a key go round-robin.
    KeyAffinity,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
            Strategy::KeyAffinity => "key_affinity",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "round_robin" => Ok(Strategy::RoundRobin),
            "least_loaded" => Ok(Strategy::LeastLoaded),
            "key_affinity" => Ok(Strategy::KeyAffinity),
            other => Err(format!(
                "unknown pool strategy {other:?}; expected one of round_robin, least_loaded, key_affinity"
            )),
        }
    }
}

pub(crate) struct Pool {
    pub members: Box<[Arc<AgentCell>]>,
    pub strategy: Strategy,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(members: Vec<Arc<AgentCell>>, strategy: Strategy) -> Pool {
        Pool {
            members: members.into_boxed_slice(),
            strategy,
            next: AtomicUsize::new(0),
        }
    }

    /// The member for a message with routing key `key`.
    pub fn pick(&self, key: Option<u64>) -> &Arc<AgentCell> {
        let n = self.members.len();
        let i = match (self.strategy, key) {
            (Strategy::KeyAffinity, Some(k)) => jump_hash(k, n),
            (Strategy::LeastLoaded, _) => {
                let mut best = 0;
                let mut best_depth = usize::MAX;
                for (i, m) in self.members.iter().enumerate() {
                    let d = m.mailbox.depth();
                    if d < best_depth {
                        best = i;
                        best_depth = d;
                        if d == 0 {
                            break;
                        }
                    }
                }
                best
            }
            _ => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.members[i]
    }
}

/// Jump consistent hash (Lamping and Veach, 2014): maps `key` to a bucket in
/// `0..n` so that growing `n` by one moves only `1/n` of the keys.
pub fn jump_hash(mut key: u64, n: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn jump_hash_is_in_range_and_stable(key: u64, n in 1usize..500) {
            let b = jump_hash(key, n);
            prop_assert!(b < n);
            prop_assert_eq!(b, jump_hash(key, n));
        }

        #[test]
        fn growing_moves_keys_only_to_the_new_bucket(key: u64, n in 1usize..500) {
            let before = jump_hash(key, n);
            let after = jump_hash(key, n + 1);
            prop_assert!(after == before || after == n);
        }
    }

    #[test]
    fn jump_hash_spreads_keys() {
        let mut counts = [0usize; 8];
        for k in 0..80_000u64 {
            counts[jump_hash(crate::envelope::fnv1a(&k.to_le_bytes()), 8)] += 1;
        }
        for c in counts {
            assert!((8_000..12_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn strategy_parses() {
        assert_eq!(
            "key_affinity".parse::<super::Strategy>(),
            Ok(super::Strategy::KeyAffinity)
        );
        assert!(
            "random"
                .parse::<super::Strategy>()
                .unwrap_err()
                .contains("round_robin")
        );
    }
}
