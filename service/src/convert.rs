//! Mapping between wire [`Message`]s and runtime [`Envelope`]s, and runtime
//! errors to wire [`ErrorCode`]s.

use std::time::Duration;

use switchyard_client::wire::{ErrorCode, Message};
use switchyard_runtime::{AskError, Envelope, MAX_HEADERS, Payload, Performative, SendError};

/// Builds an envelope (tell or ask) from a wire message. TTLs count from now.
pub fn to_envelope(m: Message, ask: bool) -> Envelope {
    let Message {
        payload,
        key,
        conversation,
        ttl_ms,
        performative,
        headers,
    } = m;
    // Small payloads travel inline: the decoder's buffer is freed here, on
    // the connection's core, not by the agent (decision 0023).
    let payload = Payload::compact(payload);
    let mut env = if ask {
        Envelope::ask(payload)
    } else {
        Envelope::tell(payload)
    };
    if let Some(k) = key {
        env = env.with_key_hash(k);
    }
    if let Some(c) = conversation {
        env = env.with_conversation(c);
    }
    if let Some(ttl) = ttl_ms {
        env = env.with_ttl(Duration::from_millis(u64::from(ttl)));
    }
    if performative != 0 {
        env = env.with_performative(performative_of(performative));
    }
    for (k, v) in headers.iter().take(MAX_HEADERS) {
        env = env.with_header(k, v);
    }
    env
}

/// The wire form of a reply.
pub fn from_envelope(env: &Envelope) -> Message {
    Message {
        payload: env.payload().to_bytes(),
        key: env.key(),
        conversation: env.conversation(),
        ttl_ms: None,
        performative: env.performative() as u8,
        headers: env
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn performative_of(p: u8) -> Performative {
    match p {
        1 => Performative::Request,
        2 => Performative::Inform,
        3 => Performative::Propose,
        4 => Performative::Accept,
        5 => Performative::Refuse,
        6 => Performative::Failure,
        7 => Performative::Query,
        _ => Performative::None,
    }
}

/// The wire code of a send refusal.
pub fn send_code<T>(e: &SendError<T>) -> ErrorCode {
    match e {
        SendError::UnknownAgent { .. } => ErrorCode::UnknownAgent,
        SendError::Full { .. } => ErrorCode::MailboxFull,
        SendError::Timeout { .. } => ErrorCode::DeadlineExpired,
        SendError::Closed { .. } => ErrorCode::AgentClosed,
    }
}

/// The wire code of a failed ask.
pub fn ask_code(e: &AskError) -> ErrorCode {
    match e {
        AskError::Send(s) => send_code(s),
        AskError::Timeout { .. } => ErrorCode::AskTimeout,
        AskError::NoReply { .. } => ErrorCode::NoReply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_survive_the_round_trip() {
        let m = Message {
            payload: "p".into(),
            key: Some(7),
            conversation: Some(9),
            ttl_ms: Some(1000),
            performative: 2,
            headers: vec![("a".into(), "b".into())],
        };
        let env = to_envelope(m.clone(), true);
        assert_eq!(env.kind(), switchyard_runtime::Kind::Ask);
        assert!(env.deadline().is_some());
        let back = from_envelope(&env);
        assert_eq!(back, Message { ttl_ms: None, ..m });
    }
}
