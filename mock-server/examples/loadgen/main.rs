//! Load benchmark of the mock cloud on loopback.
//!
//! ```text
//! cargo run --release -p skyfleet-mock --example loadgen -- --json
//! ```
//!
//! The mock (and, for the ceiling, a bare axum handler returning a fixed
//! body) runs on its own tokio runtime; the load generator runs on another,
//! so client and server never share a scheduler. Each scenario opens N
//! keep-alive HTTP/1.1 connections (hyper's low-level client, one request in
//! flight per connection), warms up, then counts the requests that complete
//! within a fixed window and records each one's latency.
//!
//! Scenarios: the bare handler (this machine's ceiling), EC2
//! DescribeInstances of one instance by id and filtered by tag to 200 of
//! 1,000 instances, ARM GET of a VM, ARM operation-status poll, and Compute
//! Engine instances.get. Each reports requests/s, p50/p99 latency and its
//! share of the ceiling. Memory per stored resource is the growth of the
//! process's resident set (`VmRSS`) while each cloud stores N more resources
//! in a partition of their own, divided by N: Compute Engine instances
//! (with their insert operations), EC2 instances, volumes and launch
//! templates, ARM public IPs, network interfaces, disks and VMs (each VM
//! on its own interface from the step before).
//!
//! Options: `--json` (one JSON object on stdout), `--duration-s S` (5),
//! `--warmup-s S` (1), `--connections N` (32), `--server-threads N` (1),
//! `--client-threads N` (1), `--mem-count N` (10000, 0 skips the memory
//! phase), `--only a,b` (scenario names), `--ec2-peer HOST:PORT` (also
//! measure the two EC2 scenarios against another EC2 server, such as
//! `moto_server -p 5055`, with the same generator, and report the ratios).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockConfig};
use tokio::net::TcpStream;

mod memory;
mod requests;

use memory::{bulk, memory};
use requests::*;

/// A boxed error for this tool's plumbing.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    json: bool,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    server_threads: usize,
    client_threads: usize,
    mem_count: usize,
    only: Option<Vec<String>>,
    /// Another EC2 implementation (moto's server) to measure with the same
    /// generator, side by side.
    ec2_peer: Option<SocketAddr>,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut o = Options {
            json: false,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            connections: 32,
            server_threads: 1,
            client_threads: 1,
            mem_count: 10_000,
            only: None,
            ec2_peer: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            let secs = |v: String| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or(format!("bad seconds: {v}"))
            };
            let count = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
            match a.as_str() {
                "--json" => o.json = true,
                "--duration-s" => o.duration = secs(value(&a)?)?,
                "--warmup-s" => o.warmup = secs(value(&a)?)?,
                "--connections" => o.connections = count(value(&a)?)?.max(1),
                "--server-threads" => o.server_threads = count(value(&a)?)?.max(1),
                "--client-threads" => o.client_threads = count(value(&a)?)?.max(1),
                "--mem-count" => o.mem_count = count(value(&a)?)?,
                "--ec2-peer" => {
                    let v = value(&a)?;
                    o.ec2_peer = Some(
                        v.parse()
                            .map_err(|e| format!("--ec2-peer `{v}`: expected HOST:PORT ({e})"))?,
                    );
                }
                "--only" => {
                    o.only = Some(value(&a)?.split(',').map(str::to_string).collect());
                }
                "-h" | "--help" => {
                    return Err("usage: loadgen [--json] [--duration-s S] [--warmup-s S] \
                         [--connections N] [--server-threads N] [--client-threads N] \
                         [--mem-count N] [--only a,b] [--ec2-peer HOST:PORT]"
                        .into())
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(o)
    }
}

