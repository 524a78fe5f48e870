use switchyard_runtime::{Agent, AgentError, Context, Envelope, Kind};

/// Keeps a running total.
///
/// A tell adds its payload read as a little-endian `u64` (an empty payload
/// adds 1; any other length is an error, dead-lettered as `failed`). An ask
/// adds likewise, then replies with the total as 8 little-endian bytes; an ask
/// with an empty payload just reads the total.
///
/// ```
/// use std::time::Duration;
/// use switchyard_examples::Counter;
/// use switchyard_runtime::{AgentConfig, Envelope, Runtime};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let rt = Runtime::new();
/// rt.spawn("count", AgentConfig::default(), Counter::default).unwrap();
/// rt.tell("count", Envelope::tell(5u64.to_le_bytes().to_vec())).await.unwrap();
/// rt.tell("count", Envelope::tell(vec![])).await.unwrap();
/// let total = rt.ask("count", Envelope::ask(vec![]), Duration::from_secs(1)).await.unwrap();
/// assert_eq!(Counter::decode(total.payload()), Some(6));
/// # });
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter {
    total: u64,
}

impl Counter {
    /// Reads a total from a reply payload.
    pub fn decode(payload: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(payload.try_into().ok()?))
    }

    /// The current total.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Agent for Counter {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        let p = msg.payload();
        let add = match p.len() {
            0 if msg.kind() == Kind::Ask => 0,
            0 => 1,
            8 => Counter::decode(p).unwrap_or_default(),
            n => {
                return Err(AgentError(format!(
                    "counter expects 0 or 8 payload bytes, got {n}"
                )));
            }
        };
        self.total = self.total.wrapping_add(add);
        if msg.kind() == Kind::Ask {
            let _ = ctx.reply(msg, self.total.to_le_bytes().to_vec());
        }
        Ok(())
    }
}
