//! A Kubewarden policy written the way Kubewarden's own Rust policies are (waPC through
//! `kubewarden-policy-sdk`, Kubernetes types from `k8s-openapi`), to test Palisade's waPC host
//! from the guest's side. Its settings choose what it does:
//!
//! - `denyPrivileged`: reject Pods with a privileged container (code 403 unless `code`);
//! - `addLabel`: add a label to objects that lack it (a mutation, `mutated_object`);
//! - `warning` and `auditAnnotation`: put them on every answer;
//! - `call`: call one host capability through the SDK's typed client and answer with what it
//!   returned (accepted, the answer as the message) or the host's error (rejected);
//! - `raw`: the same with any binding, namespace, operation and payload;
//! - `hostile`: misbehave (`loop`, `memory`, `trap`, `garbage`, `error`, `huge-answer`).
//!
//! - `log`: log one line per validation through the SDK's logger (the `tracing` capability).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kubewarden_policy_sdk::host_capabilities::crypto::{Certificate, CertificateEncoding};
use kubewarden_policy_sdk::host_capabilities::kubernetes::{
    CanIRequest, GetResourceRequest, ListAllResourcesRequest, ListResourcesByNamespaceRequest,
    ResourceAttributes, SubjectAccessReview,
};
use kubewarden_policy_sdk::host_capabilities::{crypto, kubernetes, net, oci, verification};
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::settings::Validatable;
use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
use kubewarden_policy_sdk::{
    accept_request, logging, mutate_request, protocol_version_guest, reject_request,
    validate_settings,
};
use serde::Deserialize;
use serde_json::{Value, json};
use slog::{Drain, Logger, info, o};

/// The probe's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    deny_privileged: bool,
    code: Option<u16>,
    add_label: Option<Label>,
    warning: Option<String>,
    audit_annotation: Option<(String, String)>,
    call: Option<Call>,
    raw: Option<RawCall>,
    hostile: Option<String>,
    log: bool,
}

/// A label to add.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    key: String,
    value: String,
}

/// A host capability called through the SDK's typed client.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
enum Call {
    /// The request's namespace (`get_resource` of a v1 Namespace): its labels.
    NamespaceLabels,
    /// The Pods of the request's namespace (`list_resources_by_namespace`): their names.
    PodsInNamespace {
        #[serde(default)]
        label_selector: Option<String>,
        #[serde(default)]
        field_selector: Option<String>,
        #[serde(default)]
        field_masks: Option<BTreeSet<String>>,
    },
    /// Every Namespace (`list_resources_all`): their names.
    AllNamespaces,
    /// Whether the requesting user may do `verb` on `resource` in the request's namespace.
    CanI { verb: String, resource: String },
    /// The digest of each container image of the Pod.
    ImageDigests,
    /// The manifest of an image.
    Manifest { image: String },
    /// The manifest and config of an image.
    ManifestConfig { image: String },
    /// A sigstore check of the first container image with public keys.
    VerifyPubKeys { keys: Vec<String> },
    /// A DNS lookup.
    Lookup { host: String },
    /// Whether a PEM certificate is trusted.
    CertificateTrusted {
        pem: String,
        #[serde(default)]
        chain: Vec<String>,
        #[serde(default)]
        not_after: Option<String>,
    },
}

/// Any host call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    binding: String,
    namespace: String,
    operation: String,
    payload: Value,
}

const HOSTILE: [&str; 6] = ["loop", "memory", "trap", "garbage", "error", "huge-answer"];

impl Validatable for Settings {
    fn validate(&self) -> Result<(), String> {
        if let Some(label) = &self.add_label
            && label.key.is_empty()
        {
            return Err("addLabel.key must not be empty".to_owned());
        }
        if let Some(code) = self.code
            && !(400..=599).contains(&code)
        {
            return Err(format!("code {code} is not an HTTP error code (400-599)"));
        }
        if let Some(hostile) = &self.hostile
            && !HOSTILE.contains(&hostile.as_str())
        {
            return Err(format!(
                "hostile {hostile:?} is not one of {}",
                HOSTILE.join(", ")
            ));
        }
        Ok(())
    }
}

