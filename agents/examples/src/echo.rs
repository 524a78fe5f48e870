use switchyard_runtime::{Agent, AgentError, Context, Envelope, Kind};

/// Replies to every ask with the request's payload; tells are just handled.
///
/// ```
/// use std::time::Duration;
/// use switchyard_examples::Echo;
/// use switchyard_runtime::{AgentConfig, Envelope, Runtime};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let rt = Runtime::new();
/// rt.spawn("echo", AgentConfig::default(), || Echo).unwrap();
/// let reply = rt.ask("echo", Envelope::ask("ping"), Duration::from_secs(1)).await.unwrap();
/// assert_eq!(reply.payload().as_ref(), b"ping");
/// # });
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Agent for Echo {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        if msg.kind() == Kind::Ask {
            // A late reply is counted by the runtime; nothing more to do here.
            let _ = ctx.reply(msg, msg.payload().clone());
        }
        Ok(())
    }
}
