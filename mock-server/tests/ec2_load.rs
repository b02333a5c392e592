//! A short load run on loopback: DescribeInstances by id and filtered by tag
//! (200 of 1,000 instances). Prints requests per second; asserts only a
//! sanity floor, since test builds are unoptimised and machines are shared.
//! The figure (500+/s for the tag filter) is for release builds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyfleet_mock::MockCloud;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDLOAD/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

async fn post(http: &reqwest::Client, url: &str, form: String) -> String {
    let r = http
        .post(url)
        .header("authorization", AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Runs `form` from `workers` loops for `for_how_long`; answers requests/s.
async fn rate(url: &str, form: &str, workers: usize, for_how_long: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (url, form, done) = (url.to_string(), form.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while started.elapsed() < for_how_long {
                post(&http, &url, form.clone()).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_instances_throughput() {
    let mock = MockCloud::builder().time_scale(0.0).start().await.unwrap();
    let url = format!("{}/", mock.url());
    let http = reqwest::Client::new();
    for batch in 0..5 {
        let tagged = if batch == 0 { "fleet" } else { "other" };
        let body = post(
            &http,
            &url,
            format!(
                "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=200&MaxCount=200\
                 &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=pool\
                 &TagSpecification.1.Tag.1.Value={tagged}"
            ),
        )
        .await;
        assert!(body.contains("<instanceId>i-"));
    }
    let listing = post(
        &http,
        &url,
        "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag:pool&Filter.1.Value.1=fleet"
            .into(),
    )
    .await;
    assert_eq!(listing.matches("<instanceId>").count(), 200);
    let one = listing
        .split("<instanceId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();

    let by_tag = rate(
        &url,
        "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag:pool&Filter.1.Value.1=fleet",
        4,
        Duration::from_millis(1500),
    )
    .await;
    // Server-side time per tag-filtered describe, from the journal.
    let journal: serde_json::Value = http
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ms: Vec<f64> = journal
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "DescribeInstances")
        .map(|e| e["ms"].as_f64().unwrap())
        .collect();
    let server_ms = ms.iter().sum::<f64>() / ms.len() as f64;
    let by_id = rate(
        &url,
        &format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={one}"),
        4,
        Duration::from_millis(1000),
    )
    .await;
    println!(
        "DescribeInstances by tag (200 of 1000): {by_tag:.0} req/s ({server_ms:.2} ms in the server each); by id: {by_id:.0} req/s"
    );
    assert!(by_tag > 5.0, "{by_tag}");
    assert!(by_id > 20.0, "{by_id}");
}