/// Registers the policy's operations, as every Kubewarden Rust policy does.
#[expect(unsafe_code, reason = "waPC's entry point must keep its exported name")]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    guest::register_function("validate", validate);
    guest::register_function("validate_settings", validate_settings::<Settings>);
    guest::register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let request = ValidationRequest::<Settings>::new(payload)?;
    let settings = &request.settings;
    if settings.log {
        let logger = Logger::root(
            logging::KubewardenDrain::new().fuse(),
            o!("policy" => "probe"),
        );
        info!(logger, "validating"; "uid" => request.request.uid.as_str(), "kind" => request.request.kind.kind.as_str());
    }
    if let Some(hostile) = &settings.hostile {
        return misbehave(hostile);
    }
    let mut warnings = settings.warning.clone().map(|w| vec![w]);
    let audit = settings
        .audit_annotation
        .clone()
        .map(|(k, v)| HashMap::from([(k, v)]));
    if let Some(raw) = &settings.raw {
        let payload = serde_json::to_vec(&raw.payload)?;
        return answer(
            guest::host_call(&raw.binding, &raw.namespace, &raw.operation, &payload)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|e| e.to_string()),
        );
    }
    if let Some(call) = &settings.call {
        return answer(host_call(call, &request));
    }
    if settings.deny_privileged && request.request.kind.kind == "Pod" {
        let pod: Pod = serde_json::from_value(request.request.object.clone())?;
        let privileged: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|spec| spec.containers.iter())
            .filter(|c| {
                c.security_context
                    .as_ref()
                    .and_then(|s| s.privileged)
                    .unwrap_or(false)
            })
            .map(|c| c.name.clone())
            .collect();
        if !privileged.is_empty() {
            return reject_request(
                Some(format!(
                    "privileged containers are not allowed: {}",
                    privileged.join(", ")
                )),
                Some(settings.code.unwrap_or(403)),
                audit,
                warnings,
            );
        }
    }
    if let Some(label) = &settings.add_label {
        let mut object = request.request.object.clone();
        let has = object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(&label.key))
            .is_some();
        if !has && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(label.key.clone(), Value::String(label.value.clone()));
            }
            return mutate_request(object);
        }
    }
    if warnings.is_none() && audit.is_none() {
        return accept_request();
    }
    let response = json!({
        "accepted": true,
        "message": null,
        "code": null,
        "mutated_object": null,
        "audit_annotations": audit,
        "warnings": warnings.take(),
    });
    Ok(serde_json::to_vec(&response)?)
}

/// Accepted with the host's answer as the message, or rejected with its error.
fn answer(result: Result<String, String>) -> CallResult {
    match result {
        Ok(message) => Ok(serde_json::to_vec(&json!({
            "accepted": true, "message": message, "code": null,
            "mutated_object": null, "audit_annotations": null, "warnings": null,
        }))?),
        Err(error) => reject_request(Some(format!("host error: {error}")), Some(500), None, None),
    }
}

