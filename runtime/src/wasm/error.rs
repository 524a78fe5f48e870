//! Errors of the WASM host: refusals at load (naming the file and the fix)
//! and the classified failures of a running instance.

use thiserror::Error;

/// Why a WASM agent could not be loaded, reloaded or instantiated. Every
/// variant names the file (or source label) it is about.
#[derive(Debug, Error)]
pub enum WasmError {
    /// The file could not be read.
    #[error("cannot read WASM agent {path}: {detail}; check the path and its permissions")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error(
        "{path} is not a WebAssembly file (no \\0asm header); build the agent with `switchyard agent build`"
    )]
    NotWasm {
        /// The file.
        path: String,
    },
    /// A core module where a component is expected.
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (`switchyard agent build`) or wrap it with `wasm-tools component new`"
    )]
    NotComponent {
        /// The file.
        path: String,
    },
    /// The component does not validate or compile.
    #[error("{path} is not a valid WebAssembly component: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What the validator said.
        detail: String,
    },
    /// The component does not implement the agent world (missing or mistyped
    /// export, or a host import with the wrong type).
    #[error(
        "{path} does not implement the world {world}: {detail}; rebuild it against agents/sdk/wit \
         (switchyard-sdk) and check it with `switchyard agent check`"
    )]
    WrongWorld {
        /// The file.
        path: String,
        /// The world it must implement.
        world: &'static str,
        /// What is missing or mistyped.
        detail: String,
    },
    /// `init` trapped or returned an error when the component was probed.
    #[error(
        "{path}: init failed ({kind}): {detail}; check the agent's config text and its init code"
    )]
    Init {
        /// The file.
        path: String,
        /// How it failed.
        kind: FailureKind,
        /// The trap or the agent's error message.
        detail: String,
    },
    /// The limits are out of range.
    #[error("invalid WASM limits for {path}: {what}")]
    Limits {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        what: String,
    },
    /// The on-disk compile cache directory is unusable.
    #[error("WASM compile cache directory {path}: {detail}")]
    Cache {
        /// The directory.
        path: String,
        /// What went wrong and the fix.
        detail: String,
    },
    /// The process-wide engine could not be created.
    #[error("the WASM engine could not start: {0}")]
    Engine(String),
}

/// How a WASM call failed. The label is the first word of the detail text of
/// the dead letter, so operators can filter on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Fuel ran out (CPU limit, when fuel metering is used).
    OutOfFuel,
    /// The epoch deadline passed (CPU time per message).
    Deadline,
    /// The guest tried to grow its memory past its cap.
    Memory,
    /// The guest executed `unreachable` (a Rust panic or abort).
    Unreachable,
    /// Any other trap (out-of-bounds access, stack overflow, a called stub import...).
    Trap,
    /// The guest returned an error value (not a trap).
    Error,
}

impl FailureKind {
    /// A stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Trap => "trap",
            FailureKind::Error => "error",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a wasmtime call error. `memory_denied` is set by the store's
/// limiter when it refused a growth: the guest usually reacts with a trap of
/// its own (Rust aborts with `unreachable`), which is really a memory failure.
pub(crate) fn classify(err: &wasmtime::Error, memory_denied: bool) -> (FailureKind, String) {
    // The chain without the core dump the engine attaches to traps (it
    // lists every instance: noise in a dead-letter reason).
    let dump = err
        .downcast_ref::<wasmtime::WasmCoreDump>()
        .map(ToString::to_string);
    let detail = err
        .chain()
        .map(|cause| cause.to_string())
        .filter(|cause| Some(cause) != dump.as_ref())
        .collect::<Vec<_>>()
        .join(": ");
    if memory_denied {
        return (FailureKind::Memory, detail);
    }
    let kind = match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => FailureKind::Deadline,
        Some(wasmtime::Trap::OutOfFuel) => FailureKind::OutOfFuel,
        Some(wasmtime::Trap::UnreachableCodeReached) => FailureKind::Unreachable,
        _ => FailureKind::Trap,
    };
    (kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traps_are_classified() {
        let e = wasmtime::Error::new(wasmtime::Trap::Interrupt);
        assert_eq!(classify(&e, false).0, FailureKind::Deadline);
        let e = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(classify(&e, false).0, FailureKind::Unreachable);
        assert_eq!(classify(&e, true).0, FailureKind::Memory);
        let e = wasmtime::Error::new(wasmtime::Trap::OutOfFuel);
        assert_eq!(classify(&e, false).0, FailureKind::OutOfFuel);
        let e = wasmtime::Error::new(wasmtime::Trap::MemoryOutOfBounds);
        assert_eq!(classify(&e, false).0, FailureKind::Trap);
    }

    #[test]
    fn errors_name_the_file() {
        let e = WasmError::NotWasm {
            path: "agents/x.wasm".into(),
        };
        assert!(e.to_string().contains("agents/x.wasm"));
    }
}
