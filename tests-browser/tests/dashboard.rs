//! The mock's dashboard (`/_mock/ui`) in a real headless Chromium: it loads
//! without console errors and shows every cloud without credentials, shows
//! a VM created through the EC2 API within a second, adds and removes fault
//! rules through its form (checked before sending; the mock's own refusal
//! shown; the rule applied to the next call), works with a control token
//! entered once per tab, and renders a full 2,000-entry journal quickly.
//!
//! Needs the `chromium` feature (on in the README's test command, `cargo
//! test --workspace --all-features`) and Debian's chromium +
//! chromium-driver; otherwise each test prints "browser test skipped: ..."
//! and passes.

#[cfg(not(feature = "chromium"))]
#[test]
fn dashboard_in_chromium() {
    skyfleet_tests_browser::skipped("built without the `chromium` feature (it is on by default)");
}

#[cfg(feature = "chromium")]
mod in_chromium {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use skyfleet_mock::MockCloud;
    use skyfleet_tests_browser::clouds::{self, http};
    use skyfleet_tests_browser::driver::Browser;

    const AKID: &str = "AKIDDASHBOARDTEST1";
    const GCP_TOKEN: &str = "gcp-bearer-never-shown-4f1c";
    const AZURE_TOKEN: &str = "azure-bearer-never-shown-9b2e";
    const CONTROL_TOKEN: &str = "dashboard-control-token-0123456789";

    async fn mock(time_scale: f64) -> MockCloud {
        MockCloud::builder()
            .time_scale(time_scale)
            .start()
            .await
            .expect("the mock starts")
    }

    async fn get_json(url: String, token: Option<&str>) -> Value {
        let mut req = http().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("control call");
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.expect("JSON")
    }

    /// A JS expression: the state shown for resource `id` in `cloud`'s
    /// block, or null when it is not shown.
    fn resource_state(cloud: &str, id: &str) -> String {
        format!(
            "(() => {{ const r = document.querySelector('#resources [data-cloud=\"{cloud}\"] tr[data-id=\"{id}\"]'); \
             return r ? r.dataset.state : null; }})()"
        )
    }

    /// A script answering the state shown for a resource, or null.
    fn resource_row(cloud: &str, id: &str) -> String {
        format!("return {};", resource_state(cloud, id))
    }

