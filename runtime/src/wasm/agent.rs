//! [`WasmAgent`]: a WASM instance behind the core [`Agent`] trait.
//!
//! ```text
//!  on_start ─► Store (limits) ─► instantiate (InstancePre) ─► init(config)
//!  handle_batch ─► generation changed? re-instantiate ─► deadline = n × cpu
//!     ─► pack the batch into one reused buffer ─► guest handle-packed(list<u8>)
//!     ─► flush replies, publishes, asks
//!     trap ─► read the guest's batch cursor ─► classify ─► drop the
//!             instance ─► Err: the supervisor dead-letters the message at
//!             the cursor and restarts
//! ```
//!
//! **Batch cursor.** A guest marks the message it is on by storing its index
//! (u32, little-endian) at the address held by its exported core global
//! [`CURSOR_EXPORT`]: a plain store, no host call per message. The engine
//! keeps handles to the store's instances on a trap (`coredump_on_trap`), so
//! the host reads the cursor after the trap. A guest without the export may
//! report it with the `host.progress` import instead (the SDK before 0.2.1).
//!
//! **Ownership.** The agent owns its `Store` (one per instance); the kind is
//! shared. A trapped store is dropped, never reused.
//!
//! **Failure.** Guest errors become [`AgentError`]s whose text starts with
//! the [`FailureKind`] label (`deadline: ...`, `memory: ...`).
//!
//! **Blocking.** A guest call runs on the agent's Tokio worker for at most
//! its CPU deadline (`cpu_per_message` × batch size).

use std::sync::Arc;

use wasmtime::{Store, WasmCoreDump};

use crate::agent::{Agent, Context};
use crate::envelope::{Envelope, Kind};
use crate::error::AgentError;
use crate::wasm::bindings::Agent as AgentWorld;
use crate::wasm::engine::deadline_ticks;
use crate::wasm::error::{FailureKind, classify};
use crate::wasm::host::{CallState, HostState, Limiter};
use crate::wasm::kind::{WasmAgentKind, new_store};

/// A live instance.
struct Live {
    store: Store<HostState>,
    world: AgentWorld,
    generation: u64,
    /// The packed batch, reused across calls (no allocation per batch once
    /// it has grown to the working size).
    packed: Vec<u8>,
}

/// Bytes of a packed envelope header (layout in `agents/sdk/wit/agent.wit`).
const PACKED_HEADER: usize = 40;
/// A packed buffer larger than this is not kept between batches.
const MAX_KEPT_PACKED: usize = 1 << 20;
/// Core global a guest exports whose value is the address of its batch
/// cursor in its memory `memory` (see the module docs and `agent.wit`).
pub(crate) const CURSOR_EXPORT: &str = "switchyard-cursor";

/// The batch index the guest's cursor held when `err` (a trap) was raised,
/// if the guest exports one. Reads the memory through the core dump's
/// instance handles; the store must be the one that trapped.
fn cursor_after_trap(store: &mut Store<HostState>, err: &wasmtime::Error) -> Option<u32> {
    let dump = err.downcast_ref::<WasmCoreDump>()?;
    for instance in dump.instances() {
        let Some(global) = instance.get_global(&mut *store, CURSOR_EXPORT) else {
            continue;
        };
        let address = usize::try_from(global.get(&mut *store).i32()?.cast_unsigned()).ok()?;
        let memory = instance.get_memory(&mut *store, "memory")?;
        let bytes = memory.data(&*store).get(address..address.checked_add(4)?)?;
        return Some(u32::from_le_bytes(bytes.try_into().ok()?));
    }
    None
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Tell => 0,
        Kind::Ask => 1,
        Kind::Reply => 2,
        Kind::Publish => 3,
    }
}

/// Bytes `env`'s record takes in a packed batch: the header, the payload
/// (cut at `u32::MAX`, the layout's length field) and padding to 8.
fn packed_len(env: &Envelope) -> usize {
    let n = env.payload().len().min(u32::MAX as usize);
    PACKED_HEADER + n.next_multiple_of(8)
}

