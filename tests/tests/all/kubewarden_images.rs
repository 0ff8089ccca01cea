//! Images in `palisade serve`: policy modules given as `registry://` URLs are pulled when the
//! configuration loads, from an OCI layout (offline) or a real registry (Debian's
//! `docker-registry` on 127.0.0.1), and pinned in `/policies` by their manifest digest; the
//! oci/v1/* host operations read the same images.

use std::collections::BTreeMap;
use std::path::Path;

use palisade_oci::{Image, Registry, RegistryOptions, layout};
use palisade_webhook::kubewarden::ServerFlags;
use palisade_webhook::registry::RegistryConfig;
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
