//! The server over real sockets on 127.0.0.1: HTTPS with and without client certificates,
//! certificate rotation, configuration reload under load, bad reloads, graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::{ServeOptions, Server};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

use crate::support::hostile;

/// A CA with a serving certificate for 127.0.0.1 and a client certificate.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client: String,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).expect("client cert");
    Pki {
        ca: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    }
}

fn write_pki(dir: &Path, pki: &Pki) {
    std::fs::write(dir.join("ca.crt"), &pki.ca).expect("write");
    // Written to a temporary name and renamed, as Kubernetes swaps secret files.
    for (name, content) in [("tls.crt", &pki.server_cert), ("tls.key", &pki.server_key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
}

fn config(behaviour: &str, client_ca: bool) -> String {
    let client_ca = if client_ca { ", clientCa: ca.crt" } else { "" };
    format!(
        "listen: 127.0.0.1:0\ntls: {{cert: tls.crt, key: tls.key{client_ca}}}\npolicies:\n  - id: pod\n    module: {}\n    settings: {{behaviour: {behaviour}}}\n",
        hostile().display()
    )
}

fn write_config(dir: &Path, text: &str) {
    let tmp = dir.join(".palisade.yaml.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join("palisade.yaml")).expect("rename");
}

async fn start(
    dir: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let options = ServeOptions {
        config: dir.join("palisade.yaml"),
        insecure_http: false,
        strict_ready: false,
        watch_interval: Duration::from_millis(100),
        flags: Default::default(),
    };
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let server = Server::bind(options, engine).await.expect("binds");
    let url = format!(
        "https://127.0.0.1:{}",
        server.local_addr().expect("address").port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    (url, stop, task)
}

async fn metrics_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Waits up to 15 s for the metrics to count `n` failed reloads; returns the metrics text.
async fn reload_failures(client: &reqwest::Client, url: &str, n: usize) -> String {
    let wanted = format!("palisade_config_reload_failures_total {n}\n");
    let mut last = String::new();
    for _ in 0..150 {
        last = metrics_text(client, url).await;
        if last.contains(&wanted) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts: Vec<&str> = last
        .lines()
        .filter(|l| l.starts_with("palisade_config"))
        .collect();
    panic!("expected {n} failed reloads, metrics say {counts:?}");
}

/// Polls `condition` every 50 ms for up to 15 s.
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..300 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn client(ca: &str, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(5));
    if let Some(identity) = identity {
        builder =
            builder.identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

fn review(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}
        }
    })
}

async fn validate(client: &reqwest::Client, url: &str, uid: &str) -> reqwest::Result<Value> {
    client
        .post(format!("{url}/validate/pod"))
        .json(&review(uid))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_admission_review_with_a_client_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(dir.path(), &config("allow", true));
    let (url, stop, task) = start(dir.path()).await;

    let answer = validate(&client(&pki.ca, Some(&pki.client)), &url, "uid-1")
        .await
        .expect("answered");
    assert_eq!(answer["response"]["uid"], "uid-1");
    assert_eq!(answer["response"]["allowed"], true);
    let refused = validate(&client(&pki.ca, None), &url, "uid-2").await;
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused: {refused:?}"
    );

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (old, new) = (pki(), pki());
    write_pki(dir.path(), &old);
    write_config(dir.path(), &config("allow", false));
    let (url, stop, task) = start(dir.path()).await;

    assert!(
        validate(&client(&old.ca, None), &url, "before")
            .await
            .is_ok()
    );
    assert!(
        validate(&client(&new.ca, None), &url, "not-yet")
            .await
            .is_err(),
        "new CA cannot verify the old certificate"
    );
    write_pki(dir.path(), &new);
    let mut rotated = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A new client each time: a fresh TLS handshake.
        if validate(&client(&new.ca, None), &url, "after")
            .await
            .is_ok()
        {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "the new certificate was never served");

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(dir.path(), &config("allow", false));
    let (url, stop, task) = start(dir.path()).await;

    let client = client(&pki.ca, None);
    let running = Arc::new(AtomicBool::new(true));
    let (allowed, denied, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, url, running) = (client.clone(), url.clone(), Arc::clone(&running));
        let (allowed, denied, failed) = (
            Arc::clone(&allowed),
            Arc::clone(&denied),
            Arc::clone(&failed),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while running.load(Ordering::Relaxed) {
                n += 1;
                match validate(&client, &url, &format!("w{worker}-{n}")).await {
                    Ok(answer) if answer["response"]["uid"] == format!("w{worker}-{n}") => {
                        let counter = if answer["response"]["allowed"] == true {
                            &allowed
                        } else {
                            &denied
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Load first, whatever the machine's speed; then reload while it runs.
    assert!(
        eventually(|| allowed.load(Ordering::Relaxed) > 50).await,
        "no load before the reload"
    );
    write_config(dir.path(), &config("deny", false));
    let switched = eventually(|| denied.load(Ordering::Relaxed) > 50).await;
    running.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    assert!(switched, "the new configuration never took effect");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the reload"
    );
    assert!(
        allowed.load(Ordering::Relaxed) > 50,
        "too little load before the reload"
    );
    let metrics = metrics_text(&client, &url).await;
    assert!(
        metrics.contains("palisade_config_reloads_total 1"),
        "{metrics}"
    );

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_keeps_the_previous_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(dir.path(), &config("allow", false));
    let (url, stop, task) = start(dir.path()).await;
    let client = client(&pki.ca, None);

    write_config(dir.path(), "policies: [{id: pod, module: no-such.wasm}]\n");
    reload_failures(&client, &url, 1).await;
    write_config(dir.path(), "policies: [{id: pod, mdule: typo.wasm}]\n");
    let metrics = reload_failures(&client, &url, 2).await;
    let answer = validate(&client, &url, "still")
        .await
        .expect("still served");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        metrics.contains("palisade_config_reloads_total 0"),
        "{metrics}"
    );

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    // A policy that runs for its whole 400 ms timeout, then fails closed.
    let text = config("loop", false).replace("    settings", "    timeout: 400ms\n    settings");
    write_config(dir.path(), &text);
    let (url, stop, task) = start(dir.path()).await;
    let client = client(&pki.ca, None);

    let in_flight = tokio::spawn(async move { validate(&client, &url, "slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).expect("stop");
    let answer = in_flight
        .await
        .expect("join")
        .expect("answered despite the shutdown");
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .expect("message")
            .contains("(timeout)")
    );
    task.await.expect("join").expect("clean shutdown");
}

/// Policies that loop until their timeout never hold the server's threads: with more of them
/// in flight than the runtime has worker threads (2), another policy's review and `/healthz`
/// are still answered while every loop is running; then each loop is cut at its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_policies_do_not_stall_other_requests() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    let text = format!(
        "{}  - id: endless\n    module: {}\n    timeout: 3s\n    settings: {{behaviour: loop}}\n",
        config("allow", false),
        hostile().display()
    );
    write_config(dir.path(), &text);
    let (url, stop, task) = start(dir.path()).await;
    let client = client(&pki.ca, None);

    let loops: Vec<_> = (0..4)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{url}/validate/endless"))
                    .json(&review(&format!("loop-{i}")))
                    .send()
                    .await?
                    .json::<Value>()
                    .await
            })
        })
        .collect();
    // Let every loop get going, well inside their 3 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = validate(&client, &url, "meanwhile")
        .await
        .expect("answered while the loops run");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let health = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let metrics = metrics_text(&client, &url).await;
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "the other requests were answered only after a loop ended"
    );
    // Four loops at once: four instances, all busy.
    for line in [
        r#"palisade_policy_instances{policy="endless",state="busy"} 4"#,
        r#"palisade_policy_instances{policy="pod",state="idle"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }

    for (i, handle) in loops.into_iter().enumerate() {
        let answer = handle.await.expect("join").expect("loop answered");
        assert_eq!(answer["response"]["uid"], format!("loop-{i}"));
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        assert_eq!(
            answer["response"]["status"]["message"],
            "policy endless failed (timeout): the policy ran past its deadline of 3s; failurePolicy Fail denies the request"
        );
    }
    // Starts are counted as each request is decided; an instance that timed out is not kept.
    let metrics = metrics_text(&client, &url).await;
    for line in [
        r#"palisade_policy_instance_starts_total{policy="endless"} 4"#,
        r#"palisade_policy_instances{policy="endless",state="busy"} 0"#,
        r#"palisade_policy_instances{policy="endless",state="idle"} 0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test]
async fn plain_http_needs_the_explicit_flag() {
    let dir = tempfile::tempdir().expect("dir");
    write_config(
        dir.path(),
        &format!(
            "listen: 127.0.0.1:0\npolicies: [{{id: pod, module: {}}}]\n",
            hostile().display()
        ),
    );
    let options = ServeOptions {
        config: dir.path().join("palisade.yaml"),
        insecure_http: false,
        strict_ready: false,
        watch_interval: Duration::from_millis(100),
        flags: Default::default(),
    };
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let err = Server::bind(options, engine)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("tls is required") && err.contains("--insecure-http"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_limits_and_client_authentication() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(dir.path(), &config("allow", false));
    let (url, stop, task) = start(dir.path()).await;
    let anonymous = client(&pki.ca, None);
    let authenticated = client(&pki.ca, Some(&pki.client));
    // A review padded past 2000 bytes.
    let mut big = review("big");
    big["request"]["object"]["metadata"]["annotations"] = json!({"pad": "x".repeat(2500)});
    let post = |client: &reqwest::Client, body: &Value| {
        client.post(format!("{url}/validate/pod")).json(body).send()
    };
    assert_eq!(
        post(&anonymous, &big).await.expect("answered").status(),
        200
    );
    // Client certificates required and bodies capped, in one reload.
    let text =
        config("allow", true).replace("policies:", "limits: {maxBodyBytes: 2000}\npolicies:");
    write_config(dir.path(), &text);
    let mut applied = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metrics_text(&authenticated, &url)
            .await
            .contains("palisade_config_reloads_total 1\n")
        {
            applied = true;
            break;
        }
    }
    assert!(applied, "the reload never happened");
    let refused = post(&anonymous, &review("anonymous")).await;
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused after the reload: {refused:?}"
    );
    let small = post(&authenticated, &review("small"))
        .await
        .expect("answered");
    assert_eq!(small.status(), 200);
    let capped = post(&authenticated, &big).await.expect("answered");
    assert_eq!(capped.status(), 413);
    let body: Value = capped.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("2000 bytes") && e.contains("limits.maxBodyBytes")),
        "{body}"
    );
    // A change that needs a restart is refused, naming it; the rest stays as it was.
    write_config(dir.path(), &text.replace("127.0.0.1:0", "127.0.0.1:1"));
    reload_failures(&authenticated, &url, 1).await;
    assert_eq!(
        post(&authenticated, &review("still"))
            .await
            .expect("answered")
            .status(),
        200
    );

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_without_a_client_certificate_on_their_own_listener() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(
        dir.path(),
        &format!("probes: {{listen: 127.0.0.1:0}}\n{}", config("allow", true)),
    );
    let options = ServeOptions {
        config: dir.path().join("palisade.yaml"),
        insecure_http: false,
        strict_ready: false,
        watch_interval: Duration::from_millis(100),
        flags: Default::default(),
    };
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let server = Server::bind(options, engine).await.expect("binds");
    let url = format!(
        "https://127.0.0.1:{}",
        server.local_addr().expect("address").port()
    );
    let probes = format!(
        "http://127.0.0.1:{}",
        server
            .probes_addr()
            .expect("address")
            .expect("a probes listener")
            .port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    // What kubelet does: no client certificate. The admission listener refuses it...
    let anonymous = client(&pki.ca, None);
    let refused = anonymous.get(format!("{url}/readyz")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    // ...the probes listener answers it, and serves nothing else.
    let plain = reqwest::Client::new();
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let answer = plain
            .get(format!("{probes}{path}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), status, "{path}");
    }
    let admission = plain
        .post(format!("{probes}/validate/pod"))
        .json(&review("via-probes"))
        .send()
        .await
        .expect("answered");
    assert_eq!(admission.status(), 404);
    // Admission still needs the certificate, and works with it.
    let answer = validate(&client(&pki.ca, Some(&pki.client)), &url, "uid-1")
        .await
        .expect("answered");
    assert_eq!(answer["response"]["allowed"], true);

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_leaves_tls_alone_keeps_connections_open() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki();
    write_pki(dir.path(), &pki);
    write_config(dir.path(), &config("allow", false));
    let (url, stop, task) = start(dir.path()).await;
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // One keep-alive HTTP/1.1 connection, held across the reload.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        roots.add(cert.expect("CA")).expect("root");
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("TLS");
    let body = serde_json::to_vec(&review("kept")).expect("JSON");
    let request = [
        format!(
            "POST /validate/pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat();
    let ask = async |stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        stream.write_all(&request).await.ok()?;
        let mut answer = vec![0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .ok()?
            .ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&answer[..n]).into_owned())
    };
    let first = ask(&mut stream).await.expect("answered");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    // A reload that changes a policy's settings only.
    write_config(dir.path(), &config("deny", false));
    let other = client(&pki.ca, None);
    let mut applied = false;
    for _ in 0..100 {
        let answer = validate(&other, &url, "probe").await.expect("answered");
        if answer["response"]["allowed"] == false {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied, "the reload was not applied");
    let second = ask(&mut stream)
        .await
        .expect("the connection was closed by a reload that did not change TLS");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(second.contains("\"allowed\":false"), "{second}");

    stop.send(()).expect("stop");
    task.await.expect("join").expect("clean shutdown");
}
