//! Errors at the runtime's boundaries. Send errors hand the message back.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// A name that cannot be used for an agent, pool or topic.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty string.
    #[error("agent name is empty; give it a name such as \"orders\"")]
    Empty,
    /// Longer than [`crate::address::MAX_NAME_LEN`].
    #[error("agent name {name:?} is {len} bytes; use at most 255")]
    TooLong {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// A character outside `[A-Za-z0-9-_.:/]`.
    #[error("agent name {name:?} contains {bad:?}; use only letters, digits and - _ . : /")]
    BadChar {
        /// The name.
        name: String,
        /// The first offending character.
        bad: char,
    },
}

/// Why an agent or pool could not be started.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The name is not usable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Something is registered under the name already.
    #[error(
        "an agent or pool named {0:?} is already registered; stop it first or pick another name"
    )]
    Duplicate(String),
    /// A configuration value is out of range.
    #[error("invalid setting for {agent:?}: {what}")]
    Invalid {
        /// The agent or pool name.
        agent: String,
        /// What is wrong and how to fix it.
        what: String,
    },
    /// The runtime is shutting down.
    #[error("the runtime is shutting down; {0:?} was not started")]
    ShuttingDown(String),
}

/// Why a message was not accepted. Holds the message (or batch) so the caller
/// can retry, reroute or drop it knowingly.
#[derive(Error)]
pub enum SendError<T> {
    /// No agent, pool or topic has this name.
    #[error("no agent or pool named {name:?}; check the name or register it first")]
    UnknownAgent {
        /// The name that did not resolve.
        name: Box<str>,
        /// The message, handed back.
        message: T,
    },
    /// The mailbox was full and its policy is `reject` (or the batch is larger
    /// than the mailbox).
    #[error(
        "mailbox of {agent:?} is full (policy reject); retry later, raise its capacity or use block"
    )]
    Full {
        /// The receiving agent.
        agent: Arc<str>,
        /// The message, handed back.
        message: T,
    },
    /// The deadline passed while waiting for room (policy `block`).
    #[error("mailbox of {agent:?} stayed full until the message deadline")]
    Timeout {
        /// The receiving agent.
        agent: Arc<str>,
        /// The message, handed back.
        message: T,
    },
    /// The agent stopped, or the runtime is shutting down.
    #[error("{agent:?} no longer accepts messages (stopped or shutting down)")]
    Closed {
        /// The receiving agent.
        agent: Arc<str>,
        /// The message, handed back.
        message: T,
    },
}

impl<T> SendError<T> {
    /// The message that was not accepted.
    pub fn into_message(self) -> T {
        match self {
            SendError::UnknownAgent { message, .. }
            | SendError::Full { message, .. }
            | SendError::Timeout { message, .. }
            | SendError::Closed { message, .. } => message,
        }
    }

    /// A stable label for metrics and APIs.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::UnknownAgent { .. } => "unknown_agent",
            SendError::Full { .. } => "full",
            SendError::Timeout { .. } => "timeout",
            SendError::Closed { .. } => "closed",
        }
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::UnknownAgent { name, message } => SendError::UnknownAgent {
                name,
                message: f(message),
            },
            SendError::Full { agent, message } => SendError::Full {
                agent,
                message: f(message),
            },
            SendError::Timeout { agent, message } => SendError::Timeout {
                agent,
                message: f(message),
            },
            SendError::Closed { agent, message } => SendError::Closed {
                agent,
                message: f(message),
            },
        }
    }
}

impl<T> std::fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendError::{}({self})", self.reason())
    }
}

/// Why an ask got no reply.
#[derive(Debug, Error)]
pub enum AskError {
    /// The request was not accepted.
    #[error(transparent)]
    Send(#[from] SendError<crate::Envelope>),
    /// No reply within the timeout; a reply arriving later is counted and dropped.
    #[error("{agent:?} did not reply within {timeout:?}")]
    Timeout {
        /// The asked agent.
        agent: Box<str>,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The agent finished with the request without replying (or failed on it).
    #[error("{agent:?} finished the request without replying")]
    NoReply {
        /// The asked agent.
        agent: Box<str>,
    },
}

/// Why a reply could not be sent.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// The message is not an ask of the current batch, or was answered already.
    #[error("this message expects no reply (not an ask, or already answered)")]
    NotExpected,
    /// The asker stopped waiting (timed out); the reply was counted as late and dropped.
    #[error("the asker is no longer waiting; reply dropped as late")]
    Late,
}

/// An error an agent returns from a handler. The message is dead-lettered
/// with reason `failed` and this text as detail; the supervisor decides on a restart.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct AgentError(pub String);

impl AgentError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> AgentError {
        AgentError(msg.into())
    }
}

impl From<String> for AgentError {
    fn from(s: String) -> AgentError {
        AgentError(s)
    }
}

impl From<&str> for AgentError {
    fn from(s: &str) -> AgentError {
        AgentError(s.to_owned())
    }
}
