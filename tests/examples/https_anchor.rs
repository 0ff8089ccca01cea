//! The anchor of `make bench-webhook`: an HTTPS server on the webhook's own stack (tokio with two
//! workers, hyper's HTTP/1+2 server, rustls with the same ALPN) that reads each request's body
//! and answers a fixed AdmissionReview, doing no admission work. With `--parse` it also reads
//! the body as an AdmissionReview in one typed pass (the runtime's codec) and answers with the
//! request's uid. `palisade serve`'s CPU per request is reported as a multiple of this one's.
//!
//! Usage: `https_anchor <port> <cert.pem> <key.pem> [--parse]`; runs until killed.
#![expect(
    clippy::expect_used,
    reason = "a bench tool: a setup failure ends it with its message"
)]

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade_runtime::review;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const ANSWER: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":true}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, cert, key, rest @ ..] = args.as_slice() else {
        eprintln!("usage: https_anchor <port> <cert.pem> <key.pem> [--parse]");
        std::process::exit(2);
    };
    let parse = rest.iter().any(|a| a == "--parse");
    let certs = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("port")))
                .await
                .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| answer(request, parse));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

async fn answer(
    request: Request<Incoming>,
    parse: bool,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let text = if parse {
        match std::str::from_utf8(&body)
            .ok()
            .and_then(|t| review::parse(t).ok())
        {
            Some(review) => {
                ANSWER.replace("705ab4f5-6393-11e8-b7cc-42010a800002", &review.request.uid)
            }
            None => r#"{"error":"not a review"}"#.to_owned(),
        }
    } else {
        ANSWER.to_owned()
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("a static response"))
}
