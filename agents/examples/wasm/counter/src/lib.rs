//! Counter: counts every message in the key-value store, so the count
//! survives restarts; answers asks with the count as 8 little-endian bytes.
//! The payload `fail` makes the handler return an error (after counting).

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

const KEY: &str = "count";

struct Counter;

impl Agent for Counter {
    fn init(_config: &str) -> Result<Self, Error> {
        Ok(Counter)
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        let count = host::kv_get(KEY)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
            + 1;
        host::kv_set(KEY, &count.to_le_bytes())?;
        if msg.kind == Kind::Ask {
            host::reply(msg, &count.to_le_bytes())?;
        }
        if msg.payload == b"fail" {
            return Err(Error::new("asked to fail"));
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Counter);
