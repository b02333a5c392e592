//! A stub manager: the four worker endpoints over the protocol types, with
//! a secret it checks, an expiry it sets, and the action it answers set by
//! the test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use skyfleet_core::protocol::{
    paths, Action, DrainedRequest, DrainedResponse, ErrorBody, ErrorCode, HeartbeatRequest,
    HeartbeatResponse, RegisterRequest, RegisterResponse, ReregisterRequest, ReregisterResponse,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::provider::IdentityProof;
use time::OffsetDateTime;

/// What the stub saw and will answer.
#[derive(Debug)]
pub struct Book {
    /// The static secret a registration must prove.
    pub static_secret: String,
    /// The worker config handed out.
    pub worker_config: serde_json::Value,
    /// The current worker secret (`None` before registration).
    pub secret: Option<String>,
    /// How many secrets were issued.
    pub issued: u32,
    /// When the current secret expires.
    pub expires_at: OffsetDateTime,
    /// A secret's lifetime.
    pub lifetime: Duration,
    /// The heartbeat interval answered.
    pub interval_secs: u64,
    /// The action answered to heartbeats.
    pub action: Action,
    /// Registrations, with when.
    pub registers: Vec<(RegisterRequest, Instant)>,
    /// Renewals, with when.
    pub reregisters: Vec<Instant>,
    /// Heartbeats, with when.
    pub heartbeats: Vec<(HeartbeatRequest, Instant)>,
    /// Drained confirmations, with when and whether `marker` existed then.
    pub drained: Vec<(Instant, bool)>,
    /// A file whose existence each `drained` records.
    pub marker: Option<PathBuf>,
    /// Requests refused for a wrong secret.
    pub refused: u32,
}

/// A running stub manager.
#[derive(Clone)]
pub struct Stub {
    /// Its root URL.
    pub url: String,
    book: Arc<Mutex<Book>>,
}

impl Stub {
    /// A stub on a new port.
    pub async fn start(static_secret: &str) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Stub::serve(listener, static_secret)
    }

    /// A stub that will listen on `addr` once [`Stub::listen`] is called.
    pub fn on(addr: SocketAddr, static_secret: &str) -> Stub {
        Stub {
            url: format!("http://{addr}"),
            book: Arc::new(Mutex::new(Book::new(static_secret))),
        }
    }

    /// Starts serving a stub made with [`Stub::on`].
    pub async fn listen(&self) {
        let addr = self.url.trim_start_matches("http://");
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        spawn(listener, self.book.clone());
    }

    fn serve(listener: tokio::net::TcpListener, static_secret: &str) -> Stub {
        let addr = listener.local_addr().expect("addr");
        let book = Arc::new(Mutex::new(Book::new(static_secret)));
        spawn(listener, book.clone());
        Stub {
            url: format!("http://{addr}"),
            book,
        }
    }

    /// The book, to read or change.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Book {
    fn new(static_secret: &str) -> Book {
        Book {
            static_secret: static_secret.into(),
            worker_config: serde_json::json!({"threads": 4, "queue": "ci"}),
            secret: None,
            issued: 0,
            expires_at: OffsetDateTime::now_utc(),
            lifetime: Duration::from_secs(3600),
            interval_secs: 1,
            action: Action::Continue,
            registers: vec![],
            reregisters: vec![],
            heartbeats: vec![],
            drained: vec![],
            marker: None,
            refused: 0,
        }
    }

    fn issue(&mut self) -> (Secret, OffsetDateTime) {
        self.issued += 1;
        let s = format!("worker-secret-{}-{}", self.issued, std::process::id());
        self.secret = Some(s.clone());
        self.expires_at = OffsetDateTime::now_utc() + self.lifetime;
        (Secret::new(s), self.expires_at)
    }
}

fn spawn(listener: tokio::net::TcpListener, book: Arc<Mutex<Book>>) {
    let app = Router::new()
        .route(paths::REGISTER, post(register))
        .route(paths::REREGISTER, post(reregister))
        .route(paths::HEARTBEAT, post(heartbeat))
        .route(paths::DRAINED, post(drained))
        .with_state(book);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

type Shared = State<Arc<Mutex<Book>>>;

fn lock(book: &Arc<Mutex<Book>>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(ErrorBody {
            code: ErrorCode::Unauthorized,
            message: "signature validation error".into(),
        }),
    )
        .into_response()
}

/// Whether the bearer is the current secret (counting refusals).
fn authorized(book: &mut Book, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = bearer.is_some() && bearer == book.secret.as_deref();
    if !ok {
        book.refused += 1;
    }
    ok
}

async fn register(State(book): Shared, Json(req): Json<RegisterRequest>) -> Response {
    let mut b = lock(&book);
    b.registers.push((req.clone(), Instant::now()));
    let ok = matches!(&req.proof, IdentityProof::StaticSecret { secret } if secret.expose() == b.static_secret);
    if !ok {
        return unauthorized();
    }
    let (secret, expires) = b.issue();
    Json(RegisterResponse {
        worker_config: b.worker_config.clone(),
        secret,
        expires,
        heartbeat_interval_secs: b.interval_secs,
    })
    .into_response()
}

async fn reregister(
    State(book): Shared,
    headers: HeaderMap,
    Json(_req): Json<ReregisterRequest>,
) -> Response {
    let mut b = lock(&book);
    if !authorized(&mut b, &headers) {
        return unauthorized();
    }
    b.reregisters.push(Instant::now());
    let (secret, expires) = b.issue();
    Json(ReregisterResponse { secret, expires }).into_response()
}

async fn heartbeat(
    State(book): Shared,
    headers: HeaderMap,
    Json(req): Json<HeartbeatRequest>,
) -> Response {
    let mut b = lock(&book);
    if !authorized(&mut b, &headers) {
        return unauthorized();
    }
    b.heartbeats.push((req, Instant::now()));
    Json(HeartbeatResponse {
        action: b.action,
        heartbeat_interval_secs: b.interval_secs,
        expires: b.expires_at,
    })
    .into_response()
}

async fn drained(
    State(book): Shared,
    headers: HeaderMap,
    Json(_req): Json<DrainedRequest>,
) -> Response {
    let mut b = lock(&book);
    if !authorized(&mut b, &headers) {
        return unauthorized();
    }
    let marker = b.marker.as_ref().is_some_and(|m| m.exists());
    b.drained.push((Instant::now(), marker));
    Json(DrainedResponse {
        action: Action::Terminate,
    })
    .into_response()
}
