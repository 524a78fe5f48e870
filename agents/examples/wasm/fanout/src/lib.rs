//! Fan-out: forwards every message's payload to each agent named in its
//! config (comma-separated), and answers asks with how many sends succeeded.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct FanOut {
    targets: Vec<String>,
}

impl Agent for FanOut {
    fn init(config: &str) -> Result<Self, Error> {
        let targets: Vec<String> = config
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if targets.is_empty() {
            return Err(Error::new(
                "fanout needs a config listing targets, such as \"a,b\"",
            ));
        }
        Ok(FanOut { targets })
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        let mut sent = 0u32;
        for t in &self.targets {
            match host::send(t, &msg.payload) {
                Ok(()) => sent += 1,
                Err(e) => switchyard_sdk::warn!("send to {t} refused: {e:?}"),
            }
        }
        if msg.kind == Kind::Ask {
            host::reply(msg, &sent.to_le_bytes())?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(FanOut);
