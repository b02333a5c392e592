//! The providers' response parsers: the Azure chain (ARM resources, LRO
//! status answers, error bodies, list pages) and the Compute Engine
//! provider (operations, instances, lists, Google error bodies) fed
//! scripted answers of arbitrary status, headers and body.
//!
//! Input (see fuzz/README.md):
//!
//! ```text
//! azure|gcp [remove] [many] [list] [mock]
//! <provider state JSON on one line, or nothing>
//! --
//! <status>
//! <Header: value lines>
//!
//! <body>
//! --
//! ...more answers, used in order
//! ```
//!
//! The provider steps a worker (from the given state) until the answers run
//! out, as the fleet would: every step must end with `Ok` or an error with
//! a message, never a panic or a hang, and a state a step returns must read
//! back. Every answer is also handed to the parsers directly (ARM error
//! bodies and LRO starts, Google errors, zone operations, instances,
//! Retry-After).
//!
//! With `mock`, the provider talks to a fresh in-process mock cloud instead
//! of the scripted answers (which are then only parsed directly): that
//! steps Compute Engine states read from arbitrary JSON against a server
//! that answers like the real one (`azure_chain_state` does the same for
//! Azure); unless `remove` is given, the worker is then removed. Run with `SKYFLEET_FUZZ_RECORD=FILE`, it records the mock's
//! answers and the states written, to make seeds.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use skyfleet_azure::testing::ArmAnswer as _;
use skyfleet_core::{FinalState, OwnershipScope, PollPolicy, Provider};
use skyfleet_fuzz::{
    azure_launch, azure_network, azure_provider, drive, gcp_launch, gcp_provider, mock_router,
    parse_answer, runtime, split_parts, worker, Backend, ManualClock, RawAnswer,
};

fn parse_directly(a: &RawAnswer, azure: &skyfleet_azure::AzureProvider) {
    let ra = skyfleet_core::transport::retry_after(&a.headers);
    if let Some(v) = a.headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        let _ = skyfleet_core::transport::parse_retry_after(v);
    }
    // Azure.
    let _ = skyfleet_azure::testing::parse_error_body(&a.body);
    let e = skyfleet_azure::testing::from_response(a.status, &a.body, ra, "fuzz");
    assert!(!e.message().is_empty());
    let resp = skyfleet_azure::testing::ArmResponse {
        status: a.status,
        headers: a.headers.clone(),
        body: a.body.clone(),
    };
    let _ = resp.json::<serde_json::Value>("fuzz");
    let _ = resp.error_code();
    let client = skyfleet_azure::testing::client(azure);
    let url = client.resource_url("rg", skyfleet_azure::testing::ResourceType::Nic, "n");
    let now = time::OffsetDateTime::UNIX_EPOCH;
    for (method, fs) in [
        (http::Method::PUT, FinalState::OriginalUri),
        (http::Method::PUT, FinalState::Location),
        (http::Method::DELETE, FinalState::None),
    ] {
        let _ = skyfleet_azure::testing::ArmOperation::start(
            client,
            &resp,
            &method,
            &url,
            fs,
            now,
            &PollPolicy::default(),
            "fuzz",
        );
    }
    // Compute Engine.
    let e = skyfleet_gcp::testing::api_error("fuzz", a.status, &a.body, ra);
    assert!(!e.message().is_empty());
    if let Ok(op) = serde_json::from_slice::<skyfleet_gcp::testing::ZoneOperation>(&a.body) {
        let _ = (op.is_done(), op.failure());
    }
    let _ = serde_json::from_slice::<skyfleet_gcp::testing::Instance>(&a.body);
}

fuzz_target!(|data: &[u8]| {
    let parts = split_parts(data);
    let Some((head, answers)) = parts.split_first() else {
        return;
    };
    let mut lines = head.splitn(2, |&b| b == b'\n');
    let words = String::from_utf8_lossy(lines.next().unwrap_or_default()).to_string();
    let state_line = lines.next().unwrap_or_default();
    let state = if state_line.trim_ascii().is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(state_line) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    let mut words = words.split_ascii_whitespace();
    let kind = words.next().unwrap_or("");
    let (mut remove, mut many, mut list, mut mock) = (false, false, false, false);
    for w in words {
        match w {
            "mock" => mock = true,
            "remove" => remove = true,
            "many" => many = true,
            "list" => list = true,
            _ => {}
        }
    }
    let answers: Vec<RawAnswer> = answers.iter().take(16).map(|a| parse_answer(a)).collect();
    let script = Arc::new(Mutex::new(answers.iter().cloned().collect()));
    let clock = ManualClock::new();
    runtime().block_on(async {
        let backend = if mock {
            let router = mock_router();
            azure_network(&router).await;
            Backend::Mock(router)
        } else {
            Backend::Script(script)
        };
        let azure = azure_provider(backend.clone(), clock.clone());
        for a in &answers {
            parse_directly(a, &azure);
        }
        let steps = if mock { 8 } else { answers.len() + 2 };
        let scope = OwnershipScope {
            manager_id: "m".into(),
            provider_id: kind.into(),
        };
        match kind {
            "azure" => {
                if list {
                    if let Ok(found) = azure.list_owned(&scope).await {
                        for r in found {
                            let _ = azure.delete_owned(&r).await;
                        }
                    }
                    return;
                }
                let mut w = worker("azure", azure_launch(), state, remove, clock_now(&clock));
                let check = |w: &skyfleet_core::Worker| {
                    skyfleet_azure::testing::ChainState::from_worker(w).unwrap_or_else(|e| {
                        panic!("a state the chain wrote does not read back: {e}")
                    });
                };
                drive(&azure, &mut w, &clock, steps, check).await;
                if mock && !remove {
                    w.desired = skyfleet_core::DesiredState::Removed;
                    drive(&azure, &mut w, &clock, steps, check).await;
                }
            }
            "gcp" => {
                let gcp = gcp_provider(backend.clone(), clock.clone());
                if list {
                    if let Ok(found) = gcp.list_owned(&scope).await {
                        for r in found {
                            let _ = gcp.delete_owned(&r).await;
                        }
                    }
                    return;
                }
                let mut w = worker("gcp", gcp_launch(), state, remove, clock_now(&clock));
                if many {
                    for r in gcp.step_many(std::slice::from_ref(&w)).await {
                        match r {
                            Ok(step) => {
                                skyfleet_core::provider::apply_step(
                                    &mut w,
                                    &step,
                                    clock_now(&clock),
                                );
                                skyfleet_gcp::GceState::of(&w).unwrap_or_else(|e| {
                                    panic!("a state the provider wrote does not read back: {e}")
                                });
                            }
                            Err(e) => assert!(!e.message().is_empty()),
                        }
                    }
                }
                let check = |w: &skyfleet_core::Worker| {
                    skyfleet_gcp::GceState::of(w).unwrap_or_else(|e| {
                        panic!("a state the provider wrote does not read back: {e}")
                    });
                };
                drive(&gcp, &mut w, &clock, steps, check).await;
                if mock && !remove {
                    w.desired = skyfleet_core::DesiredState::Removed;
                    drive(&gcp, &mut w, &clock, steps, check).await;
                }
            }
            _ => {}
        }
    });
});

fn clock_now(clock: &ManualClock) -> time::OffsetDateTime {
    skyfleet_core::clock::Clock::now(clock)
}
