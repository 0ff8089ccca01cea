//! Kubewarden policies in Palisade's runtime: a waPC module written with kubewarden-policy-sdk
//! from crates.io (`tests/guests/kubewarden-probe`) loads, checks its settings, validates,
//! mutates (the patch policy-server computes), logs and calls host capabilities, and every way
//! it misbehaves is contained as a component's would be. Hand-written waPC modules cover what
//! the SDK never does (protocol breaches, another protocol version).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use palisade_runtime::admission::{Instances, Options, Policy, Prepared};
use palisade_runtime::capabilities::cluster::ManifestDirectory;
use palisade_runtime::capabilities::session::Session;
use palisade_runtime::capabilities::{
    Capabilities, DataTables, FixedClock, Grants, MemoryStore, OperationGrants, ResourceKind,
    StateLimits,
};
use palisade_runtime::kubewarden::{ExecutionMode, Metadata};
use palisade_runtime::{Abi, Engine, EngineConfig, EvalError, Limits, LoadError};
use palisade_sdk::testing::complete_request;
use palisade_sdk::wire::{AdmissionRequest, Operation, Verdict};
use serde_json::json;

pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

pub(crate) fn probe_bytes() -> Vec<u8> {
    std::fs::read(e2e::artefact_for("kubewarden-probe", e2e::KUBEWARDEN))
        .expect("the Kubewarden probe (make policies)")
}

fn probe() -> Arc<Prepared> {
    static PREPARED: OnceLock<Arc<Prepared>> = OnceLock::new();
    Arc::clone(PREPARED.get_or_init(|| {
        Arc::new(Prepared::new(engine(), &probe_bytes()).expect("the probe loads"))
    }))
}

pub(crate) fn limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        memory: 32 << 20,
    }
}

fn configured(settings: &serde_json::Value, grants: Grants) -> Policy {
    probe()
        .configure(
            &settings.to_string(),
            Options {
                limits: Some(limits()),
                grants,
                instances: Instances::Warm { max_idle: 1 },
                ..Options::default()
            },
        )
        .expect("valid settings")
}

pub(crate) fn pod(privileged: bool, labels: &serde_json::Value) -> AdmissionRequest {
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels},
        "spec": {"containers": [
            {"name": "app", "image": "registry.example/app:1"},
            {"name": "tools", "image": "registry.example/tools:1", "securityContext": {"privileged": privileged}},
        ]},
    });
    complete_request(json!({"object": object}), "kubewarden").expect("request")
}

fn verdict(policy: &Policy, request: &AdmissionRequest) -> Verdict {
    policy
        .evaluate_blocking(request)
        .result
        .expect("the probe decides")
}

#[test]
fn an_sdk_policy_is_recognised_and_named_by_its_metadata() {
    assert_eq!(probe().abi(), &Abi::Kubewarden);
    // Without metadata: Kubewarden's default, a waPC policy known by a generic name.
    assert_eq!(probe().metadata().name, "kubewarden-policy");
    assert!(probe().kubewarden().is_none());
    let metadata: Metadata = serde_json::from_value(json!({
        "protocolVersion": "v1",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["*"]}],
        "annotations": {"io.kubewarden.policy.title": "probe", "io.kubewarden.policy.version": "0.1.0"},
        "mutating": true,
        "contextAwareResources": [{"apiVersion": "v1", "kind": "Namespace"}],
    }))
    .expect("metadata");
    let annotated = metadata.embed(&probe_bytes()).expect("embedded");
    let prepared = Prepared::new(engine(), &annotated).expect("loads");
    assert_eq!(prepared.metadata().name, "probe");
    assert_eq!(prepared.metadata().version, "0.1.0");
    assert!(prepared.metadata().mutating);
    assert_eq!(prepared.metadata().rules[0].operations.len(), 4);
    assert_eq!(
        prepared.metadata().rules[0].operations[0],
        Operation::Create
    );
    let kubewarden = prepared.kubewarden().expect("kubewarden metadata");
    assert_eq!(kubewarden.execution_mode, ExecutionMode::Wapc);
    assert_eq!(kubewarden.context_aware_resources.len(), 1);
}

#[test]
fn metadata_for_another_execution_mode_is_refused_at_load() {
    let metadata: Metadata = serde_json::from_value(json!({
        "protocolVersion": "Unknown", "rules": [], "mutating": false, "executionMode": "opa",
    }))
    .expect("metadata");
    let error = Prepared::new(engine(), &metadata.embed(&probe_bytes()).expect("embedded"))
        .expect_err("an opa policy is not a waPC one");
    assert!(error.to_string().contains("executionMode opa"), "{error}");
}

