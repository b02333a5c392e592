//! What the API logs: one line per request naming the endpoint, worker and
//! outcome, and never a secret, a proof or a body.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use skyfleet_core::protocol::paths;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn logs_name_endpoint_worker_and_outcome_but_no_secret() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (app, _) = app(roomy());
    let requests = [
        post(paths::REGISTER, None, register(WORKER, PROOF)),
        post(paths::REGISTER, None, register(WORKER, "forged-proof-9f8e")),
        post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 1)),
        post(
            paths::HEARTBEAT,
            Some("wrong-secret-5d4c"),
            heartbeat(WORKER, 1),
        ),
        post(paths::REREGISTER, Some(SECRET), worker_body(WORKER)),
        post(paths::DRAINED, Some(SECRET), worker_body(BROKEN)),
        post(
            paths::HEARTBEAT,
            Some(SECRET),
            format!(r#"{{"workerId":"w-1","state":"{SECRET}"}}"#),
        ),
    ];
    let mut statuses = Vec::new();
    for req in requests {
        statuses.push(send(&app, req).await.0.status().as_u16());
    }
    assert_eq!(statuses, [200, 401, 200, 401, 200, 500, 400]);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for secret in [
        SECRET,
        ISSUED,
        PROOF,
        "forged-proof-9f8e",
        "wrong-secret-5d4c",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    // One request line each, with endpoint, worker and status.
    let served = logs.matches("worker API request").count();
    assert_eq!(served, 7, "{logs}");
    assert!(logs.contains("endpoint=\"heartbeat\""), "{logs}");
    assert!(logs.contains("worker=Some(\"w-1\")"), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    assert!(logs.contains("status=500"), "{logs}");
    // A service error is logged (debug) with the request's secrets cut out.
    assert!(
        logs.contains("database said no to secret [redacted]"),
        "{logs}"
    );
    // The identity rejection's reason is there for operators (debug).
    assert!(logs.contains("bad_signature"), "{logs}");
}
