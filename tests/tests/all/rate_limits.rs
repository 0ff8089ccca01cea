//! The rate-limit policy's admission home through `palisade serve`: concurrent admission
//! requests on one webhook (buckets in its memory) and on two webhooks sharing a Redis server
//! (Debian's `redis-server`, started here on 127.0.0.1; skipped, and said so in `make test`'s
//! summary, where it is missing). Never more requests are admitted than a bucket's capacity
//! plus what it refilled meanwhile, and the counts outlive configuration reloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serving::{post_review, serve};

/// A burst of 10, refilled at 10 an hour: in a test that lasts seconds, at most 10 pass.
const CAPACITY: usize = 10;

fn policy() -> PathBuf {
    e2e::artefact_for("rate-limit", "admission-component")
}

/// The server configuration: one rate-limit policy counting pod creations per namespace.
fn config(dir: &Path, redis: Option<&str>, on_error: &str) -> PathBuf {
    let store = redis.map_or(String::new(), |url| {
        format!("rateLimit:\n  redis: {{url: \"{url}\", timeout: 500ms}}\n")
    });
    let text = format!(
        "listen: 127.0.0.1:0\n{store}policies:\n  - id: pod-creations\n    module: {}\n    capabilities: {{rateLimit: true}}\n    settings:\n      onError: {on_error}\n      limits:\n      - {{name: pods, type: Namespace, requests: {CAPACITY}, per: 1h, match: {{resources: [pods], operations: [CREATE]}}}}\n",
        policy().display()
    );
    let path = dir.join("palisade.yaml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// One AdmissionReview over plain HTTP/1.1; the review's `response`.
fn review(address: SocketAddr, uid: &str, namespace: &str) -> Value {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": uid, "namespace": namespace}},
        }
    });
    post_review(address, "pod-creations", &review)
}

/// Sends `per_server` reviews to each server from as many threads at once; returns the
/// responses.
fn burst(servers: &[SocketAddr], per_server: usize, namespace: &str) -> Vec<Value> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = servers
            .iter()
            .flat_map(|&address| {
                (0..per_server).map(move |i| {
                    scope.spawn(move || {
                        review(address, &format!("{}-{i}", address.port()), namespace)
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a client thread"))
            .collect()
    })
}

fn admitted(responses: &[Value]) -> usize {
    responses
        .iter()
        .filter(|r| r["allowed"] == json!(true))
        .count()
}

fn assert_refusals_are_429(responses: &[Value]) {
    for refused in responses.iter().filter(|r| r["allowed"] == json!(false)) {
        assert_eq!(refused["status"]["code"], json!(429), "{refused}");
        let message = refused["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message
                .starts_with("Too many requests: limit reached on pods (type Namespace) for key ")
                && message.contains("; retry after "),
            "{message}"
        );
    }
}

#[test]
fn one_webhook_admits_no_more_than_the_bucket_holds_and_keeps_counting_across_reloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config(dir.path(), None, "Allow");
    let server = serve(path.clone());
    let responses = burst(&[server.address], 3 * CAPACITY, "shop");
    assert_eq!(admitted(&responses), CAPACITY, "{responses:?}");
    assert_refusals_are_429(&responses);
    // Another namespace has its own bucket.
    assert_eq!(admitted(&burst(&[server.address], 2, "web")), 2);
    // A reload (the policy's settings changed: its instances are replaced) keeps the counts.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .expect("read")
            .replace("onError: Allow", "onError: Deny"),
    )
    .expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = review(server.address, "after-reload", "shop");
        assert_eq!(response["allowed"], json!(false), "{response}");
        if Instant::now() > deadline || reloaded(server.address) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reloaded(server.address), "the configuration was reloaded");
    let response = review(server.address, "after-reload", "shop");
    assert_eq!(response["allowed"], json!(false), "{response}");
}

/// Whether `/metrics` counts a successful reload.
fn reloaded(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .any(|l| l.starts_with("palisade_config_reloads_total") && !l.ends_with(" 0"))
}