#[test]
fn a_privileged_pod_is_rejected_with_the_policys_message_and_code() {
    let policy = configured(
        &json!({"denyPrivileged": true, "code": 418}),
        Grants::default(),
    );
    let denied = verdict(&policy, &pod(true, &json!({})));
    assert!(!denied.allowed);
    assert_eq!(
        denied.message,
        "privileged containers are not allowed: tools"
    );
    assert_eq!(denied.code, Some(418));
    // policy-server gives no reason: the status has only message and code.
    assert_eq!(denied.reason, "");
    assert!(verdict(&policy, &pod(false, &json!({}))).allowed);
}

#[test]
fn a_mutated_object_becomes_the_jsonpatch_policy_server_sends() {
    let policy = configured(
        &json!({"addLabel": {"key": "team", "value": "payments"}}),
        Grants::default(),
    );
    let mutated = verdict(&policy, &pod(false, &json!({"app": "web"})));
    assert!(mutated.allowed);
    assert_eq!(
        serde_json::to_value(&mutated.patch).expect("json"),
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "payments"}])
    );
    // Already labelled: accepted without a mutation, so no patch.
    let unchanged = verdict(&policy, &pod(false, &json!({"team": "payments"})));
    assert_eq!(unchanged.patch, None);
}

#[test]
fn warnings_and_audit_annotations_come_through() {
    let policy = configured(
        &json!({"warning": "image tags are mutable", "auditAnnotation": ["checked-by", "probe"]}),
        Grants::default(),
    );
    let allowed = verdict(&policy, &pod(false, &json!({})));
    assert_eq!(allowed.warnings, ["image tags are mutable"]);
    assert_eq!(allowed.audit_annotations["checked-by"], "probe");
}

#[test]
fn settings_are_checked_by_the_policys_validate_settings() {
    let rejected = probe()
        .configure(
            r#"{"addLabel": {"key": "", "value": "x"}}"#,
            Options::default(),
        )
        .expect_err("an empty key is invalid");
    assert!(
        matches!(&rejected, LoadError::Settings(s) if s.message == "addLabel.key must not be empty"),
        "{rejected}"
    );
    // Settings the SDK cannot even read are a settings error too (policy-server: valid false).
    let unreadable = probe()
        .configure(r#"{"denyPrivileged": "yes"}"#, Options::default())
        .expect_err("not a boolean");
    assert!(
        matches!(&unreadable, LoadError::Settings(s) if s.message.contains("invalid type")),
        "{unreadable}"
    );
    // No settings at all: the policy gets `{}`.
    probe()
        .validate_settings("")
        .expect("the defaults are valid");
}

fn hostile(behaviour: &str) -> EvalError {
    let policy = configured(&json!({"hostile": behaviour}), Grants::default());
    policy
        .evaluate_blocking(&pod(false, &json!({})))
        .result
        .expect_err("the probe misbehaves")
}

#[test]
fn misbehaviour_is_contained_as_for_every_abi() {
    assert!(matches!(hostile("loop"), EvalError::Timeout(_)));
    assert!(matches!(hostile("memory"), EvalError::MemoryLimit { .. }));
    assert!(matches!(hostile("trap"), EvalError::Trap { .. }));
    let garbage = hostile("garbage");
    assert!(
        matches!(&garbage, EvalError::BadOutput(m) if m.contains("not a ValidationResponse")),
        "{garbage}"
    );
    let error = hostile("error");
    assert!(
        matches!(&error, EvalError::Policy(e) if e.to_string().contains("the probe was told to fail")),
        "{error}"
    );
}

#[test]
fn a_warm_instance_interrupted_at_its_deadline_is_not_reused() {
    // policy-evaluator rebuilds its waPC stack after an interrupt: a guest stopped mid-call
    // may hold locks. Here the instance is dropped and the next request starts a new one.
    let looping = configured(&json!({"hostile": "loop"}), Grants::default());
    for _ in 0..2 {
        let evaluation = looping.evaluate_blocking(&pod(false, &json!({})));
        assert!(matches!(evaluation.result, Err(EvalError::Timeout(_))));
        assert!(evaluation.started);
        assert_eq!(looping.instances().idle, 0);
    }
    let sound = configured(&json!({"denyPrivileged": true}), Grants::default());
    assert!(sound.evaluate_blocking(&pod(true, &json!({}))).started);
    assert!(!sound.evaluate_blocking(&pod(true, &json!({}))).started);
}

fn call(settings: &serde_json::Value, grants: Grants) -> Verdict {
    verdict(&configured(settings, grants), &pod(false, &json!({})))
}

#[test]
fn host_capabilities_are_refused_unless_granted_with_kubewardens_words() {
    let refused = call(&json!({"call": "namespaceLabels"}), Grants::default());
    assert!(!refused.allowed);
    assert!(
        refused.message.contains(
            "Policy has not been granted access to the 'kubernetes/get_resource' host capability"
        ),
        "{}",
        refused.message
    );
    let all = Grants {
        operations: OperationGrants::all(),
        ..Grants::default()
    };
    let binding = call(
        &json!({"raw": {"binding": "other", "namespace": "oci", "operation": "v1/manifest_digest", "payload": "x"}}),
        all.clone(),
    );
    assert!(
        binding.message.contains("unknown binding: other"),
        "{}",
        binding.message
    );
    let namespace = call(
        &json!({"raw": {"binding": "kubewarden", "namespace": "storage", "operation": "get", "payload": {}}}),
        all.clone(),
    );
    assert!(
        namespace.message.contains("unknown namespace: storage"),
        "{}",
        namespace.message
    );
    let operation = call(
        &json!({"raw": {"binding": "kubewarden", "namespace": "tracing", "operation": "emit", "payload": {}}}),
        all,
    );
    assert!(
        operation.message.contains("unknown operation: emit"),
        "{}",
        operation.message
    );
}

/// A hand-written waPC guest: `__guest_call` answers with `response` (a data segment at 1024)
/// through `import` (`__guest_response` or `__guest_error`), at `ptr` with `len`.
fn wapc_guest(import: &str, ptr: u32, len: usize, response: &str, result: i32) -> Vec<u8> {
    let escaped: String = response.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
            (import "wapc" "__guest_request" (func $request (param i32 i32)))
            (import "wapc" "{import}" (func $answer (param i32 i32)))
            (memory (export "memory") 1)
            (data (i32.const 1024) "{escaped}")
            (func (export "__guest_call") (param i32 i32) (result i32)
              (call $request (i32.const 0) (i32.const 512))
              (call $answer (i32.const {ptr}) (i32.const {len}))
              (i32.const {result})))"#
    ))
    .expect("wat")
}

