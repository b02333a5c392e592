//! `GET /_mock/events`: the live feed as server-sent events.
//!
//! The stream starts with `event: hello` whose data is
//! `{"seq": N, "buffer": B}`: N is the last journal entry recorded before
//! the stream began (fetch `/_mock/requests?since=...` up to it, the stream
//! carries everything after), B the events a client may fall behind before
//! it is dropped. Then:
//!
//! - `event: request`, `id: SEQ`, data: one journal entry, as
//!   `/_mock/requests` lists it;
//! - `event: control`, data: `{"method": "PUT", "path": "/_mock/faults"}`
//!   after a control call changed something;
//! - a comment line every 15 s, so dead connections are noticed.
//!
//! The stream ends when the client falls too far behind; the client then
//! reconnects and catches up from the journal.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};

use super::feed::{FeedEvent, Subscription, CLIENT_BUFFER, MAX_CLIENTS};
use crate::app::Shared;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The handler.
pub async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let (seq, sub) = match shared.recorder.subscribe() {
        Ok(s) => s,
        Err(_) => {
            return crate::control::json_error(
                503,
                &format!(
                    "too many live event streams (at most {MAX_CLIENTS}); close a dashboard tab"
                ),
            )
        }
    };
    let hello = Event::default()
        .event("hello")
        .data(serde_json::json!({ "seq": seq, "buffer": CLIENT_BUFFER }).to_string());
    let rest = stream::unfold(sub, |mut sub: Subscription| async move {
        let event = sub.recv().await?;
        Some((Ok::<_, Infallible>(to_sse(&event)), sub))
    });
    let all = stream::once(async move { Ok::<_, Infallible>(hello) }).chain(rest);
    let mut resp = Sse::new(all)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// One feed event in SSE form.
fn to_sse(event: &FeedEvent) -> Event {
    match event {
        FeedEvent::Request(entry) => Event::default()
            .event("request")
            .id(entry.seq.to_string())
            .data(serde_json::to_string(&**entry).unwrap_or_else(|_| "{}".into())),
        FeedEvent::Control { method, path } => Event::default()
            .event("control")
            .data(serde_json::json!({ "method": method, "path": path }).to_string()),
    }
}
