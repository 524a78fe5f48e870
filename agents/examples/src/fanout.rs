use std::sync::Arc;

use switchyard_runtime::{Agent, AgentError, Context, Envelope, Kind};

/// Forwards a copy of every message to each of its targets (sharing the
/// payload buffer), as a tell from itself. Replies to asks with the number of
/// targets that accepted the copy.
///
/// ```
/// use std::time::Duration;
/// use switchyard_examples::{Counter, FanOut};
/// use switchyard_runtime::{AgentConfig, Envelope, Runtime};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let rt = Runtime::new();
/// rt.spawn("a", AgentConfig::default(), Counter::default).unwrap();
/// rt.spawn("b", AgentConfig::default(), Counter::default).unwrap();
/// let fan = FanOut::new(["a", "b"]);
/// rt.spawn("fan", AgentConfig::default(), move || fan.clone()).unwrap();
/// let n = rt.ask("fan", Envelope::ask(vec![]), Duration::from_secs(1)).await.unwrap();
/// assert_eq!(n.payload().as_ref(), &2u64.to_le_bytes());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FanOut {
    targets: Arc<[Box<str>]>,
}

impl FanOut {
    /// A fan-out to these agent or pool names.
    pub fn new<I, S>(targets: I) -> FanOut
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        FanOut {
            targets: targets.into_iter().map(|s| s.as_ref().into()).collect(),
        }
    }
}

impl Agent for FanOut {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        let mut accepted = 0u64;
        for target in self.targets.iter() {
            let copy = Envelope::tell(msg.payload().clone())
                .with_conversation(msg.conversation().unwrap_or(0));
            if ctx.tell(target, copy).await.is_ok() {
                accepted += 1;
            }
        }
        if msg.kind() == Kind::Ask {
            let _ = ctx.reply(msg, accepted.to_le_bytes().to_vec());
        }
        Ok(())
    }
}
