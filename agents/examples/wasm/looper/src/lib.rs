//! Misbehaves on purpose: the payload `loop` spins forever (CPU limit tests);
//! anything else is echoed to asks.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct Looper;

impl Agent for Looper {
    fn init(_config: &str) -> Result<Self, Error> {
        Ok(Looper)
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.payload == b"loop" {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if msg.kind == Kind::Ask {
            host::reply(msg, &msg.payload)?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Looper);
