//! `palisade serve` in a test: a server on its own runtime thread (plain HTTP on 127.0.0.1, a
//! fast watch interval for reloads), and one AdmissionReview posted to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use palisade_runtime::{Engine, EngineConfig};
use palisade_webhook::kubewarden::ServerFlags;
use palisade_webhook::{ServeOptions, Server};
use serde_json::Value;

/// A server on its own runtime thread; stopped when the runtime is dropped.
pub(crate) struct Running {
    pub(crate) address: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

pub(crate) fn serve(config: PathBuf) -> Running {
    serve_with(config, ServerFlags::default())
}

/// [`serve`] with policy-server's flags, for a policies.yml.
pub(crate) fn serve_with(config: PathBuf, flags: ServerFlags) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async {
        let options = ServeOptions {
            config,
            insecure_http: true,
            strict_ready: true,
            watch_interval: Duration::from_millis(100),
            flags,
        };
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        Server::bind(options, engine).await.expect("binds")
    });
    let address = server.local_addr().expect("address");
    runtime.spawn(server.run_until(std::future::pending::<()>()));
    Running {
        address,
        _runtime: runtime,
    }
}

/// Posts an AdmissionReview to `/validate/<policy>` over plain HTTP/1.1; the review's `response`.
pub(crate) fn post_review(address: SocketAddr, policy: &str, review: &Value) -> Value {
    post_review_to(address, &format!("validate/{policy}"), review)
}

/// Posts an AdmissionReview to `/<path>` (`audit/<policy>`, `mutate/<policy>`); the review's
/// `response`.
pub(crate) fn post_review_to(address: SocketAddr, path: &str, review: &Value) -> Value {
    let body = review.to_string();
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The server may answer in chunks: the JSON is the part between the first `{` and last `}`.
    let json = &body[body.find('{').expect("json")..=body.rfind('}').expect("json")];
    let review: Value = serde_json::from_str(json).expect("an AdmissionReview");
    review["response"].clone()
}

/// `GET /policies`: the status of every policy and group.
pub(crate) fn policies(address: SocketAddr) -> Value {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET /policies HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let body =
        &response[response.find('[').expect("a list")..=response.rfind(']').expect("a list")];
    serde_json::from_str(body).expect("json")
}