#[test]
fn a_guest_answering_another_protocol_version_is_refused() {
    let error = Prepared::new(
        engine(),
        &wapc_guest("__guest_response", 1024, 4, r#""v2""#, 1),
    )
    .expect_err("v2 is not a protocol");
    assert!(
        matches!(&error, LoadError::AbiVersion { found, .. } if found.contains("\"v2\"")),
        "{error}"
    );
}

#[test]
fn a_guest_pointing_outside_its_memory_breaks_the_protocol() {
    let error = Prepared::new(
        engine(),
        &wapc_guest("__guest_response", 65_530, 64, r#""v1""#, 1),
    )
    .expect_err("out of bounds");
    assert!(
        error
            .to_string()
            .contains("calling the policy while loading it failed"),
        "{error}"
    );
    assert!(
        format!("{error:?}").contains("outside its memory"),
        "{error:?}"
    );
}

#[test]
fn a_guest_error_while_loading_is_named() {
    let error = Prepared::new(engine(), &wapc_guest("__guest_error", 1024, 6, "broken", 0))
        .expect_err("protocol_version fails");
    assert!(
        format!("{error:?}").contains("protocol_version failed: broken"),
        "{error:?}"
    );
}

#[test]
fn a_module_without_exported_memory_is_refused() {
    let module = wat::parse_str(
        r#"(module (memory 1) (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#,
    )
    .expect("wat");
    let error = Prepared::new(engine(), &module).expect_err("no memory export");
    assert!(
        matches!(&error, LoadError::MissingExport(m) if m.contains("\"memory\"")),
        "{error}"
    );
}

/// Capabilities whose Kubernetes objects come from `kubewarden-cluster/`, at a fixed time.
pub(crate) fn cluster_capabilities() -> Capabilities {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/kubewarden-cluster");
    Capabilities::new(
        Arc::new(FixedClock(Duration::from_secs(1_767_225_600))),
        Arc::new(MemoryStore::new(StateLimits::default())),
        DataTables::default(),
    )
    .with_cluster(Arc::new(
        ManifestDirectory::load(&dir).expect("the test cluster"),
    ))
}

/// Every host operation, and the kinds `kinds` (`apiVersion/Kind`).
pub(crate) fn granted(kinds: &[&str]) -> Grants {
    Grants {
        operations: OperationGrants::all(),
        kubernetes: kinds
            .iter()
            .map(|k| {
                let (api_version, kind) = k.rsplit_once('/').expect("apiVersion/Kind");
                ResourceKind {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                }
            })
            .collect(),
        ..Grants::default()
    }
}

/// The probe's answer to `settings` for a Pod in `shop` created by alice of `shop-operators`.
fn answer_with(
    capabilities: Capabilities,
    settings: &serde_json::Value,
    grants: Grants,
) -> Verdict {
    let policy = probe()
        .configure(
            &settings.to_string(),
            Options {
                capabilities: Some(Arc::new(capabilities)),
                grants,
                limits: Some(limits()),
                ..Options::default()
            },
        )
        .expect("valid settings");
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "registry.example/web:2"}]},
    });
    let request = complete_request(
        json!({"object": object, "userInfo": {"username": "alice", "groups": ["shop-operators"]}}),
        "kubewarden",
    )
    .expect("request");
    verdict(&policy, &request)
}

