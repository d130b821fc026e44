//! Ingested messages and dead letters: list, show, replay after a schema fix.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_store::{Message, MessageFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use berth_ingest::IngestError;

use super::services::time;
use super::{Shared, id_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", get(list))
        .route("/v1/messages/stream", get(stream))
        .route("/v1/messages/counts", get(counts))
        .route("/v1/messages/{id}", get(show))
        .route("/v1/messages/{id}/replay", post(replay))
}

/// Listing filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    ingest: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    dead: Option<bool>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// A message as the API shows it: its bytes as `payload_text` (UTF-8) or `payload_hex`,
/// and, when they are JSON, parsed as `payload`.
pub fn view(m: &Message) -> Value {
    let mut v = json!({
        "id": m.id,
        "ingest": m.ingest,
        "device": m.device,
        "topic": m.topic,
        "kind": m.kind,
        "received_at": m.received_at,
        "dead": m.dead,
        "errors": m.errors,
        "job_id": m.job_id,
        "workflow_id": m.workflow_id,
        "replayed_at": m.replayed_at,
        "duplicates": m.duplicates,
        "size": m.payload.len(),
    });
    if let Ok(payload) = serde_json::from_slice::<Value>(&m.payload) {
        v["payload"] = payload;
    }
    if let Ok(text) = std::str::from_utf8(&m.payload) {
        v["payload_text"] = json!(text);
    } else {
        let hex: String = m.payload.iter().map(|b| format!("{b:02x}")).collect();
        v["payload_hex"] = json!(hex);
    }
    v
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let (before_id, limit) = (q.before, q.limit.unwrap_or(50));
    let filter = MessageFilter {
        before_id,
        limit,
        ..CountQuery {
            ingest: q.ingest,
            device: q.device,
            kind: q.kind,
            dead: q.dead,
            since: q.since,
            until: q.until,
        }
        .filter()?
    };
    let limit = filter.limit as usize;
    let messages = state.queues.store().messages(filter).await?;
    // The next page, newest first like the jobs': `before` this.
    let next = (messages.len() == limit)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(json!({
        "messages": messages.iter().map(view).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

/// Counting filters: the listing's, without paging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountQuery {
    ingest: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    dead: Option<bool>,
    since: Option<String>,
    until: Option<String>,
}

impl CountQuery {
    fn filter(self) -> ApiResult<MessageFilter> {
        Ok(MessageFilter {
            ingest: self.ingest,
            device: self.device,
            kind: self.kind,
            dead: self.dead.unwrap_or(false),
            since: self
                .since
                .as_deref()
                .map(|t| time("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| time("until", t))
                .transpose()?,
            before_id: None,
            limit: 1,
        })
    }
}

/// `GET /v1/messages/counts`: how many messages per device and kind, most first, so a
/// stand's page need not fetch every message.
async fn counts(
    state: Shared,
    query: Result<Query<CountQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let filter = q.filter()?;
    let counts = state.queues.store().message_counts(filter).await?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    Ok(Json(json!({ "counts": counts, "total": total })))
}

/// Filters of the live stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    ingest: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    dead: Option<bool>,
}

impl StreamQuery {
    fn wants(&self, m: &Message) -> bool {
        self.ingest.as_ref().is_none_or(|i| *i == m.ingest)
            && self
                .device
                .as_ref()
                .is_none_or(|d| m.device.as_ref() == Some(d))
            && self
                .kind
                .as_ref()
                .is_none_or(|k| m.kind.as_ref() == Some(k))
            && self.dead.is_none_or(|d| d == m.dead)
    }
}

/// Server-sent events: `open` once listening, then `message` for each message or dead
/// letter stored from then on (as `GET /v1/messages/ID` shows it), and `lagged` with the
/// count a slow reader missed. The stream ends when berth stops.
async fn stream(
    state: Shared,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let Query(q) = query?;
    let Some(ingests) = &state.ingests else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_ingest",
            message: "this berth runs no [ingest.NAME], so no messages arrive".into(),
        });
    };
    let rx = ingests.feed().subscribe();
    let closed = ingests.feed().closed();
    let events = futures_util::stream::unfold((rx, closed, q), |(mut rx, closed, q)| async move {
        loop {
            let got = tokio::select! {
                got = rx.recv() => got,
                _ = closed.cancelled() => return None,
            };
            let event = match got {
                Ok(m) if q.wants(&m) => Event::default()
                    .event("message")
                    .id(m.id.to_string())
                    .data(view(&m).to_string()),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(json!({ "missed": n }).to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (rx, closed, q)));
        }
    });
    let open = Event::default().event("open").data("{}");
    let events =
        futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(open) }), events);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn show(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = id_of(&id)?;
    match state.queues.store().message(id).await? {
        Some(m) => Ok(Json(view(&m))),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no message with id {id}"),
        }),
    }
}

async fn replay(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = id_of(&id)?;
    let Some(ingests) = &state.ingests else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_ingest",
            message: "this berth runs no [ingest.NAME]; add the ingest back to the config to replay its dead letters".into(),
        });
    };
    match ingests.replay(id).await {
        Ok(m) => Ok(Json(view(&m))),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(e @ IngestError::NoMessage(_)) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: e.to_string(),
        }),
        Err(e) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_ingest",
            message: e.to_string(),
        }),
    }
}
