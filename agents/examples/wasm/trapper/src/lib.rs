//! Misbehaves on purpose: the payload `trap` panics (a trap for the host);
//! the config `panic-in-init` panics in `init` and `fail-init` returns an
//! error from it. Anything else is echoed to asks.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct Trapper;

impl Agent for Trapper {
    fn init(config: &str) -> Result<Self, Error> {
        match config {
            "panic-in-init" => panic!("init panics as configured"),
            "fail-init" => Err(Error::new("init fails as configured")),
            _ => Ok(Trapper),
        }
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.payload == b"trap" {
            panic!("trap requested");
        }
        if msg.kind == Kind::Ask {
            host::reply(msg, &msg.payload)?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Trapper);