fn answered(verdict: &Verdict) -> serde_json::Value {
    assert!(verdict.allowed, "the host refused: {}", verdict.message);
    serde_json::from_str(&verdict.message).expect("the probe answers with the host's JSON")
}

#[test]
fn kubernetes_objects_are_read_through_the_sdks_typed_clients() {
    let labels = answer_with(
        cluster_capabilities(),
        &json!({"call": "namespaceLabels"}),
        granted(&["v1/Namespace"]),
    );
    assert_eq!(
        answered(&labels),
        json!({"environment": "prod", "team": "payments"})
    );
    let pods = answer_with(
        cluster_capabilities(),
        &json!({"call": {"podsInNamespace": {"labelSelector": "app in (web, api)"}}}),
        granted(&["v1/Pod"]),
    );
    assert_eq!(
        answered(&pods),
        json!([{"name": "web", "images": ["registry.example/web:2"]}])
    );
    let running = answer_with(
        cluster_capabilities(),
        &json!({"call": {"podsInNamespace": {"fieldSelector": "status.phase!=Running", "fieldMasks": ["metadata.name", "apiVersion", "kind", "spec.containers.name"]}}}),
        granted(&["v1/Pod"]),
    );
    assert_eq!(
        answered(&running),
        json!([{"name": "worker", "images": [null]}])
    );
    let namespaces = answer_with(
        cluster_capabilities(),
        &json!({"call": "allNamespaces"}),
        granted(&["v1/Namespace"]),
    );
    assert_eq!(answered(&namespaces), json!(["dev", "shop"]));
}

#[test]
fn can_i_answers_from_the_clusters_rbac() {
    let delete = answer_with(
        cluster_capabilities(),
        &json!({"call": {"canI": {"verb": "delete", "resource": "pods"}}}),
        granted(&[]),
    );
    let status = answered(&delete);
    assert_eq!(status["allowed"], true);
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("operators-delete-pods")),
        "{status}"
    );
    let create = answer_with(
        cluster_capabilities(),
        &json!({"call": {"canI": {"verb": "create", "resource": "deployments"}}}),
        granted(&[]),
    );
    assert_eq!(answered(&create)["allowed"], false);
}

#[test]
fn kubernetes_refusals_name_the_kind_or_the_missing_cluster() {
    let kind = answer_with(
        cluster_capabilities(),
        &json!({"call": "namespaceLabels"}),
        granted(&["v1/Pod"]),
    );
    assert!(
        kind.message
            .contains("Policy has not been granted access to Kubernetes v1/Namespace resources"),
        "{}",
        kind.message
    );
    let nowhere = answer_with(
        Capabilities::default(),
        &json!({"call": "namespaceLabels"}),
        granted(&["v1/Namespace"]),
    );
    assert!(
        nowhere
            .message
            .contains("this host serves no Kubernetes resources"),
        "{}",
        nowhere.message
    );
    let missing = answer_with(
        cluster_capabilities(),
        &json!({"raw": {"binding": "kubewarden", "namespace": "kubernetes", "operation": "get_resource",
                "payload": {"api_version": "v1", "kind": "Namespace", "name": "staging", "disable_cache": false}}}),
        granted(&["v1/Namespace"]),
    );
    assert!(
        missing.message.contains("Namespace staging (v1) not found"),
        "{}",
        missing.message
    );
}