    fn screenshot_path() -> PathBuf {
        std::env::var_os("SKYFLEET_DASHBOARD_SCREENSHOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"))
    }

    #[tokio::test]
    async fn page_loads_clean_and_shows_every_cloud_without_credentials() {
        let Some(browser) = Browser::launch().await else {
            return;
        };
        let mock = mock(0.001).await;
        let http = http();
        let base = mock.url();
        let vm = clouds::ec2_run_instance(&http, base, AKID, "ci-worker-1")
            .await
            .unwrap();
        clouds::ec2_run_instance(&http, base, AKID, "ci-worker-2")
            .await
            .unwrap();
        clouds::ec2(&http, base, AKID, "Action=NoSuchAction")
            .await
            .unwrap();
        clouds::gce_insert(&http, base, "dash-project", "gce-worker-1", GCP_TOKEN)
            .await
            .unwrap();
        let sub = "3f2b8c1e-0000-4000-8000-00000000da5b";
        clouds::azure_public_ip(&http, base, sub, "pip-worker-1", AZURE_TOKEN)
            .await
            .unwrap();
        let rules = r#"[{"cloud":"aws","operation":"RunInstances","count":2,
            "effect":{"kind":"throttle","retry_after_s":1}},
            {"cloud":"azure","operation":"VirtualMachines_CreateOrUpdate","probability":0.1,
            "effect":{"kind":"fail_operation","code":"AllocationFailed","message":"no capacity"}}]"#;
        let r = http
            .put(format!("{base}/_mock/faults"))
            .body(rules)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        browser.open_dashboard(&mock.dashboard_url()).await;
        let second = Duration::from_secs(1);
        let state = browser
            .wait_js("the EC2 VM", second, &resource_row("aws", &vm))
            .await;
        assert_eq!(state, "running");
        let gce_id = get_json(format!("{base}/_mock/resources?cloud=gcp"), None).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        browser
            .wait_js("the GCE VM", second, &resource_row("gcp", &gce_id))
            .await;
        let pip = format!(
            "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip-worker-1"
        );
        browser
            .wait_js("the public IP", second, &resource_row("azure", &pip))
            .await;
        let faults = browser
            .js("return document.querySelectorAll('#fault-rows tr').length")
            .await;
        assert_eq!(faults, 2);
        let journal = browser
            .js("return document.querySelectorAll('#journal-rows .jrow').length")
            .await;
        assert!(journal.as_u64().unwrap() >= 6, "{journal}");
        let time_scale = browser
            .js("return document.getElementById('config-time-scale').textContent")
            .await;
        assert!(
            time_scale.as_str().unwrap().starts_with("0.001"),
            "{time_scale}"
        );

        // Nothing of the partitions' credentials reaches the page.
        let html = browser
            .js("return document.documentElement.outerHTML")
            .await;
        let html = html.as_str().unwrap();
        for secret in [AKID, GCP_TOKEN, AZURE_TOKEN] {
            assert!(!html.contains(secret), "the page shows {secret}");
        }

        assert_eq!(browser.page_errors().await, Vec::<String>::new());
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
        let path = screenshot_path();
        browser.screenshot(&path).await;
        println!("dashboard screenshot: {}", path.display());
        browser.close().await;
    }

    #[tokio::test]
    async fn vm_created_through_the_ec2_api_appears_within_one_second() {
        let Some(browser) = Browser::launch().await else {
            return;
        };
        // A launch takes 5 s of simulated time: 1 s here, so the page shows
        // `pending` first and must notice `running` by itself.
        let mock = mock(0.2).await;
        browser.open_dashboard(&mock.dashboard_url()).await;
        let http = http();
        let vm = clouds::ec2_run_instance(&http, mock.url(), AKID, "ci-live")
            .await
            .unwrap();
        let answered = Instant::now();
        let first = browser
            .wait_js(
                "the new VM's row",
                Duration::from_secs(1),
                &resource_row("aws", &vm),
            )
            .await;
        let shown = answered.elapsed();
        println!(
            "VM shown {} ms after RunInstances answered",
            shown.as_millis()
        );
        assert!(shown < Duration::from_secs(1), "{shown:?}");
        assert_eq!(first, "pending");
        browser
            .wait_js(
                "the VM to show running",
                Duration::from_secs(4),
                &format!("return {} === 'running';", resource_state("aws", &vm)),
            )
            .await;
        assert_eq!(browser.page_errors().await, Vec::<String>::new());
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
        browser.close().await;
    }

    #[tokio::test]
    async fn fault_rule_added_through_the_form_is_listed_and_applied_to_the_next_call() {
        let Some(browser) = Browser::launch().await else {
            return;
        };
        let mock = mock(0.001).await;
        let base = mock.url();
        let http = http();
        browser.open_dashboard(&mock.dashboard_url()).await;

        browser.select("#fault-form [name=cloud]", "aws").await;
        browser
            .type_into("#fault-form [name=operation]", "RunInstances")
            .await;
        browser.select("#fault-form [name=fires]", "count").await;
        browser.type_into("#fault-form [name=count]", "1").await;
        browser.select("#fault-form [name=kind]", "error").await;
        browser
            .type_into("#fault-form [name=code]", "InternalError")
            .await;
        browser
            .type_into("#fault-form [name=message]", "injected from the dashboard")
            .await;
        // A status outside 400..=599 is refused by the page, and nothing is sent.
        browser.type_into("#fault-form [name=status]", "700").await;
        browser.click("#fault-add").await;
        let error = browser
            .wait_js(
                "the page's refusal",
                Duration::from_secs(1),
                "return document.getElementById('fault-error').textContent",
            )
            .await;
        assert!(
            error
                .as_str()
                .unwrap()
                .contains("status: must be within 400 to 599"),
            "{error}"
        );
        let marked = browser
            .js("return document.querySelector('#fault-form [name=status]').getAttribute('aria-invalid')")
            .await;
        assert_eq!(marked, "true");
        assert_eq!(
            get_json(format!("{base}/_mock/faults"), None).await,
            serde_json::json!([])
        );

        browser.type_into("#fault-form [name=status]", "500").await;
        browser.click("#fault-add").await;
        browser
            .wait_js(
                "the rule in the list",
                Duration::from_secs(2),
                "return document.querySelector('#fault-rows tr[data-operation=\"RunInstances\"]')",
            )
            .await;
        let rules = get_json(format!("{base}/_mock/faults"), None).await;
        assert_eq!(rules[0]["count"], 1, "{rules}");
        assert_eq!(rules[0]["effect"]["status"], 500, "{rules}");

        // The mock applies it to the next call, once.
        let (status, body) = clouds::ec2(
            &http,
            base,
            AKID,
            "Action=RunInstances&ImageId=ami-12345678&MinCount=1&MaxCount=1",
        )
        .await
        .unwrap();
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("InternalError") && body.contains("injected from the dashboard"));
        clouds::ec2_run_instance(&http, base, AKID, "after")
            .await
            .unwrap();
        browser
            .wait_js(
                "the rule to show it is used up",
                Duration::from_secs(2),
                "const r = document.querySelector('#fault-rows tr'); \
                 return r && r.textContent.includes('used up');",
            )
            .await;

        // A rule pasted as JSON goes to the mock, whose refusal is shown.
        browser.click("#fault-json-box summary").await;
        browser
            .type_into(
                "#fault-form [name=json]",
                r#"{"cloud":"aws","operation":"RunInstances","countt":1,"effect":{"kind":"hang"}}"#,
            )
            .await;
        browser.click("#fault-add").await;
        let refusal = browser
            .wait_js(
                "the mock's refusal",
                Duration::from_secs(2),
                "const e = document.getElementById('fault-error'); \
                 return e.dataset.source === 'mock' ? e.textContent : null;",
            )
            .await;
        assert!(
            refusal.as_str().unwrap().contains("unknown field `countt`"),
            "{refusal}"
        );
        assert_eq!(
            get_json(format!("{base}/_mock/faults"), None)
                .await
                .as_array()
                .unwrap()
                .len(),
            1
        );

        browser.click("#fault-rows button[data-remove=\"0\"]").await;
        browser
            .wait_js(
                "the list to empty",
                Duration::from_secs(2),
                "return document.querySelectorAll('#fault-rows tr').length === 0",
            )
            .await;
        assert_eq!(
            get_json(format!("{base}/_mock/faults"), None).await,
            serde_json::json!([])
        );

        assert_eq!(browser.page_errors().await, Vec::<String>::new());
        // The refused PUT is the one failed request the console may list.
        for e in browser.console_errors().await {
            assert!(e.contains("/_mock/faults") && e.contains("400"), "{e}");
        }
        browser.close().await;
    }

    #[tokio::test]
    async fn control_token_is_asked_once_per_tab_and_never_shown() {
        let Some(browser) = Browser::launch().await else {
            return;
        };
        let mock = MockCloud::builder()
            .time_scale(0.001)
            .control_token(CONTROL_TOKEN)
            .start()
            .await
            .unwrap();
        let vm = clouds::ec2_run_instance(&http(), mock.url(), AKID, "tokened")
            .await
            .unwrap();
        browser.client().goto(&mock.dashboard_url()).await.unwrap();
        let dialog_open = "return document.getElementById('token-dialog').open";
        browser
            .wait_js("the token dialog", Duration::from_secs(5), dialog_open)
            .await;

        browser
            .type_into("#token-input", "not-the-right-token-at-all")
            .await;
        browser.click("#token-submit").await;
        let error = browser
            .wait_js(
                "the refusal",
                Duration::from_secs(2),
                "return document.getElementById('token-error').textContent",
            )
            .await;
        assert_eq!(error, "The mock refused this token.");
        assert_eq!(browser.js(dialog_open).await, true);

        browser.type_into("#token-input", CONTROL_TOKEN).await;
        browser.click("#token-submit").await;
        browser
            .wait_js(
                "the page to load with the token",
                Duration::from_secs(5),
                "return document.body.dataset.ready === 'true'",
            )
            .await;
        assert_eq!(browser.js(dialog_open).await, false);
        browser
            .wait_js("the VM", Duration::from_secs(2), &resource_row("aws", &vm))
            .await;

        // Kept for the tab: a reload does not ask again.
        browser.client().refresh().await.unwrap();
        browser
            .wait_js(
                "the reloaded page",
                Duration::from_secs(5),
                "return document.body.dataset.ready === 'true'",
            )
            .await;
        assert_eq!(browser.js(dialog_open).await, false);
        let html = browser
            .js("return document.documentElement.outerHTML")
            .await;
        assert!(!html.as_str().unwrap().contains(CONTROL_TOKEN));
        assert_eq!(browser.page_errors().await, Vec::<String>::new());

        // Another tab has its own session: it asks.
        let tab = browser.client().new_window(true).await.unwrap();
        browser.client().switch_to_window(tab.handle).await.unwrap();
        browser.client().goto(&mock.dashboard_url()).await.unwrap();
        browser
            .wait_js(
                "the dialog in a new tab",
                Duration::from_secs(5),
                dialog_open,
            )
            .await;
        // The only console errors are the refused calls.
        for e in browser.console_errors().await {
            assert!(e.contains("401"), "{e}");
        }
        browser.close().await;
    }

    #[tokio::test]
    async fn config_form_sets_the_time_scale_and_checks_it_first() {
        let Some(browser) = Browser::launch().await else {
            return;
        };
        let mock = mock(1.0).await;
        browser.open_dashboard(&mock.dashboard_url()).await;
        browser.type_into("#time-scale", "fast").await;
        browser.click("#time-form button").await;
        let error = browser
            .wait_js(
                "the refusal",
                Duration::from_secs(1),
                "return document.getElementById('time-error').textContent",
            )
            .await;
        assert!(
            error.as_str().unwrap().contains("must be a number >= 0"),
            "{error}"
        );
        assert_eq!(mock.config().time_scale, Some(1.0));
        browser.type_into("#time-scale", "0.25").await;
        browser.click("#time-form button").await;
        browser
            .wait_js(
                "the new time scale",
                Duration::from_secs(2),
                "return document.getElementById('config-time-scale').textContent.startsWith('0.25')",
            )
            .await;
        assert_eq!(mock.config().time_scale, Some(0.25));
        browser.click("[data-throttle-toggle=\"aws\"]").await;
        browser
            .wait_js(
                "AWS throttling on",
                Duration::from_secs(2),
                "const b = document.querySelector('[data-throttle-toggle=\"aws\"]'); \
                 return b && b.textContent === 'turn off';",
            )
            .await;
        assert_eq!(mock.config().aws.map(|a| a.throttle.enabled), Some(true));
        assert_eq!(browser.page_errors().await, Vec::<String>::new());
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
        browser.close().await;
    }

    #[tokio::test]
    async fn journal_of_2000_entries_renders_without_freezing() {
        const RENDER_LIMIT_MS: f64 = 300.0;
        const LONGEST_TASK_LIMIT_MS: f64 = 500.0;
        let Some(browser) = Browser::launch().await else {
            return;
        };
        let mock = mock(0.001).await;
        clouds::mixed_traffic(mock.url(), AKID, 2000).await.unwrap();

        // A full journal on load.
        let started = Instant::now();
        browser.open_dashboard(&mock.dashboard_url()).await;
        let loaded = started.elapsed();
        let full = browser
            .wait_js(
                "2000 rows",
                Duration::from_secs(5),
                "const t = document.getElementById('journal-list'); \
                 return t.dataset.rows === '2000' ? Number(t.dataset.renderMs) : null;",
            )
            .await;
        let render_ms = full.as_f64().unwrap();
        let rows = browser
            .js("return document.querySelectorAll('#journal-rows .jrow').length")
            .await;
        assert_eq!(rows, 2000);
        // From here on the page records its main thread's long tasks.
        browser
            .js(
                "window.__longTasks = []; new PerformanceObserver((list) => \
                 list.getEntries().forEach((e) => window.__longTasks.push(e.duration))) \
                 .observe({ type: 'longtask' }); return true;",
            )
            .await;
        // A filter change re-renders from the 2,000 kept entries.
        browser
            .select("#journal-filters [name=status]", "4xx")
            .await;
        let filtered = browser
            .wait_js(
                "the 4xx filter",
                Duration::from_secs(2),
                "const t = document.getElementById('journal-list'); \
                 return t.dataset.rows === '1000' ? Number(t.dataset.renderMs) : null;",
            )
            .await
            .as_f64()
            .unwrap();
        browser.select("#journal-filters [name=status]", "").await;
        browser
            .wait_js(
                "all rows again",
                Duration::from_secs(5),
                "const t = document.getElementById('journal-list'); \
                 return t.dataset.rows === '2000';",
            )
            .await;

        // 2,000 more arriving live.
        let burst = Instant::now();
        clouds::mixed_traffic(mock.url(), AKID, 2000).await.unwrap();
        let sent = burst.elapsed();
        browser
            .wait_js(
                "the live entries",
                Duration::from_secs(20),
                "const r = document.querySelector('#journal-rows .jrow'); \
                 return r && r.dataset.seq === '4000';",
            )
            .await;
        let caught_up = burst.elapsed();
        let rows = browser
            .js("return document.querySelectorAll('#journal-rows .jrow').length")
            .await;
        assert_eq!(rows, 2000, "the table keeps the journal's window");
        let longest: f64 = browser
            .js("return Math.max(0, ...window.__longTasks)")
            .await
            .as_f64()
            .unwrap();
        println!(
            "journal: 2000 rows rendered in {render_ms:.1} ms (page loaded and caught up in {} ms); \
             4xx filter re-render {filtered:.1} ms; 2000 live entries sent in {} ms, shown after {} ms, \
             longest main-thread task {longest:.0} ms",
            loaded.as_millis(),
            sent.as_millis(),
            caught_up.as_millis()
        );
        assert!(render_ms < RENDER_LIMIT_MS, "{render_ms} ms");
        assert!(filtered < RENDER_LIMIT_MS, "{filtered} ms");
        assert!(longest < LONGEST_TASK_LIMIT_MS, "{longest} ms");
        assert_eq!(browser.page_errors().await, Vec::<String>::new());
        // The mock's 404s are cloud traffic, not the page's: its console is clean.
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
        browser.close().await;
    }
}