/// Writes `env` into `record` (exactly [`packed_len`] bytes): every byte,
/// padding included, so the buffer needs no clearing between batches.
fn pack_into(record: &mut [u8], env: &Envelope) {
    let from = env.from().map(|a| a.get());
    let correlation = env.correlation().map(|m| m.get());
    let key = env.key();
    let (header, body) = record.split_at_mut(PACKED_HEADER);
    let payload = &env.payload()[..env.payload().len().min(u32::MAX as usize)];
    let flags = u8::from(from.is_some())
        | u8::from(correlation.is_some()) << 1
        | u8::from(key.is_some()) << 2;
    header[0..8].copy_from_slice(&env.id().get().to_le_bytes());
    header[8..16].copy_from_slice(&from.unwrap_or(0).to_le_bytes());
    header[16..24].copy_from_slice(&correlation.unwrap_or(0).to_le_bytes());
    header[24..32].copy_from_slice(&key.unwrap_or(0).to_le_bytes());
    // `payload` is at most u32::MAX bytes (see `packed_len`).
    header[32..36].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[36] = kind_code(env.kind());
    header[37] = flags;
    header[38..40].fill(0);
    let (data, pad) = body.split_at_mut(payload.len());
    data.copy_from_slice(payload);
    pad.fill(0);
}

/// Packs `batch` into `buf` (layout in `agents/sdk/wit/agent.wit`) and
/// records the index of every ask in `asks`. One pass to size the buffer,
/// one to fill it: no per-message capacity checks, and no clearing (every
/// byte is written), so a buffer reused across batches is not touched twice.
fn pack_batch(buf: &mut Vec<u8>, batch: &[Envelope], asks: &mut Vec<(u64, u32)>) {
    let total = batch.iter().map(packed_len).sum();
    if buf.len() < total {
        buf.resize(total, 0);
    } else {
        buf.truncate(total);
    }
    let mut rest = buf.as_mut_slice();
    for (i, env) in batch.iter().enumerate() {
        if env.kind() == Kind::Ask {
            asks.push((env.id().get(), i as u32));
        }
        let (record, tail) = rest.split_at_mut(packed_len(env));
        pack_into(record, env);
        rest = tail;
    }
}

/// A Switchyard agent backed by a WASM component instance.
pub struct WasmAgent {
    kind: Arc<WasmAgentKind>,
    live: Option<Live>,
}

fn failure(kind: FailureKind, detail: &str) -> AgentError {
    AgentError(format!("{kind}: {detail}"))
}

impl WasmAgent {
    pub(crate) fn new(kind: Arc<WasmAgentKind>) -> WasmAgent {
        WasmAgent { kind, live: None }
    }

    /// Builds a store and an instance of the kind's current version and runs `init`.
    fn start(&mut self, ctx: &Context) -> Result<(), AgentError> {
        self.live = None;
        let version = self.kind.current();
        let limits = &self.kind.limits;
        let state = HostState {
            agent: Arc::from(ctx.name()),
            id: Some(ctx.id()),
            rt: Some(ctx.runtime().clone()),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                memory_denied: false,
            },
            kv: self.kind.kv().agent(ctx.name(), limits.kv),
            caps: limits.capabilities.clone(),
            max_outbox: limits.max_outbox,
            call: CallState::default(),
        };
        let mut store =
            new_store(&version, limits, state).map_err(|e| AgentError(e.to_string()))?;
        let world = version.pre.instantiate(&mut store).map_err(|e| {
            let (kind, detail) = classify(&e, store.data().limiter.memory_denied);
            failure(kind, &format!("instantiating {}: {detail}", version.source))
        })?;
        match world.call_init(&mut store, &limits.config) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failure(FailureKind::Error, &format!("init: {}", e.message))),
            Err(e) => {
                let (kind, detail) = classify(&e, store.data().limiter.memory_denied);
                return Err(failure(kind, &format!("init: {detail}")));
            }
        }
        self.live = Some(Live {
            store,
            world,
            generation: version.generation,
            packed: Vec::new(),
        });
        Ok(())
    }

    /// Carries out what the guest queued during the call: replies first (so a
    /// later trap in the batch does not lose them), then publishes and asks.
    async fn flush(ctx: &mut Context, batch: &[Envelope], call: &mut CallState) {
        for (index, payload) in call.replies.drain(..) {
            if let Some(request) = batch.get(index as usize)
                && let Err(e) = ctx.reply(request, payload)
            {
                tracing::debug!(error = %e, "WASM agent reply dropped");
            }
        }
        for (topic, env) in call.publishes.drain(..) {
            let report = ctx.runtime().publish(&topic, env).await;
            tracing::trace!(topic, ?report, "WASM agent published");
        }
        for (to, env, timeout) in call.out_asks.drain(..) {
            let rt = ctx.runtime().clone();
            let me = ctx.id();
            // The answer comes back to this agent as a `reply` envelope.
            tokio::spawn(async move {
                match rt.ask(&to, env, timeout).await {
                    Ok(reply) => {
                        if let Err(e) = rt.tell_id(me, reply).await {
                            tracing::debug!(error = %e, "reply to a WASM agent's ask not delivered");
                        }
                    }
                    Err(e) => tracing::warn!(to, error = %e, "ask by a WASM agent got no reply"),
                }
            });
        }
    }

    async fn run(&mut self, ctx: &mut Context, batch: &[Envelope]) -> Result<(), AgentError> {
        let generation = self.kind.generation();
        if self
            .live
            .as_ref()
            .is_none_or(|l| l.generation != generation)
        {
            // Hot reload (or a previous failure): switch at this batch boundary.
            self.start(ctx)?;
        }
        let Some(live) = self.live.as_mut() else {
            return Err(AgentError::new("WASM instance missing after start"));
        };
        let cpu = self.kind.limits.cpu_per_message;
        let call = &mut live.store.data_mut().call;
        call.asks.clear();
        call.progress = 0;
        pack_batch(&mut live.packed, batch, &mut call.asks);
        live.store
            .set_epoch_deadline(deadline_ticks(cpu, batch.len()));
        // One list<u8>: lowered with a single copy into guest memory.
        let result = live.world.call_handle_packed(&mut live.store, &live.packed);
        if live.packed.capacity() > MAX_KEPT_PACKED {
            live.packed = Vec::new();
        }
        let memory_denied = live.store.data().limiter.memory_denied;
        let call = &mut live.store.data_mut().call;
        if !call.is_empty() {
            Self::flush(ctx, batch, call).await;
        }
        let progress = call.progress as usize;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err((index, e))) => {
                ctx.set_batch_cursor(index as usize);
                Err(failure(FailureKind::Error, &e.message))
            }
            Err(e) => {
                // The instance is poisoned: read its cursor, drop it; the
                // supervisor restarts.
                let cursor = self
                    .live
                    .as_mut()
                    .and_then(|live| cursor_after_trap(&mut live.store, &e))
                    .map_or(progress, |c| c as usize);
                self.live = None;
                ctx.set_batch_cursor(cursor.min(batch.len().saturating_sub(1)));
                let (kind, detail) = classify(&e, memory_denied);
                Err(failure(kind, &detail))
            }
        }
    }
}

