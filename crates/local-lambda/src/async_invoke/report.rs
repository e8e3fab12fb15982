//! What became of each asynchronous event: its attempts, and the trip of its
//! destination record through the queue.

use serde_json::Value;

use super::Answer;

/// Why Lambda gave up on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// One asynchronous event and what became of it.
#[derive(Clone, Debug)]
pub struct EventReport {
    pub request_id: String,
    pub function_name: String,
    pub payload: Vec<u8>,
    /// Each attempt's answer, in order.
    pub attempts: Vec<Answer>,
    /// `None` while attempts are under way.
    pub end: Option<EventEnd>,
}

#[derive(Clone, Debug)]
pub enum EventEnd {
    /// An attempt succeeded.
    Succeeded,
    /// Lambda gave up; the record went to the on-failure destination.
    Destination(DestinationReport),
    /// The emulator stopped first (local_lambda's Ctrl-C).
    Abandoned,
}

/// The destination record of an event and its trip through the queue.
#[derive(Clone, Debug)]
pub struct DestinationReport {
    pub condition: Condition,
    /// The invocation record, as sent (the message body is its JSON text).
    pub record: Value,
    pub message_id: String,
    /// Each time the event source mapping handed the message to the function.
    pub receives: Vec<Receive>,
    pub state: MessageState,
}

/// Where a destination message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageState {
    /// In the queue: being received, or invisible until its next receive.
    InQueue,
    /// Processed: the mapping deleted it.
    Deleted,
    /// Failed [`Policy::max_receive_count`] receives: a redrive policy would
    /// have moved it to a dead-letter queue.
    GivenUp,
}

/// One SQS event the function was given, and its answer.
#[derive(Clone, Debug)]
pub struct Receive {
    pub request_id: String,
    pub event: Value,
    pub answer: Answer,
    /// Whether the mapping counts the message as failed (function error, or
    /// the message named in `batchItemFailures`, or an answer it cannot read).
    pub failed: bool,
}
