//! Misbehaves on purpose: the payload `bomb` allocates 1 MiB blocks until the
//! memory cap stops it; anything else is echoed to asks.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct Bomb {
    hoard: Vec<Vec<u8>>,
}

impl Agent for Bomb {
    fn init(_config: &str) -> Result<Self, Error> {
        Ok(Bomb { hoard: Vec::new() })
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.payload == b"bomb" {
            loop {
                self.hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        if msg.kind == Kind::Ask {
            host::reply(msg, &msg.payload)?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Bomb);
