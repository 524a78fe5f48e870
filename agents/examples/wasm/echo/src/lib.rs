//! Echo: replies to every ask with its payload; ignores tells.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct Echo;

impl Agent for Echo {
    fn init(_config: &str) -> Result<Self, Error> {
        Ok(Echo)
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.kind == Kind::Ask {
            host::reply(msg, &msg.payload)?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Echo);