fn host_call(call: &Call, request: &ValidationRequest<Settings>) -> Result<String, String> {
    let namespace = request.request.namespace.clone();
    let text = |v: &dyn erased::Show| v.show();
    match call {
        Call::NamespaceLabels => kubernetes::get_resource::<Namespace>(&GetResourceRequest {
            api_version: "v1".to_owned(),
            kind: "Namespace".to_owned(),
            name: namespace,
            namespace: None,
            disable_cache: false,
            field_masks: None,
        })
        .map(|ns| text(&ns.metadata.labels.unwrap_or_default())),
        Call::PodsInNamespace {
            label_selector,
            field_selector,
            field_masks,
        } => kubernetes::list_resources_by_namespace::<Pod>(&ListResourcesByNamespaceRequest {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespace,
            label_selector: label_selector.clone(),
            field_selector: field_selector.clone(),
            field_masks: field_masks.clone(),
        })
        .map(|list| {
            let pods: Vec<Value> = list
                .items
                .iter()
                .map(|p| {
                    json!({
                        "name": p.metadata.name,
                        "images": p.spec.iter().flat_map(|s| s.containers.iter()).map(|c| c.image.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            text(&pods)
        }),
        Call::AllNamespaces => kubernetes::list_all_resources::<Namespace>(&ListAllResourcesRequest {
            api_version: "v1".to_owned(),
            kind: "Namespace".to_owned(),
            label_selector: None,
            field_selector: None,
            field_masks: None,
        })
        .map(|list| {
            text(
                &list
                    .items
                    .iter()
                    .map(|n| n.metadata.name.clone().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
        }),
        Call::CanI { verb, resource } => kubernetes::can_i(CanIRequest {
            subject_access_review: SubjectAccessReview {
                groups: Some(request.request.user_info.groups.iter().cloned().collect()),
                resource_attributes: ResourceAttributes {
                    namespace: Some(namespace),
                    verb: verb.clone(),
                    resource: resource.clone(),
                    ..ResourceAttributes::default()
                },
                user: request.request.user_info.username.clone(),
            },
            disable_cache: true,
        })
        .map(|status| {
            text(&json!({"allowed": status.allowed, "denied": status.denied, "reason": status.reason}))
        }),
        Call::ImageDigests => {
            let pod: Pod =
                serde_json::from_value(request.request.object.clone()).map_err(|e| e.to_string())?;
            let mut digests = BTreeMap::new();
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let image = container.image.clone().unwrap_or_default();
                let digest = oci::get_manifest_digest(&image).map_err(|e| e.to_string())?;
                digests.insert(image, digest.digest);
            }
            Ok(text(&digests))
        }
        Call::Manifest { image } => oci::get_manifest(image).map(|m| match m {
            oci::OciManifestResponse::Image(m) => {
                format!("image manifest with {} layers", m.layers().len())
            }
            oci::OciManifestResponse::ImageIndex(i) => {
                format!("image index of {} manifests", i.manifests().len())
            }
        }),
        Call::ManifestConfig { image } => oci::get_manifest_and_config(image).map(|m| {
            text(&json!({
                "digest": m.digest,
                "layers": m.manifest.layers().len(),
                "architecture": m.config.architecture().to_string(),
            }))
        }),
        Call::VerifyPubKeys { keys } => {
            let pod: Pod =
                serde_json::from_value(request.request.object.clone()).map_err(|e| e.to_string())?;
            let image = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find_map(|c| c.image.clone())
                .unwrap_or_default();
            verification::verify_pub_keys_image(&image, keys.clone(), None)
                .map(|v| text(&json!({"is_trusted": v.is_trusted, "digest": v.digest})))
        }
        Call::Lookup { host } => net::lookup_host(host).map(|r| text(&r.ips)),
        Call::CertificateTrusted {
            pem,
            chain,
            not_after,
        } => {
            let cert = |pem: &String| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            };
            crypto::verify_cert(
                cert(pem),
                (!chain.is_empty()).then(|| chain.iter().map(cert).collect()),
                not_after.clone(),
            )
            .map(|answer| match answer {
                crypto::BoolWithReason::True => "trusted".to_owned(),
                crypto::BoolWithReason::False(reason) => reason,
            })
        }
    }
    .map_err(|e| e.to_string())
}

/// JSON text of whatever the SDK returned.
mod erased {
    /// Shows a value as compact JSON.
    pub(crate) trait Show {
        fn show(&self) -> String;
    }

    impl<T: serde::Serialize> Show for T {
        fn show(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

fn misbehave(how: &str) -> CallResult {
    match how {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => std::process::abort(),
        "garbage" => Ok(b"this is not a ValidationResponse".to_vec()),
        "huge-answer" => Ok(serde_json::to_vec(&json!({
            "accepted": false, "message": "x".repeat(8 << 20),
        }))?),
        _ => Err("the probe was told to fail".into()),
    }
}
