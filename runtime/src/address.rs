//! Agent names and ids.
//!
//! Users address agents by **name** (a string such as `orders` or `pool/worker`).
//! The registry interns every registered agent as an [`AgentId`], a `Copy` number
//! that envelopes carry instead of a string so that routing never touches a
//! reference count. A transport that carries a message out of the process turns
//! ids back into names (`Runtime::name_of`); this is the seam between addressing
//! and transport.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::NameError;

/// Longest accepted agent or topic name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Process-unique id of one registered agent (pool members each have their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(NonZeroU64);

impl AgentId {
    pub(crate) fn next() -> AgentId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        AgentId(
            NonZeroU64::new(NEXT.fetch_add(1, Ordering::Relaxed))
                .expect("the agent id counter starts at 1 and never wraps"),
        )
    }

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// Checks that `name` can be used for an agent, pool or topic.
///
/// Names are 1..=255 bytes of ASCII letters, digits and `-_.:/`, so they can be
/// used unchanged as NATS subject tokens, URL path segments and metric labels.
///
/// ```
/// use switchyard_runtime::address::validate_name;
/// assert!(validate_name("orders.v2").is_ok());
/// assert!(validate_name("").is_err());
/// assert!(validate_name("has space").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            bad,
        });
    }
    Ok(())
}
