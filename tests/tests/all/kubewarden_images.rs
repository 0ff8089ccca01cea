//! Images in `palisade serve`: policy modules given as `registry://` URLs are pulled when the
//! configuration loads, from an OCI layout (offline) or a real registry (Debian's
//! `docker-registry` on 127.0.0.1), and pinned in `/policies` by their manifest digest; modules
//! given as `https://` URLs are downloaded (from a server in the test) and pinned by their
//! SHA-256; the oci/v1/* host operations read the same images.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use palisade_oci::{Image, Registry, RegistryOptions, Variant, layout};
use palisade_webhook::kubewarden::ServerFlags;
use palisade_webhook::registry::RegistryConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use crate::kubewarden::{pod, probe_bytes};

/// The kubewarden-policy-sdk probe as the artefact Kubewarden pulls.
fn probe_image() -> Image {
    Image::kubewarden(
        &probe_bytes(),
        BTreeMap::from([("io.kubewarden.policy.title".to_owned(), "probe".to_owned())]),
    )
    .expect("a Kubewarden artefact")
}

fn review(privileged: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": pod(privileged, &json!({})),
    })
}

/// The status of policy `id` in `/policies`.
fn status(policies: &Value, id: &str) -> Value {
    policies
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no policy {id} in {policies}"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn registry_modules_come_from_an_oci_layout_offline_pinned_by_digest() {
    let dir = tempfile::tempdir().expect("dir");
    let image = probe_image();
    let reference = "registry.example/policies/probe:v1";
    layout::write_dir(&dir.path().join("images"), &[(reference, &image)]).expect("layout");
    let config = dir.path().join("palisade.yaml");
    write(
        &config,
        &format!(
            r#"
listen: 127.0.0.1:0
hostOperations:
  registry: {{ociDirectory: images}}
policies:
  - id: privileged
    module: registry://{reference}
    settings: {{denyPrivileged: true}}
  - id: manifest
    module: registry://{reference}
    settings: {{call: {{manifest: {{image: {reference}}}}}}}
    capabilities: {{host: ["oci/v1/oci_manifest"]}}
  - id: absent
    module: registry://registry.example/policies/absent:v1
"#
        ),
    );
    let server = crate::serving::serve(config);
    let denied = crate::serving::post_review(server.address, "privileged", &review(true));
    assert_eq!(denied["allowed"], false, "{denied}");
    // The host operation reads the same layout.
    let answered = crate::serving::post_review(server.address, "manifest", &review(false));
    assert_eq!(answered["allowed"], true, "{answered}");
    assert_eq!(
        answered["status"]["message"],
        "image manifest with 1 layers"
    );
    let policies = crate::serving::policies(server.address);
    let privileged = status(&policies, "privileged");
    assert_eq!(
        privileged["origin"],
        json!({"url": format!("registry://{reference}"), "digest": image.digest()})
    );
    assert_eq!(privileged["module"], format!("registry://{reference}"));
    // A module that is not there fails to load, naming it; the others are served.
    let absent = status(&policies, "absent");
    assert_eq!(absent["status"], "error");
    let error = absent["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("pulling registry://registry.example/policies/absent:v1"),
        "{error}"
    );
}