#[test]
fn dns_lookups_are_off_unless_the_host_turns_them_on() {
    let off = answer_with(
        Capabilities::default(),
        &json!({"call": {"lookup": {"host": "localhost"}}}),
        granted(&[]),
    );
    assert!(
        off.message.contains("DNS lookups are turned off"),
        "{}",
        off.message
    );
    let on = answer_with(
        Capabilities::default().with_dns(true),
        &json!({"call": {"lookup": {"host": "localhost"}}}),
        granted(&[]),
    );
    let ips = answered(&on);
    assert!(
        ips.as_array()
            .is_some_and(|ips| ips.iter().any(|ip| ip == "127.0.0.1" || ip == "::1")),
        "{ips}"
    );
}

#[test]
fn a_certificate_is_trusted_when_it_chains_to_the_given_root() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dated = |mut params: CertificateParams| {
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        params
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = dated(CertificateParams::new(Vec::new()).expect("params"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = dated(CertificateParams::new(vec!["web.example".to_owned()]).expect("params"))
        .signed_by(&leaf_key, &issuer)
        .expect("leaf")
        .pem();
    let trusted = answer_with(
        Capabilities::default(),
        &json!({"call": {"certificateTrusted": {"pem": leaf, "chain": [ca_pem]}}}),
        granted(&[]),
    );
    assert_eq!(trusted.message, "trusted");
    let expired = answer_with(
        Capabilities::default(),
        &json!({"call": {"certificateTrusted": {"pem": leaf, "chain": [ca_pem], "notAfter": "2028-01-01T00:00:00Z"}}}),
        granted(&[]),
    );
    assert_eq!(
        expired.message,
        "Certificate not trusted: Certificate is being used after its expiration date"
    );
}

#[test]
fn registry_and_sigstore_operations_say_what_is_missing() {
    let digest = answer_with(
        Capabilities::default(),
        &json!({"call": "imageDigests"}),
        granted(&[]),
    );
    assert!(
        digest
            .message
            .contains("this host was given no image registry to read"),
        "{}",
        digest.message
    );
    let verify = answer_with(
        Capabilities::default(),
        &json!({"call": {"verifyPubKeys": {"keys": ["-----BEGIN PUBLIC KEY-----"]}}}),
        granted(&[]),
    );
    assert!(
        verify
            .message
            .contains("this host was given no image signature verification"),
        "{}",
        verify.message
    );
}

/// `registry.example/web:2` (the probe's Pod's image) in an OCI layout, signed with `key` when
/// given; its store, and the image's digest.
fn signed_layout(
    dir: &std::path::Path,
    key: Option<&palisade_supply_chain::keys::SigningKey>,
) -> (Arc<palisade_oci::ImageStore>, String) {
    use palisade_supply_chain::attach::{self, Destination, NewLayer};
    use palisade_supply_chain::cosign::{self, Attached, SimpleSigning};
    let image = palisade_oci::Image::from_module(
        &wat::parse_str(r#"(module (func (export "proxy_abi_version_0_2_1")))"#).expect("wat"),
        palisade_oci::Variant::Compat,
        &[],
    )
    .expect("image");
    palisade_oci::layout::write_dir(dir, &[("registry.example/web:2", &image)]).expect("layout");
    let store = Arc::new(
        palisade_oci::ImageStore::layout(dir, palisade_oci::StoreOptions::default())
            .expect("store"),
    );
    let verifier = palisade_supply_chain::image::ImageVerifier::new(
        Arc::clone(&store),
        None,
        std::time::Duration::from_secs(1),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let resolved = runtime
        .block_on(verifier.resolve("registry.example/web:2"))
        .expect("resolved");
    if let Some(key) = key {
        let payload = SimpleSigning::new(
            &resolved.repository,
            &resolved.digest,
            &std::collections::BTreeMap::new(),
        )
        .to_json();
        let layer = NewLayer {
            media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            annotations: [(
                cosign::SIGNATURE_ANNOTATION.to_owned(),
                palisade_supply_chain::dsse::encode_base64(&key.sign(&payload).expect("sign")),
            )]
            .into(),
            bytes: payload,
        };
        runtime
            .block_on(attach::append(
                Destination::Layout(dir),
                &resolved,
                Attached::Signatures,
                layer,
            ))
            .expect("signed");
    }
    (store, resolved.digest.to_string())
}

#[test]
fn sigstore_verification_is_answered_from_the_images_signatures() {
    use palisade_supply_chain::keys::SigningKey;
    let dir = tempfile::tempdir().expect("dir");
    let team = SigningKey::generate_p256();
    let (store, digest) = signed_layout(dir.path(), Some(&team));
    let config = palisade_webhook::registry::RegistryConfig::default();
    let capabilities = || {
        Capabilities::default().with_supply_chain(Arc::new(
            config.supply_chain(Arc::clone(&store)).expect("verifier"),
        ))
    };
    // The SDK's verify_pub_keys_image (oci/v2/verify, SigstorePubKeyVerify): trusted, with the
    // digest that was verified.
    let trusted = answer_with(
        capabilities(),
        &json!({"call": {"verifyPubKeys": {"keys": [team.public_key().to_pem()]}}}),
        granted(&[]),
    );
    assert_eq!(
        answered(&trusted),
        json!({"is_trusted": true, "digest": digest}),
        "{}",
        trusted.message
    );
    // Every key must have signed: one that did not fails the call, naming why.
    let other = SigningKey::generate_p256().public_key().to_pem();
    let refused = answer_with(
        capabilities(),
        &json!({"call": {"verifyPubKeys": {"keys": [team.public_key().to_pem(), other]}}}),
        granted(&[]),
    );
    assert!(
        refused
            .message
            .contains("signer 1: no signature of registry.example/web@sha256:"),
        "{}",
        refused.message
    );
    // Raw v1 and v2 requests of each kind the host answers, and the one it does not.
    let raw = |operation: &str, payload: serde_json::Value| {
        answer_with(
            capabilities(),
            &json!({"raw": {"binding": "kubewarden", "namespace": "oci", "operation": operation, "payload": payload}}),
            granted(&[]),
        )
        .message
    };
    let v1 = raw(
        "v1/verify",
        json!({"SigstorePubKeyVerify": {"image": "registry.example/web:2", "pub_keys": [team.public_key().to_pem()], "annotations": null}}),
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&v1).expect("json"),
        json!({"is_trusted": true, "digest": digest}),
        "{v1}"
    );
    let keyless = raw(
        "v2/verify",
        json!({"type": "SigstoreKeylessVerify", "image": "registry.example/web:2", "keyless": [{"issuer": "https://issuer.example", "subject": "dev@example.com"}]}),
    );
    assert!(
        keyless.contains("signer 0: no signature of registry.example/web@sha256:")
            && keyless.contains("the layer has no certificate: it was signed with a key"),
        "{keyless}"
    );
    let certificate = raw(
        "v2/verify",
        json!({"type": "SigstoreCertificateVerify", "image": "registry.example/web:2", "certificate": [45], "require_rekor_bundle": false}),
    );
    assert!(
        certificate.contains("verification with a given certificate is not supported"),
        "{certificate}"
    );
    // An unsigned image.
    let unsigned_dir = tempfile::tempdir().expect("dir");
    let (unsigned, _) = signed_layout(unsigned_dir.path(), None);
    let missing = answer_with(
        Capabilities::default()
            .with_supply_chain(Arc::new(config.supply_chain(unsigned).expect("verifier"))),
        &json!({"call": {"verifyPubKeys": {"keys": [team.public_key().to_pem()]}}}),
        granted(&[]),
    );
    assert!(
        missing.message.contains("has no signature"),
        "{}",
        missing.message
    );
}

#[test]
fn a_recorded_session_replays_without_the_cluster() {
    let settings = json!({"call": "namespaceLabels"});
    let recording = Arc::new(Session::record());
    let live = answer_with(
        cluster_capabilities().with_session(Arc::clone(&recording)),
        &settings,
        granted(&["v1/Namespace"]),
    );
    let recorded = recording.recorded();
    assert!(recorded.contains("!KubernetesGetResource"), "{recorded}");
    let replay = Arc::new(Session::replay(&recorded).expect("a session"));
    let replayed = answer_with(
        Capabilities::default().with_session(Arc::clone(&replay)),
        &settings,
        granted(&["v1/Namespace"]),
    );
    assert_eq!(replayed.message, live.message);
    assert_eq!(replay.left_over(), 0);
    // A different question than the recorded one is an error, not an answer.
    let replay = Arc::new(Session::replay(&recorded).expect("a session"));
    let other = answer_with(
        Capabilities::default().with_session(replay),
        &json!({"call": "allNamespaces"}),
        granted(&["v1/Namespace"]),
    );
    assert!(
        other.message.contains("Replay error: unexpected request"),
        "{}",
        other.message
    );
}

/// A policy-server policies.yml serving the probe in every shape policy-server knows.
fn policies_yml(dir: &Path) -> std::path::PathBuf {
    let module = e2e::artefact_for("kubewarden-probe", e2e::KUBEWARDEN);
    let module = format!("file://{}", module.display());
    let wasi = e2e::artefact_for("kubewarden-wasi", e2e::KUBEWARDEN);
    let wasi = format!("file://{}", wasi.display());
    let text = format!(
        r#"
privileged:
  module: {module}
  settings: {{denyPrivileged: true}}
  namespacedName: {{namespace: "", name: privileged}}
labels:
  module: {module}
  allowedToMutate: true
  settings: {{addLabel: {{key: team, value: payments}}}}
labels-not-allowed:
  module: {module}
  settings: {{addLabel: {{key: team, value: payments}}}}
labels-watched:
  module: {module}
  policyMode: monitor
  allowedToMutate: true
  settings: {{denyPrivileged: true, addLabel: {{key: team, value: payments}}}}
worded:
  module: {module}
  message: privileged pods are not allowed in this cluster
  settings: {{denyPrivileged: true}}
namespaces:
  module: {module}
  settings: {{call: namespaceLabels}}
  hostCapabilities: ["kubernetes/get_resource"]
  contextAwareResources: [{{apiVersion: v1, kind: Namespace}}]
wasi-privileged:
  module: {wasi}
  settings: {{denyPrivileged: true, code: 422}}
wasi-labels:
  module: {wasi}
  allowedToMutate: true
  settings: {{addLabel: [team, payments]}}
either:
  expression: "strict() || labelled()"
  message: the pod is neither unprivileged nor labelled
  policies:
    strict: {{module: {module}, settings: {{denyPrivileged: true}}}}
    labelled: {{module: {module}, settings: {{addLabel: {{key: team, value: x}}}}}}
"#
    );
    let path = dir.join("policies.yml");
    std::fs::write(&path, text).expect("policies.yml");
    path
}

#[test]
fn policy_servers_policies_yml_is_served_with_its_semantics() {
    let dir = tempfile::tempdir().expect("dir");
    let server = crate::serving::serve(policies_yml(dir.path()));
    let review = |privileged: bool| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": pod(privileged, &json!({"app": "web"})),
        })
    };
    let post = |id: &str, privileged: bool| {
        crate::serving::post_review(server.address, id, &review(privileged))
    };
    let rejected = post("privileged", true);
    assert_eq!(rejected["allowed"], false);
    assert_eq!(
        rejected["status"],
        json!({"code": 403, "message": "privileged containers are not allowed: tools"})
    );
    assert_eq!(post("privileged", false)["allowed"], true);
    // allowedToMutate: the patch comes back on /validate, as policy-server sends it.
    let mutated = post("labels", false);
    assert_eq!(mutated["patchType"], "JSONPatch");
    // Not allowed to mutate: a mutation is a rejection, in policy-server's words.
    let refused = post("labels-not-allowed", false);
    assert_eq!(refused["allowed"], false);
    assert_eq!(
        refused["status"]["message"],
        "Request rejected by policy labels-not-allowed. The policy attempted to mutate the request, but it is currently configured to not allow mutations."
    );
    // Monitor mode: accepted, and without the patch.
    let watched = post("labels-watched", true);
    assert_eq!(watched["allowed"], true);
    assert!(watched.get("patch").is_none(), "{watched}");
    // /audit (the audit scanner's): the policy's own decision, whatever its mode.
    let audited =
        crate::serving::post_review_to(server.address, "audit/labels-watched", &review(true));
    assert_eq!(audited["allowed"], false, "{audited}");
    assert_eq!(
        audited["status"]["message"],
        "privileged containers are not allowed: tools"
    );
    let worded = post("worded", true);
    assert_eq!(
        worded["status"]["message"],
        "privileged pods are not allowed in this cluster"
    );
    // Granted kubernetes/get_resource but served no cluster: the host says so.
    let namespaces = post("namespaces", false);
    assert!(
        namespaces["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("this host serves no Kubernetes resources")),
        "{namespaces}"
    );
    // The group: strict() || labelled(); a member that mutates counts as rejecting.
    let group = post("either", true);
    assert_eq!(group["allowed"], false);
    assert!(
        group["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the pod is neither unprivileged nor labelled")),
        "{group}"
    );
    assert_eq!(post("either", false)["allowed"], true);
    // A WASI-mode policy, served from the same file.
    assert_eq!(
        post("wasi-privileged", true)["status"],
        json!({"code": 422, "message": "privileged containers are not allowed: tools"})
    );
    assert_eq!(post("wasi-privileged", false)["allowed"], true);
    assert_eq!(post("wasi-labels", false)["patchType"], "JSONPatch");
}

