//! Caps: answers every ask with what its configuration grants it, as
//! `clock=<yes|no>;env=<value|none>`, where the environment variable read is
//! the one named by the config text. Used by the capability tests.

use switchyard_sdk::{Agent, Envelope, Error, Kind, host};

struct Caps {
    variable: String,
}

impl Agent for Caps {
    fn init(config: &str) -> Result<Self, Error> {
        Ok(Caps {
            variable: config.trim().to_owned(),
        })
    }

    fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
        if msg.kind == Kind::Ask {
            let clock = if host::now_ms().is_some() {
                "yes"
            } else {
                "no"
            };
            let env = host::env(&self.variable).unwrap_or_else(|| "none".to_owned());
            host::reply(msg, format!("clock={clock};env={env}").as_bytes())?;
        }
        Ok(())
    }
}

switchyard_sdk::export_agent!(Caps);
