//! Lifecycle events (`upload.created`, `upload.completed`,
//! `upload.promoted`, `upload.expired`, `upload.rejected`) and where they
//! go: Rust callbacks ([`HookSink`]) and signed HTTP webhooks.
//!
//! Emitting never blocks an upload and never fails it: sinks get the event
//! by reference and must hand slow work (network calls) to a background
//! task of their own.

use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// An upload was created (URLs signed).
    #[serde(rename = "upload.created")]
    Created,
    /// An upload passed its checks; a receipt was issued.
    #[serde(rename = "upload.completed")]
    Completed,
    /// A checked object was copied to its final key.
    #[serde(rename = "upload.promoted")]
    Promoted,
    /// An abandoned upload or unpromoted object was removed.
    #[serde(rename = "upload.expired")]
    Expired,
    /// An object broke its grant and was deleted.
    #[serde(rename = "upload.rejected")]
    Rejected,
}

impl EventKind {
    /// The event's name as sent to webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "upload.created",
            Self::Completed => "upload.completed",
            Self::Promoted => "upload.promoted",
            Self::Expired => "upload.expired",
            Self::Rejected => "upload.rejected",
        }
    }
}

/// One lifecycle event; the JSON body webhooks receive.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unique id (for de-duplication on the receiving side).
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When, RFC 3339.
    pub created_at: String,
    /// The upload id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Details: bucket, key, size, type, reason... depending on the kind.
    pub data: serde_json::Value,
}

impl Event {
    /// A new event of `kind` for `upload_id` with `data`.
    pub fn new(kind: EventKind, upload_id: Option<&str>, data: serde_json::Value) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            kind,
            created_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            upload_id: upload_id.map(str::to_owned),
            data,
        }
    }
}

/// Something that receives lifecycle events. Must return quickly.
pub trait HookSink: Send + Sync + 'static {
    /// Takes one event. Must not block; queue network work elsewhere.
    fn emit(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> HookSink for F {
    fn emit(&self, event: &Event) {
        self(event)
    }
}

/// The configured sinks; emitting goes to each in turn.
#[derive(Clone, Default)]
pub struct Hooks {
    sinks: Vec<Arc<dyn HookSink>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").field("sinks", &self.sinks.len()).finish()
    }
}

impl Hooks {
    /// No sinks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn add(&mut self, sink: Arc<dyn HookSink>) {
        self.sinks.push(sink);
    }

    /// Sends `event` to every sink. A panicking sink is contained and logged.
    pub fn emit(&self, event: Event) {
        tracing::debug!(kind = event.kind.as_str(), upload_id = ?event.upload_id, "lifecycle event");
        for sink in &self.sinks {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.emit(&event)));
            if result.is_err() {
                tracing::error!(
                    kind = event.kind.as_str(),
                    "a hook sink panicked; event dropped for it"
                );
            }
        }
    }
}
