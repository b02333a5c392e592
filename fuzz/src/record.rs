//! Recording what the providers and the mock say to each other, to make
//! seed corpora (`SKYFLEET_FUZZ_RECORD`).

use std::sync::OnceLock;

use crate::{RawAnswer, RawRequest};

/// `SKYFLEET_FUZZ_RECORD=FILE`: the mock's answers to a provider are
/// appended to `FILE` in the answer format, its requests to
/// `FILE.requests` in the request format, and the states the provider
/// writes to `FILE.states`, one JSON per line. This is how the seed corpora
/// of `provider_responses` and `azure_chain_state` were made (see
/// fuzz/README.md).
fn record_path() -> Option<&'static std::path::Path> {
    static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| std::env::var_os("SKYFLEET_FUZZ_RECORD").map(Into::into))
        .as_deref()
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = file {
        let _ = f.write_all(bytes);
    }
}

pub(crate) fn record_answer(a: &RawAnswer) {
    let Some(path) = record_path() else {
        return;
    };
    let mut out = format!("{}\n", a.status).into_bytes();
    for (name, value) in &a.headers {
        if matches!(name.as_str(), "content-length" | "date") {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&a.body);
    out.extend_from_slice(b"\n--\n");
    append(path, &out);
}

pub(crate) fn record_request(r: &RawRequest) {
    let Some(path) = record_path() else {
        return;
    };
    let target = r.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = format!("{} {target}\n", r.method).into_bytes();
    if let Some(host) = r.uri.authority() {
        out.extend_from_slice(format!("host: {host}\n").as_bytes());
    }
    for (name, value) in &r.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&r.body);
    out.extend_from_slice(b"\n--\n");
    let mut p = path.as_os_str().to_owned();
    p.push(".requests");
    append(std::path::Path::new(&p), &out);
}

pub(crate) fn record_state(state: &serde_json::Value) {
    let Some(path) = record_path() else {
        return;
    };
    let mut p = path.as_os_str().to_owned();
    p.push(".states");
    append(std::path::Path::new(&p), format!("{state}\n").as_bytes());
}