impl Agent for WasmAgent {
    async fn on_start(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        self.start(ctx)
    }

    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        self.run(ctx, std::slice::from_ref(msg)).await
    }

    async fn handle_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[Envelope],
    ) -> Result<(), AgentError> {
        self.run(ctx, batch).await
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::address::AgentId;
    use crate::envelope::MessageId;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn a_packed_batch_follows_the_documented_layout() {
        let batch = [
            Envelope::tell(&b"abc"[..]).with_key_hash(7),
            Envelope::ask(&b"12345678"[..])
                .with_from(AgentId::next())
                .with_correlation(MessageId::from_raw(9).expect("non-zero")),
            Envelope::tell(Bytes::new()),
        ];
        let [tell, ask, _] = &batch;
        // A stale, longer buffer: every byte of the new batch is rewritten.
        let mut buf = vec![0xAA; 512];
        let mut asks = Vec::new();
        pack_batch(&mut buf, &batch, &mut asks);
        assert_eq!(buf.len(), 48 + 48 + 40);
        assert_eq!(asks, vec![(ask.id().get(), 1)]);

        let r0 = &buf[0..48];
        assert_eq!(u64_at(r0, 0), tell.id().get());
        assert_eq!(u64_at(r0, 24), 7);
        assert_eq!(&r0[32..36], &3u32.to_le_bytes());
        assert_eq!(r0[36], 0, "tell");
        assert_eq!(r0[37], 0b100, "key only");
        assert_eq!(&r0[38..40], &[0, 0]);
        assert_eq!(&r0[40..43], b"abc");
        assert_eq!(&r0[43..48], &[0; 5], "padding is zero");

        let r1 = &buf[48..96];
        assert_eq!(u64_at(r1, 0), ask.id().get());
        assert_eq!(u64_at(r1, 8), ask.from().expect("from").get());
        assert_eq!(u64_at(r1, 16), 9);
        assert_eq!(r1[36], 1, "ask");
        assert_eq!(r1[37], 0b011, "from and correlation");
        assert_eq!(&r1[40..48], b"12345678");

        let r2 = &buf[96..136];
        assert_eq!(&r2[32..36], &[0; 4]);
        assert_eq!(r2[37], 0);

        // Reused for a smaller batch: shrinks to it.
        pack_batch(&mut buf, &batch[2..], &mut asks);
        assert_eq!(buf.len(), 40);
    }
}