/// `redis-server` on a free 127.0.0.1 port, without persistence; killed on drop.
struct LocalRedis {
    child: Child,
    url: String,
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

fn start_redis() -> Result<LocalRedis, String> {
    let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("redis-server is not installed (Debian package redis-server; `make tools`)")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
        .port();
    let child = std::process::Command::new(&binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{} does not start: {e}", binary.display()))?;
    let mut redis = LocalRedis {
        child,
        url: format!("redis://127.0.0.1:{port}/"),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = redis.child.try_wait() {
            return Err(format!("{} exited at start ({status})", binary.display()));
        }
        if pongs(port) {
            return Ok(redis);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not answer PING within 15 s",
        binary.display()
    ))
}

/// `PING` answers `+PONG` (RESP).
fn pongs(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    drop(stream.set_read_timeout(Some(Duration::from_secs(1))));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

#[test]
fn two_webhooks_sharing_redis_share_one_limit() {
    let redis = match start_redis() {
        Ok(redis) => redis,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let first = serve(config(a.path(), Some(&redis.url), "Deny"));
    let second = serve(config(b.path(), Some(&redis.url), "Deny"));
    let responses = burst(&[first.address, second.address], 2 * CAPACITY, "shop");
    assert_eq!(admitted(&responses), CAPACITY, "{responses:?}");
    assert_refusals_are_429(&responses);
    // Both replicas took from the same bucket, so neither admits more now.
    for server in [&first, &second] {
        let response = review(server.address, "late", "shop");
        assert_eq!(response["allowed"], json!(false), "{response}");
    }
    // With Redis gone, `onError: Deny` refuses with 500 and says why.
    drop(redis);
    let response = review(first.address, "no-redis", "other");
    assert_eq!(response["allowed"], json!(false), "{response}");
    assert_eq!(response["status"]["code"], json!(500), "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rate limits not checked") && message.contains("redis"),
        "{message}"
    );
}

#[test]
fn a_webhook_whose_redis_is_down_admits_with_a_warning_when_told_to() {
    let dir = tempfile::tempdir().expect("dir");
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = serve(config(
        dir.path(),
        Some(&format!("redis://127.0.0.1:{port}/")),
        "Allow",
    ));
    let response = review(server.address, "down", "shop");
    assert_eq!(response["allowed"], json!(true), "{response}");
    let warning = response["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("rate limits not checked"), "{response}");
}

/// The Redis store's script refills as the SDK's arithmetic does, on Redis's clock: a drained
/// bucket refuses with the time one token takes, gives a token back after that time, and its
/// key expires once the bucket would be full again.
#[test]
fn redis_buckets_refill_at_their_rate_and_expire_when_full() {
    use palisade_runtime::capabilities::{Buckets, Shape};
    use palisade_webhook::buckets::RedisBuckets;

    let redis = match start_redis() {
        Ok(redis) => redis,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let buckets = RedisBuckets::new(&palisade_webhook::RedisConfig {
        url: redis.url.clone(),
        key_prefix: "test:".to_owned(),
        timeout: Duration::from_secs(2),
    });
    // Two tokens, two more every 2 s: one a second (slow enough that three takes in a row
    // find the bucket empty even on a busy machine).
    let shape = Shape {
        capacity: 2,
        refill_tokens: 2,
        refill_period_ms: 2000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let take = || {
        runtime
            .block_on(buckets.take("policy", "b", shape, 1))
            .expect("redis answers")
    };
    let started = Instant::now();
    assert!(take().allowed);
    let last = take();
    assert!(last.allowed);
    assert_eq!(last.remaining, 0);
    let refused = take();
    assert!(!refused.allowed, "{refused:?}");
    assert_eq!(refused.remaining, 0);
    // At most one token's time (1 s), less what passed since the first take.
    assert!(
        refused.retry_after <= Duration::from_secs(1)
            && refused.retry_after + started.elapsed() >= Duration::from_millis(990),
        "{refused:?}"
    );
    assert!(refused.reset <= Duration::from_secs(2), "{refused:?}");
    std::thread::sleep(refused.retry_after + Duration::from_millis(20));
    assert!(take().allowed, "a token came back after the retry time");
    // The key lives until the bucket is full again (plus a second), then Redis drops it.
    let ttl = redis_command(&redis, &["PTTL", "test:policy:b"]);
    let ttl: i64 = ttl
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("a PTTL answer");
    assert!((1000..=3000).contains(&ttl), "PTTL {ttl}");
}

/// One command in RESP; the first line of the answer.
fn redis_command(redis: &LocalRedis, args: &[&str]) -> String {
    let port = redis
        .url
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).expect("send");
    let mut answer = [0; 64];
    let n = stream.read(&mut answer).expect("read");
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