#[test]
fn a_policies_yml_pulls_its_modules_from_a_registry_with_policy_servers_flags() {
    let registry = match e2e::registry::LocalRegistry::start() {
        Ok(registry) => registry,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let image = probe_image();
    let reference = format!("{}/policies/probe:v1", registry.address);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pushed = runtime
        .block_on(async {
            Registry::new(RegistryOptions {
                plain_http: true,
                credentials: None,
            })
            .expect("client")
            .push(&image, &reference)
            .await
        })
        .expect("pushed");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("policies.yml");
    // A bare reference is a registry reference for policy-server, as registry:// is.
    write(
        &config,
        &format!(
            "privileged:\n  module: registry://{reference}\n  settings: {{denyPrivileged: true}}\nbare:\n  module: {reference}\n  settings: {{denyPrivileged: true}}\n"
        ),
    );
    // policy-server's --sources-path insecure_sources: the registry speaks plain HTTP.
    let flags = ServerFlags {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        registry: RegistryConfig {
            insecure_registries: vec![registry.address.clone()],
            ..RegistryConfig::default()
        },
        ..ServerFlags::default()
    };
    let server = crate::serving::serve_with(config, flags);
    for id in ["privileged", "bare"] {
        let denied = crate::serving::post_review(server.address, id, &review(true));
        assert_eq!(
            denied["status"]["message"], "privileged containers are not allowed: tools",
            "{id}: {denied}"
        );
    }
    let policies = crate::serving::policies(server.address);
    assert_eq!(
        status(&policies, "privileged")["origin"]["digest"],
        pushed.digest
    );
    assert_eq!(
        status(&policies, "bare")["origin"]["url"],
        format!("registry://{reference}")
    );
}

/// An HTTPS server on 127.0.0.1 with a self-signed certificate for 127.0.0.1, answering
/// `GET <path>` with `body` and anything else with 404; stopped when dropped.
struct ModuleHost {
    address: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl ModuleHost {
    fn start(path: &'static str, body: Vec<u8>) -> Self {
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let body = Bytes::from(body);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends the handshake here.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let found = request.method() == Method::GET && request.uri().path() == path;
                        let response = if found {
                            Response::new(Full::new(body.clone()))
                        } else {
                            let mut missing = Response::new(Full::new(Bytes::from("not found")));
                            *missing.status_mut() = StatusCode::NOT_FOUND;
                            missing
                        };
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            address,
            _runtime: runtime,
        }
    }
}

#[test]
fn https_modules_are_downloaded_and_pinned_by_their_sha256() {
    let bytes = probe_bytes();
    let host = ModuleHost::start("/probe.wasm", bytes.clone());
    let authority = host.address.to_string();
    let url = format!("https://{authority}/probe.wasm");
    let absent = format!("https://{authority}/absent.wasm");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("palisade.yaml");
    // An insecure registry's certificate is not checked: the test's is self-signed.
    write(
        &config,
        &format!(
            r#"
listen: 127.0.0.1:0
hostOperations:
  registry: {{insecureRegistries: ["{authority}"]}}
policies:
  - id: privileged
    module: {url}
    settings: {{denyPrivileged: true}}
  - id: absent
    module: {absent}
"#
        ),
    );
    let server = crate::serving::serve(config);
    let denied = crate::serving::post_review(server.address, "privileged", &review(true));
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(
        denied["status"]["message"],
        "privileged containers are not allowed: tools"
    );
    let allowed = crate::serving::post_review(server.address, "privileged", &review(false));
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let policies = crate::serving::policies(server.address);
    let privileged = status(&policies, "privileged");
    assert_eq!(privileged["status"], "loaded", "{privileged}");
    assert_eq!(
        privileged["origin"],
        json!({"url": url, "digest": format!("sha256:{}", palisade_oci::sha256_hex(&bytes))})
    );
    // A 404 is a load error naming the URL; the other policy is served regardless.
    let absent_status = status(&policies, "absent");
    assert_eq!(absent_status["status"], "error", "{absent_status}");
    let error = absent_status["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("downloading {absent}")), "{error}");
    assert!(error.contains("404"), "{error}");
}

#[test]
fn an_https_module_host_with_an_untrusted_certificate_is_refused() {
    let host = ModuleHost::start("/probe.wasm", probe_bytes());
    let url = format!("https://{}/probe.wasm", host.address);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("palisade.yaml");
    // Another host is insecure; this one is not, and its certificate is self-signed.
    write(
        &config,
        &format!(
            r#"
listen: 127.0.0.1:0
hostOperations:
  registry: {{insecureRegistries: ["127.0.0.1:1"]}}
policies:
  - id: privileged
    module: {url}
    settings: {{denyPrivileged: true}}
"#
        ),
    );
    let server = crate::serving::serve(config);
    let policies = crate::serving::policies(server.address);
    let privileged = status(&policies, "privileged");
    assert_eq!(privileged["status"], "error", "{privileged}");
    let error = privileged["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("downloading {url}")), "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(privileged.get("origin").is_none(), "{privileged}");
    // Not loaded: the policy fails closed.
    let denied = crate::serving::post_review(server.address, "privileged", &review(false));
    assert_eq!(denied["allowed"], false, "{denied}");
}

/// A proxy-wasm module (what `Image::from_module` packages); `name` makes each one distinct.
fn proxy_module(name: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "proxy_abi_version_0_2_1")) (func (export "{name}")))"#
    ))
    .expect("wat")
}

#[test]
fn manifest_digests_and_configs_of_the_pods_images_come_from_the_oci_layout() {
    let dir = tempfile::tempdir().expect("dir");
    let app = Image::from_module(&proxy_module("app"), Variant::Compat, &[]).expect("image");
    let tools = Image::from_module(&proxy_module("tools"), Variant::Compat, &[]).expect("image");
    assert_ne!(app.digest(), tools.digest());
    // The compat variant's config is the one an OCI image has: the SDK reads its architecture.
    let config: Value = serde_json::from_slice(
        app.blob(&app.parsed().config.digest)
            .expect("the config blob"),
    )
    .expect("json");
    assert_eq!(config["architecture"], "wasm");
    layout::write_dir(
        &dir.path().join("images"),
        &[
            ("registry.example/app:1", &app),
            ("registry.example/tools:1", &tools),
        ],
    )
    .expect("layout");
    let module = e2e::artefact_for("kubewarden-probe", e2e::KUBEWARDEN);
    let module = module.display();
    write(
        &dir.path().join("palisade.yaml"),
        &format!(
            r#"
listen: 127.0.0.1:0
hostOperations:
  registry: {{ociDirectory: images}}
policies:
  - id: digests
    module: {module}
    settings: {{call: imageDigests}}
    capabilities: {{host: ["oci/v1/manifest_digest"]}}
  - id: config
    module: {module}
    settings: {{call: {{manifestConfig: {{image: "registry.example/app:1"}}}}}}
    capabilities: {{host: ["oci/v1/oci_manifest_config"]}}
  - id: not-granted
    module: {module}
    settings: {{call: imageDigests}}
    capabilities: {{host: ["oci/v1/oci_manifest_config"]}}
"#
        ),
    );
    let server = crate::serving::serve(dir.path().join("palisade.yaml"));
    let answer = |id: &str| {
        let answered = crate::serving::post_review(server.address, id, &review(false));
        assert_eq!(answered["allowed"], true, "{id}: {answered}");
        let message = answered["status"]["message"].as_str().expect("a message");
        serde_json::from_str::<Value>(message).expect("the probe's JSON answer")
    };
    assert_eq!(
        answer("digests"),
        json!({"registry.example/app:1": app.digest(), "registry.example/tools:1": tools.digest()})
    );
    assert_eq!(
        answer("config"),
        json!({"digest": app.digest(), "layers": 1, "architecture": "wasm"})
    );
    let refused = crate::serving::post_review(server.address, "not-granted", &review(false));
    assert_eq!(refused["allowed"], false, "{refused}");
    // The SDK wraps the host's refusal in its own words; Kubewarden's are inside.
    let message = refused["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "Policy has not been granted access to the 'oci/v1/manifest_digest' host capability. The violation has been reported."
        ),
        "{message}"
    );
}
