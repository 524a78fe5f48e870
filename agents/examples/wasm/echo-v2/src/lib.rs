//! Echo, version 2: replies with `v2:` and the payload (hot reload tests).

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct EchoV2;

impl Agent for EchoV2 {
    fn init(_config: &str) -> Result<Self, Error> {
        Ok(EchoV2)
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.kind == Kind::Ask {
            let mut out = b"v2:".to_vec();
            out.extend_from_slice(&msg.payload);
            host::reply(msg, &out)?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(EchoV2);