#[test]
fn policies_lists_the_kubewarden_metadata_of_a_module() {
    let dir = tempfile::tempdir().expect("dir");
    let module = e2e::artefact_for("pod-security", e2e::KUBEWARDEN);
    let config = dir.path().join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\npolicies:\n  - id: psa\n    module: {}\n",
            module.display()
        ),
    )
    .expect("config");
    let server = crate::serving::serve(config);
    let policies = crate::serving::policies(server.address);
    let psa = &policies[0];
    assert_eq!(psa["policy"], "pod-security 0.1.0");
    assert_eq!(psa["kubewarden"]["executionMode"], "kubewarden-wapc");
    assert_eq!(psa["kubewarden"]["backgroundAudit"], true);
    assert_eq!(psa["kubewarden"]["mutating"], true);
}

#[test]
fn pod_securitys_kubewarden_build_describes_itself_as_its_component_does() {
    let component = Prepared::new(
        engine(),
        &e2e::read_artefact("pod-security").expect("component"),
    )
    .expect("the component loads");
    let bytes = std::fs::read(e2e::artefact_for("pod-security", e2e::KUBEWARDEN))
        .expect("the Kubewarden build (make policies)");
    let kubewarden = Prepared::new(engine(), &bytes).expect("the waPC module loads");
    assert_eq!(kubewarden.abi(), &Abi::Kubewarden);
    assert_eq!(kubewarden.metadata(), component.metadata());
    let embedded = kubewarden.kubewarden().expect("its metadata is embedded");
    assert_eq!(embedded.execution_mode, ExecutionMode::Wapc);
    assert!(embedded.mutating);
    // Settings are checked by the same code in both homes, with the same words.
    let error = |prepared: &Prepared| {
        prepared
            .validate_settings(r#"{"level": "strict"}"#)
            .expect_err("no such level")
            .to_string()
    };
    assert_eq!(error(&kubewarden), error(&component));
}

#[test]
fn the_webhook_answers_kubernetes_operations_from_its_manifest_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/kubewarden-cluster");
    let module = e2e::artefact_for("kubewarden-probe", e2e::KUBEWARDEN);
    let config = dir.path().join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: 127.0.0.1:0
hostOperations: {{kubernetesDirectory: {cluster}}}
policies:
  - id: namespaces
    module: {module}
    settings: {{call: namespaceLabels}}
    capabilities:
      host: ["kubernetes/get_resource"]
      kubernetes: [{{apiVersion: v1, kind: Namespace}}]
"#,
            cluster = cluster.display(),
            module = module.display()
        ),
    )
    .expect("config");
    let server = crate::serving::serve(config);
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": pod(false, &json!({})),
    });
    let answer = crate::serving::post_review(server.address, "namespaces", &review);
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(
        answer["status"]["message"],
        r#"{"environment":"prod","team":"payments"}"#
    );
}

