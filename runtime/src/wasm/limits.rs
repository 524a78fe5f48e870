//! Per-agent limits and capabilities of a WASM agent.

use std::sync::Arc;
use std::time::Duration;

use crate::wasm::error::WasmError;

/// Largest memory cap an agent may be given: the pooling allocator reserves
/// this much address space per memory slot.
pub const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Memory cap when the config names none: room for a Rust guest's 1 MiB
/// stack, its heap and a few batches of messages.
pub const DEFAULT_MEMORY_BYTES: usize = 16 << 20;
/// CPU time per message when the config names none.
pub const DEFAULT_CPU_PER_MESSAGE: Duration = Duration::from_millis(100);
/// Publishes and asks one call may queue: they are carried out after the call,
/// so the queue must be bounded.
pub const DEFAULT_MAX_OUTBOX: usize = 1024;
/// Longest key in the key-value store, in bytes.
pub const MAX_KV_KEY: usize = 256;

/// What an agent may touch besides its own memory and the `host` interface.
/// The default grants nothing.
///
/// The agent world offers no filesystem or network at all, and any WASI
/// import a component brings along is linked to a stub that traps when
/// called: those capabilities cannot be granted (the service refuses such
/// keys at config validation). The clock and named environment variables
/// are granted through `host.now` and `host.env`.
///
/// ```
/// use switchyard_runtime::wasm::Capabilities;
/// let caps = Capabilities::default().clock(true).env_value("REGION", "eu-1");
/// assert_eq!(caps.env_var("REGION"), Some("eu-1"));
/// assert_eq!(caps.env_var("HOME"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Grants the wall clock (`host.now`); without it `now` returns none.
    pub clock: bool,
    /// Environment variables the agent may read with `host.env`: names and
    /// values, fixed when the capabilities are built (at deploy). Shared by
    /// every instance of a kind.
    pub env: Arc<[(String, String)]>,
}

impl Capabilities {
    /// Grants (or not) the wall clock.
    #[must_use]
    pub fn clock(mut self, granted: bool) -> Capabilities {
        self.clock = granted;
        self
    }

    /// Grants the variable `name` with `value`.
    #[must_use]
    pub fn env_value(self, name: impl Into<String>, value: impl Into<String>) -> Capabilities {
        let mut env: Vec<(String, String)> = self.env.iter().cloned().collect();
        let name = name.into();
        env.retain(|(n, _)| *n != name);
        env.push((name, value.into()));
        Capabilities {
            env: env.into(),
            ..self
        }
    }

    /// Grants each named variable with its value in this process's
    /// environment, read now. A variable that is not set (or not UTF-8)
    /// is granted as absent: the agent sees none, as without the grant.
    #[must_use]
    pub fn env_from_host<S: AsRef<str>>(self, names: &[S]) -> Capabilities {
        names.iter().fold(self, |caps, name| {
            let name = name.as_ref();
            match std::env::var(name) {
                Ok(v) => caps.env_value(name, v),
                Err(_) => {
                    tracing::warn!(
                        variable = name,
                        "granted environment variable is not set; the agent sees none"
                    );
                    caps
                }
            }
        })
    }

    /// The value of a granted variable.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Bounds of one agent's key-value store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    /// Most keys held.
    pub max_keys: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most bytes (keys plus values) held.
    pub max_total_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            max_keys: 1024,
            max_value_bytes: 64 << 10,
            max_total_bytes: 1 << 20,
        }
    }
}

/// The limits and configuration of a WASM agent kind, applied to every
/// instance (each instance has its own store, so its own budget).
///
/// ```
/// use std::time::Duration;
/// use switchyard_runtime::wasm::WasmLimits;
/// let limits = WasmLimits::default().memory_bytes(8 << 20).cpu_per_message(Duration::from_millis(20));
/// assert_eq!(limits.memory_bytes, 8 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmLimits {
    /// Cap on the guest's linear memory, at most [`MAX_MEMORY_BYTES`].
    pub memory_bytes: usize,
    /// CPU time one message may take (a batch of n gets n times this), enforced
    /// with epoch interruption at a granularity of 1 ms.
    pub cpu_per_message: Duration,
    /// Granted capabilities.
    pub capabilities: Capabilities,
    /// Key-value store bounds.
    pub kv: KvLimits,
    /// Publishes and asks one call may queue.
    pub max_outbox: usize,
    /// Text passed to the guest's `init`.
    pub config: String,
}

impl Default for WasmLimits {
    fn default() -> WasmLimits {
        WasmLimits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu_per_message: DEFAULT_CPU_PER_MESSAGE,
            capabilities: Capabilities::default(),
            kv: KvLimits::default(),
            max_outbox: DEFAULT_MAX_OUTBOX,
            config: String::new(),
        }
    }
}

impl WasmLimits {
    /// Sets the memory cap.
    #[must_use]
    pub fn memory_bytes(mut self, bytes: usize) -> WasmLimits {
        self.memory_bytes = bytes;
        self
    }

    /// Sets the CPU time per message.
    #[must_use]
    pub fn cpu_per_message(mut self, cpu: Duration) -> WasmLimits {
        self.cpu_per_message = cpu;
        self
    }

    /// Sets the capabilities.
    #[must_use]
    pub fn capabilities(mut self, capabilities: Capabilities) -> WasmLimits {
        self.capabilities = capabilities;
        self
    }

    /// Sets the text passed to `init`.
    #[must_use]
    pub fn config(mut self, config: impl Into<String>) -> WasmLimits {
        self.config = config.into();
        self
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), WasmError> {
        let bad = |what: String| {
            Err(WasmError::Limits {
                path: path.to_owned(),
                what,
            })
        };
        if self.memory_bytes == 0 || self.memory_bytes > MAX_MEMORY_BYTES {
            return bad(format!(
                "memory_bytes {} is out of range; use 1..={MAX_MEMORY_BYTES}",
                self.memory_bytes
            ));
        }
        if self.cpu_per_message.is_zero() {
            return bad(
                "cpu_per_message is zero; give each message some CPU time, such as 100 ms".into(),
            );
        }
        if self.max_outbox == 0 {
            return bad("max_outbox is zero; use at least 1".into());
        }
        Ok(())
    }
}
