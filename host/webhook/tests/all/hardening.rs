//! The server under the attacks that once got through (issue 13): HTTP/2 connections that go
//! quiet, streams that announce a body and send none, requests whose deadline passes, reloads
//! that change limits and client authentication, and rejections without a JSON body.

use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::{ServeOptions, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::hostile;

/// Serves `config` (its `HOSTILE` replaced by the hostile guest) over plain HTTP on a free
/// port; returns the port and a sender that stops it.
async fn serve(dir: &Path, config: &str) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let text = config.replace("HOSTILE", &hostile().display().to_string());
    std::fs::write(
        dir.join("palisade.yaml"),
        format!("listen: 127.0.0.1:0\n{text}"),
    )
    .expect("write");
    let options = ServeOptions {
        config: dir.join("palisade.yaml"),
        insecure_http: true,
        strict_ready: false,
        watch_interval: Duration::from_millis(100),
        flags: Default::default(),
    };
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let server = Server::bind(options, engine).await.expect("binds");
    let port = server.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    (port, stop)
}

fn review(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}
        }
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Reads until the server closes the connection; how long that took, at most `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .ok()
        .map(|()| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_that_go_quiet_are_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {idleTimeout: 1s, requestTimeout: 900ms}\npolicies: [{id: pod, module: HOSTILE, timeout: 500ms}]\n",
    )
    .await;
    // Ten bytes of the HTTP/2 preface, then nothing.
    let mut partial = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    partial
        .write_all(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..10])
        .await
        .expect("write");
    // The whole preface and empty SETTINGS, then nothing: an idle HTTP/2 connection.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    for (what, stream) in [
        ("a cut preface", &mut partial),
        ("an idle connection", &mut idle),
    ] {
        let closed = closed_within(stream, Duration::from_secs(5)).await;
        assert!(
            closed.is_some_and(|t| t < Duration::from_secs(3)),
            "{what} was still open after 5 s: {closed:?}"
        );
    }
}

/// A request body that never sends a byte.
type NeverBody =
    StreamBody<futures_util::stream::Pending<Result<Frame<Bytes>, std::convert::Infallible>>>;

/// An HTTP/2 stream (prior knowledge, plain text) that announces a body and never sends it.
async fn bodiless_stream(
    sender: &mut hyper::client::conn::http2::SendRequest<NeverBody>,
    port: u16,
) -> tokio::task::JoinHandle<Option<(u16, Value)>> {
    let request = hyper::Request::post(format!("http://127.0.0.1:{port}/validate/pod"))
        .header("content-type", "application/json")
        .header("content-length", "4000")
        .body(StreamBody::new(futures_util::stream::pending()))
        .expect("request");
    let response = sender.send_request(request);
    tokio::spawn(async move {
        let response = response.await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_without_their_body_hold_no_evaluation_slot() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {maxConcurrency: 2, requestTimeout: 3s}\npolicies: [{id: pod, module: HOSTILE}]\n",
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut stalled = Vec::new();
    for _ in 0..6 {
        stalled.push(bodiless_stream(&mut sender, port).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let answer = http()
        .post(format!("http://127.0.0.1:{port}/validate/pod"))
        .json(&review("legit"))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a review waited {:?} behind streams that never sent their body",
        started.elapsed()
    );
    // The stalled streams end at the deadline, with a JSON error naming it.
    let (status, body) = stalled.remove(0).await.expect("task").expect("answered");
    assert_eq!(status, 408, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("limits.requestTimeout")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_is_answered_by_the_failure_policy() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {maxConcurrency: 1, requestTimeout: 1s}
policies:
  - {id: slow, module: HOSTILE, settings: {behaviour: loop}, timeout: 800ms, failurePolicy: Ignore}
",
    )
    .await;
    let client = http();
    let url = format!("http://127.0.0.1:{port}/validate/slow");
    // Two at once with one evaluation slot: the second waits for the first (800 ms), then its
    // deadline (1 s) passes while it evaluates.
    let (first, second) = tokio::join!(
        client.post(&url).json(&review("first")).send(),
        client.post(&url).json(&review("second")).send(),
    );
    let mut warnings = Vec::new();
    for answer in [first, second] {
        let answer = answer.expect("answered");
        assert_eq!(
            answer.status(),
            200,
            "answered by failurePolicy, not by HTTP 408"
        );
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(body["response"]["allowed"], true, "{body}");
        warnings.push(
            body["response"]["warnings"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("(timeout)") && w.contains("limits.requestTimeout")),
        "{warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_members_add_up_past_the_deadline_is_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {requestTimeout: 1s}
policies:
  - {id: a, module: HOSTILE, settings: {behaviour: loop}, timeout: 400ms, failurePolicy: Ignore}
  - {id: b, module: HOSTILE, settings: {behaviour: loop}, timeout: 400ms, failurePolicy: Ignore}
  - {id: c, module: HOSTILE, settings: {behaviour: loop}, timeout: 400ms, failurePolicy: Ignore}
groups:
  - {id: three, expression: a && b && c}
",
    )
    .await;
    let client = http();
    // Members run concurrently: three 400 ms members, 1.2 s in a row, fit a 1 s deadline.
    let started = Instant::now();
    let answer = client
        .post(format!("http://127.0.0.1:{port}/validate/three"))
        .json(&review("group"))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(
        body["response"]["warnings"].as_array().map(Vec::len),
        Some(3),
        "each member failed by its timeout and was let through by its failurePolicy: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_counted_json_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(dir.path(), "policies: [{id: pod, module: HOSTILE}]\n").await;
    let client = http();
    for (request, status) in [
        (client.get(format!("http://127.0.0.1:{port}/nope")), 404),
        (
            client.get(format!("http://127.0.0.1:{port}/validate/pod")),
            405,
        ),
    ] {
        let answer = request.send().await.expect("answered");
        assert_eq!(answer.status(), status);
        let body: Value = answer.json().await.expect("a JSON body");
        assert!(body["error"].is_string(), "{body}");
    }
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for status in [404, 405] {
        assert!(
            metrics.contains(&format!(
                "palisade_rejected_requests_total{{status=\"{status}\"}} 1"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_broken_module_applies_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "policies:\n  - {id: pod, module: HOSTILE}\n  - {id: other, module: HOSTILE}\n",
    )
    .await;
    let tmp = dir.path().join(".palisade.yaml.tmp");
    std::fs::write(
        &tmp,
        format!(
            "listen: 127.0.0.1:0\npolicies:\n  - {{id: pod, module: {}, settings: {{behaviour: deny}}}}\n  - {{id: other, module: missing.wasm}}\n",
            hostile().display()
        ),
    )
    .expect("write");
    std::fs::rename(&tmp, dir.path().join("palisade.yaml")).expect("rename");
    let client = http();
    let mut denied = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let body: Value = client
            .post(format!("http://127.0.0.1:{port}/validate/pod"))
            .json(&review("after"))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        if body["response"]["allowed"] == false {
            denied = true;
            break;
        }
    }
    assert!(denied, "the new settings of pod never applied");
    let statuses: Value = client
        .get(format!("http://127.0.0.1:{port}/policies"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let other = statuses
        .as_array()
        .and_then(|s| s.iter().find(|p| p["id"] == "other"))
        .expect("other is listed");
    assert_eq!(other["status"], "error", "{other}");
    // It answers by its failurePolicy (Fail: denied).
    let body: Value = client
        .post(format!("http://127.0.0.1:{port}/validate/other"))
        .json(&review("broken"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["response"]["status"]["reason"], "policy-error",
        "{body}"
    );
}

async fn metrics(client: &reqwest::Client, port: u16) -> String {
    client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_policy_cannot_starve_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {requestTimeout: 3s}
policies:
  - {id: spin, module: HOSTILE, settings: {behaviour: loop}, timeout: 1s, failurePolicy: Ignore}
  - {id: ok, module: HOSTILE}
",
    )
    .await;
    let client = http();
    // 200 requests to a policy that spins until its deadline, all at once.
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let request = client
                .post(format!("http://127.0.0.1:{port}/validate/spin"))
                .json(&review(&format!("spin-{i}")));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        let answer = client
            .post(format!("http://127.0.0.1:{port}/validate/ok"))
            .json(&review(&format!("ok-{i}")))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    // The spinning policy runs 4 evaluations at once (its maxConcurrency), the other 196 wait
    // without a worker, and every evaluation yields to the back of the run queue at each epoch
    // tick: the well-behaved policy shares the workers with 4 spinners, not 200. (Unbounded,
    // the slowest of these requests took 0.85-2.9 s.)
    assert!(
        latencies[9] < Duration::from_millis(400),
        "slowest {:?} of {latencies:?}",
        latencies[9]
    );
    for answer in flood {
        assert_eq!(answer.await.expect("task").expect("answered"), 200);
    }
    let scrape = metrics(&client, port).await;
    let waited = sample(
        &scrape,
        r#"palisade_policy_wait_seconds_total{policy="spin"}"#,
    );
    assert!(waited.is_some_and(|s| s > 1.0), "{scrape}");
    let busy = sample(
        &scrape,
        r#"palisade_policy_busy_seconds_total{policy="spin"}"#,
    );
    // Four at a time for ~1 s each, until the request deadline (3 s) answered the rest.
    assert!(busy.is_some_and(|s| s >= 4.0), "{scrape}");
    assert!(
        sample(
            &scrape,
            r#"palisade_policy_busy_seconds_total{policy="ok"}"#
        )
        .is_some(),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_a_burst_are_dropped_once_idle() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, _stop) = serve(
        dir.path(),
        "limits: {instanceIdleTimeout: 300ms}\npolicies: [{id: ok, module: HOSTILE, maxConcurrency: 8}]\n",
    )
    .await;
    let client = http();
    let idle = r#"palisade_policy_instances{policy="ok",state="idle"}"#;
    let burst: Vec<_> = (0..8)
        .map(|i| {
            let request = client
                .post(format!("http://127.0.0.1:{port}/validate/ok"))
                .json(&review(&format!("ok-{i}")));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.expect("task").expect("answered"), 200);
    }
    let pooled = sample(&metrics(&client, port).await, idle);
    assert!(pooled.is_some_and(|n| n >= 1.0), "{pooled:?}");
    // Idle past instanceIdleTimeout, the burst's instances go (and their memory with them).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let scrape = metrics(&client, port).await;
    assert_eq!(sample(&scrape, idle), Some(0.0), "{scrape}");
    // The policy answers on, with a new instance.
    let answer = client
        .post(format!("http://127.0.0.1:{port}/validate/ok"))
        .json(&review("after"))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
}
