//! Ingested messages and dead letters: list, show, replay after a schema fix.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use berth_store::{Message, MessageFilter};

use berth_ingest::IngestError;

use super::{ApiPath, Shared, id_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult, EventStream};
use crate::types::{
    IdPath, MessageCountQuery, MessageCounts, MessagePage, MessageQuery, MessageStreamQuery,
    MessageView, time,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/messages", get(list))
        .api_route("/v1/messages/stream", get(stream))
        .api_route("/v1/messages/counts", get(counts))
        .api_route("/v1/messages/{id}", get(show))
        .api_route("/v1/messages/{id}/replay", post(replay))
}

/// A message as the API shows it: its bytes as `payload_text` (UTF-8) or `payload_hex`,
/// and, when they are JSON, parsed as `payload`.
pub fn view(m: &Message) -> MessageView {
    let text = std::str::from_utf8(&m.payload).ok();
    MessageView {
        id: m.id,
        ingest: m.ingest.clone(),
        device: m.device.clone(),
        topic: m.topic.clone(),
        kind: m.kind.clone(),
        received_at: m.received_at,
        dead: m.dead,
        errors: m.errors.clone(),
        job_id: m.job_id,
        workflow_id: m.workflow_id,
        replayed_at: m.replayed_at,
        duplicates: m.duplicates,
        size: m.payload.len() as u64,
        payload: serde_json::from_slice(&m.payload).ok(),
        payload_text: text.map(str::to_owned),
        payload_hex: text
            .is_none()
            .then(|| m.payload.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

async fn list(
    state: Shared,
    query: Result<Query<MessageQuery>, QueryRejection>,
) -> ApiResult<Json<MessagePage>> {
    let Query(q) = query?;
    let (before_id, limit) = (q.before, q.limit.unwrap_or(50));
    let filter = MessageFilter {
        before_id,
        limit,
        ..MessageCountQuery {
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
    Ok(Json(MessagePage {
        messages: messages.iter().map(view).collect(),
        next_before: next,
    }))
}

impl MessageCountQuery {
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
    query: Result<Query<MessageCountQuery>, QueryRejection>,
) -> ApiResult<Json<MessageCounts>> {
    let Query(q) = query?;
    let filter = q.filter()?;
    let counts = state.queues.store().message_counts(filter).await?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    Ok(Json(MessageCounts { counts, total }))
}

impl MessageStreamQuery {
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
    query: Result<Query<MessageStreamQuery>, QueryRejection>,
) -> ApiResult<
    EventStream<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>>,
> {
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
                    .data(serde_json::to_string(&view(&m)).unwrap_or_default()),
                Ok(_) => continue,
                Err(berth_ingest::feed::Missed(n)) => Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
            };
            return Some((Ok(event), (rx, closed, q)));
        }
    });
    let open = Event::default().event("open").data("{}");
    let events =
        futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(open) }), events);
    Ok(EventStream(
        Sse::new(events).keep_alive(KeepAlive::default()),
    ))
}

async fn show(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<MessageView>> {
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

async fn replay(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<MessageView>> {
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