/// One request, sent again and again.
#[derive(Debug, Clone)]
struct Template {
    method: Method,
    /// Path and query.
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl Template {
    fn new(method: Method, uri: impl Into<String>) -> Self {
        Template {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    fn build(&self, host: &str) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.as_str())
            .header(header::HOST, host);
        for (k, v) in &self.headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Full::new(self.body.clone()))
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server
            // closes it; either is fine here.
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        t: &Template,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), BoxError> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(t.build(&self.host)?).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// One-off request on a fresh connection (for seeding and checks).
async fn once(
    addr: SocketAddr,
    t: &Template,
) -> Result<(StatusCode, http::HeaderMap, Bytes), BoxError> {
    Conn::open(addr).await?.send(t).await
}

/// What one scenario measured.
#[derive(Debug, Clone)]
struct Measured {
    requests: u64,
    errors: u64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Drives `t` over `connections` connections: warm-up, then a window of
/// `duration` in which completed requests are counted and timed.
async fn measure(
    addr: SocketAddr,
    t: Template,
    expect: StatusCode,
    o: &Options,
) -> Result<Measured, BoxError> {
    let t = Arc::new(t);
    let start = Instant::now();
    let window_start = start + o.warmup;
    let end = window_start + o.duration;
    let mut tasks = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        let t = Arc::clone(&t);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 14);
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                // A server that closes its connections (moto's does) costs a
                // reconnect, counted in the request's latency.
                let (status, _, _) = match conn.send(&t).await {
                    Ok(r) => r,
                    Err(_) => {
                        conn = Conn::open(addr).await?;
                        conn.send(&t).await?
                    }
                };
                let t1 = Instant::now();
                if t0 >= window_start && t1 <= end {
                    lat.push(u32::try_from((t1 - t0).as_micros()).unwrap_or(u32::MAX));
                    if status != expect {
                        errors += 1;
                    }
                }
            }
            Ok::<_, BoxError>((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, e) = task.await??;
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        u64::from(all[i.min(all.len() - 1)])
    };
    Ok(Measured {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / o.duration.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

// ---------------------------------------------------------------- main

/// A check of one answer's body before a run.
type Check = fn(&[u8]) -> Result<(), String>;

/// A scenario ready to run, or why it cannot.
struct Planned {
    name: &'static str,
    addr: SocketAddr,
    template: Result<Template, String>,
    /// A check of one answer before the run (e.g. 200 instances).
    check: Option<Check>,
}

fn check_200_instances(body: &[u8]) -> Result<(), String> {
    let n = instance_ids(&String::from_utf8_lossy(body)).len();
    if n == 200 {
        Ok(())
    } else {
        Err(format!("tag filter returned {n} instances, expected 200"))
    }
}

async fn run(o: Options, mock_addr: SocketAddr, bare_addr: SocketAddr) -> Value {
    let started = Instant::now();
    // Fill the mock's bounded request journal first, so its growth does not
    // count as resource memory.
    let fill = bulk(
        mock_addr,
        4000,
        |_| true,
        Arc::new(|_| gce_get("loadgen-warm", "absent")),
    )
    .await;
    let memory = match fill {
        Ok(()) => memory(mock_addr, o.mem_count).await,
        Err(e) => json!({"error": e.to_string()}),
    };

    let ec2_seed = seed_ec2(mock_addr).await.map_err(|e| e.to_string());
    let arm_seed = seed_arm(mock_addr).await.map_err(|e| e.to_string());
    let gce_seed = match once(mock_addr, &gce_insert("loadgen", "vm-1")).await {
        Ok((s, _, _)) if s == StatusCode::OK => Ok(()),
        Ok((s, _, b)) => Err(format!("insert: {s} {}", String::from_utf8_lossy(&b))),
        Err(e) => Err(e.to_string()),
    };

    let peer_seed = match o.ec2_peer {
        Some(peer) => Some(seed_ec2(peer).await.map_err(|e| e.to_string())),
        None => None,
    };
    let mut planned = vec![
        Planned {
            name: "ceiling_bare_axum",
            addr: bare_addr,
            template: Ok(Template::new(Method::GET, "/")),
            check: None,
        },
        Planned {
            name: "ec2_describe_instances_by_id",
            addr: mock_addr,
            template: ec2_seed.clone().map(|id| {
                ec2(
                    EC2_AUTH_LOAD,
                    &format!("Action=DescribeInstances&InstanceId.1={id}"),
                )
            }),
            check: None,
        },
        Planned {
            name: "ec2_describe_instances_tag_200_of_1000",
            addr: mock_addr,
            template: ec2_seed.clone().map(|_| describe_tag()),
            check: Some(check_200_instances),
        },
        Planned {
            name: "arm_get_vm",
            addr: mock_addr,
            template: arm_seed.clone().map(|(vm, _)| arm(Method::GET, &vm, None)),
            check: None,
        },
        Planned {
            name: "arm_operation_status_poll",
            addr: mock_addr,
            template: arm_seed.clone().map(|(_, op)| {
                Template::new(Method::GET, op).header("authorization", "Bearer loadgen")
            }),
            check: None,
        },
        Planned {
            name: "gce_instances_get",
            addr: mock_addr,
            template: gce_seed.map(|()| gce_get("loadgen", "vm-1")),
            check: None,
        },
    ];
    if let (Some(peer), Some(seed)) = (o.ec2_peer, peer_seed) {
        planned.push(Planned {
            name: "peer_ec2_describe_instances_by_id",
            addr: peer,
            template: seed.clone().map(|id| {
                ec2(
                    EC2_AUTH_LOAD,
                    &format!("Action=DescribeInstances&InstanceId.1={id}"),
                )
            }),
            check: None,
        });
        planned.push(Planned {
            name: "peer_ec2_describe_instances_tag_200_of_1000",
            addr: peer,
            template: seed.map(|_| describe_tag()),
            check: Some(check_200_instances),
        });
    }

    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut ceiling = None;
    for p in planned {
        if o.only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == p.name) && p.name != "ceiling_bare_axum")
        {
            continue;
        }
        let t = match p.template {
            Ok(t) => t,
            Err(e) => {
                skipped.push(json!({"name": p.name, "reason": e}));
                continue;
            }
        };
        match once(p.addr, &t).await {
            Ok((s, _, body)) if s == StatusCode::OK => {
                if let Some(check) = p.check {
                    if let Err(e) = check(&body) {
                        skipped.push(json!({"name": p.name, "reason": e}));
                        continue;
                    }
                }
            }
            Ok((s, _, body)) => {
                skipped.push(json!({"name": p.name, "reason": format!("answered {s}: {}", String::from_utf8_lossy(&body).chars().take(300).collect::<String>())}));
                continue;
            }
            Err(e) => {
                skipped.push(json!({"name": p.name, "reason": e.to_string()}));
                continue;
            }
        }
        match measure(p.addr, t, StatusCode::OK, &o).await {
            Ok(m) => {
                if p.name == "ceiling_bare_axum" {
                    ceiling = Some(m.rps);
                }
                let share = ceiling
                    .filter(|c| *c > 0.0)
                    .map(|c| (m.rps / c * 1000.0).round() / 1000.0);
                results.push(json!({
                    "name": p.name,
                    "requests": m.requests,
                    "errors": m.errors,
                    "rps": m.rps.round(),
                    "p50_us": m.p50_us,
                    "p99_us": m.p99_us,
                    "share_of_ceiling": share,
                }));
            }
            Err(e) => skipped.push(json!({"name": p.name, "reason": e.to_string()})),
        }
    }

    let by_name: BTreeMap<&str, &Value> = results
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?, r)))
        .collect();
    let share_ok = |n: &str| {
        by_name
            .get(n)
            .and_then(|r| r["share_of_ceiling"].as_f64())
            .map(|s| s >= 0.30)
    };
    let targets = json!({
        "single_resource_share_min": 0.30,
        "tag_filter_rps_min": 500,
        "ec2_describe_instances_by_id": share_ok("ec2_describe_instances_by_id"),
        "arm_get_vm": share_ok("arm_get_vm"),
        "arm_operation_status_poll": share_ok("arm_operation_status_poll"),
        "gce_instances_get": share_ok("gce_instances_get"),
        "ec2_describe_instances_tag_200_of_1000": by_name
            .get("ec2_describe_instances_tag_200_of_1000")
            .and_then(|r| r["rps"].as_f64())
            .map(|r| r >= 500.0),
    });
    let ratio = |ours: &str, peer: &str| {
        let rps = |n: &str| by_name.get(n).and_then(|r| r["rps"].as_f64());
        match (rps(ours), rps(peer)) {
            (Some(a), Some(b)) if b > 0.0 => json!((a / b * 10.0).round() / 10.0),
            _ => Value::Null,
        }
    };
    let peer = o.ec2_peer.map(|addr| {
        json!({
            "address": addr.to_string(),
            "mock_over_peer_by_id": ratio("ec2_describe_instances_by_id", "peer_ec2_describe_instances_by_id"),
            "mock_over_peer_tag_200_of_1000": ratio(
                "ec2_describe_instances_tag_200_of_1000",
                "peer_ec2_describe_instances_tag_200_of_1000"
            ),
        })
    });
    json!({
        "ec2_peer": peer,
        "setup": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "connections": o.connections,
            "warmup_s": o.warmup.as_secs_f64(),
            "duration_s": o.duration.as_secs_f64(),
            "server_threads": o.server_threads,
            "client_threads": o.client_threads,
            "client": "hyper 1 http1, keep-alive, one request in flight per connection",
        },
        "scenarios": results,
        "skipped": skipped,
        "targets_met": targets,
        "memory": memory,
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

fn main() -> Result<(), BoxError> {
    let o = Options::parse().map_err(|e| -> BoxError { e.into() })?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.server_threads)
        .thread_name("mock-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()?;

    // Short lifecycles so seeding is quick; high EC2, ARM and Compute
    // Engine limits for the memory phase (it puts every ARM resource in one
    // group); throttling stays off (the default).
    let config = MockConfig::from_json(
        r#"{"time_scale": 0.001,
                "aws": {"instance_limit": 1000000, "volume_limit": 1000000, "launch_template_limit": 1000000},
                "azure": {"limits": {"resources_per_type_per_group": 1000000, "vms_per_region": 1000000}},
                "gcp": {"instance_limit": 1000000}}"#,
    )?;
    let (mock, bare_addr) = server_rt.block_on(async {
        let mock = MockCloud::builder().config(config).start().await?;
        let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let bare_addr = bare.local_addr()?;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"ok":true}"#,
                )
            }),
        );
        tokio::spawn(async move {
            // Serves until the process ends.
            let _ = axum::serve(bare, app).await;
        });
        Ok::<_, BoxError>((mock, bare_addr))
    })?;

    let report = client_rt.block_on(run(o.clone(), mock.addr(), bare_addr));
    if o.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    drop(mock);
    client_rt.shutdown_timeout(Duration::from_secs(1));
    server_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