#[test]
fn dns_in_host_operations_turns_lookups_on_for_granted_policies() {
    let module = e2e::artefact_for("kubewarden-probe", e2e::KUBEWARDEN);
    let serve = |dns: &str| {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("palisade.yaml");
        std::fs::write(
            &config,
            format!(
                r#"
listen: 127.0.0.1:0
{dns}
policies:
  - id: lookup
    module: {module}
    settings: {{call: {{lookup: {{host: localhost}}}}}}
    capabilities: {{host: ["net/v1/dns_lookup_host"]}}
  - id: not-granted
    module: {module}
    settings: {{call: {{lookup: {{host: localhost}}}}}}
"#,
                module = module.display()
            ),
        )
        .expect("config");
        let server = crate::serving::serve(config);
        (dir, server)
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": pod(false, &json!({})),
    });
    let message = |server: &crate::serving::Running, id: &str| {
        let answer = crate::serving::post_review(server.address, id, &review);
        (
            answer["allowed"] == true,
            answer["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let (_on_dir, on) = serve("hostOperations: {dns: true}");
    let (allowed, answered) = message(&on, "lookup");
    assert!(allowed, "{answered}");
    let ips: Vec<String> = serde_json::from_str(&answered).expect("a list of addresses");
    assert!(
        ips.iter().any(|ip| ip == "127.0.0.1" || ip == "::1"),
        "{ips:?}"
    );
    // Turned on for the host, still refused to a policy not granted the operation.
    let (allowed, refused) = message(&on, "not-granted");
    assert!(!allowed);
    assert!(
        refused.contains(
            "Policy has not been granted access to the 'net/v1/dns_lookup_host' host capability"
        ),
        "{refused}"
    );
    let (_off_dir, off) = serve("");
    let (allowed, off_message) = message(&off, "lookup");
    assert!(!allowed);
    assert!(
        off_message.contains("DNS lookups are turned off on this host (looking up \"localhost\")"),
        "{off_message}"
    );
}
