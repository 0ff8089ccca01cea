//! Kubewarden's host capabilities (`__host_call` with binding `kubewarden`), answered from the
//! policy's [`Scope`] as policy-evaluator's `runtimes/callback.rs` answers them: `tracing/log`
//! always; every other namespace only when the policy's grants allow `<namespace>/<operation>`
//! (the error text is Kubewarden's). Whatever the guest asks, the answer is bytes or an error
//! string for the guest; only the deadline ends the call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::capabilities::certificates::{self, CertificateRequest};
use crate::capabilities::cluster::{self, AccessReview, Cluster, ListQuery};
use crate::capabilities::registry::Registry;
use crate::capabilities::session::Request;
use crate::capabilities::supply_chain::{Identity, Pattern, SignatureQuery, Signer};
use crate::capabilities::{Capabilities, Grants, Scope};
use crate::component::before;

/// One host call as the guest made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) binding: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) payload: &'a [u8],
}

/// What the guest gets: the answer's bytes, or an error message.
pub(crate) type Answer = Result<Vec<u8>, String>;

/// Answers `call` for `policy`. `Err` only when the deadline passed while the host worked.
pub(crate) async fn answer(
    policy: &str,
    scope: Option<&Arc<Scope>>,
    deadline: Instant,
    call: Call<'_>,
) -> wasmtime::Result<Answer> {
    if call.binding != "kubewarden" {
        return Ok(Err(format!("unknown binding: {}", call.binding)));
    }
    if call.namespace == "tracing" {
        return Ok(match call.operation {
            "log" => {
                log(policy, call.payload);
                Ok(Vec::new())
            }
            other => Err(format!("unknown operation: {other}")),
        });
    }
    let Some(scope) = scope else {
        return Ok(Err(format!(
            "host capabilities are not available while the policy is loaded ({}/{})",
            call.namespace, call.operation
        )));
    };
    let path = format!("{}/{}", call.namespace, call.operation);
    if !scope
        .grants
        .operations
        .allows(call.namespace, call.operation)
    {
        tracing::warn!(policy, capability = %path, "the policy called a host capability it is not granted");
        return Ok(Err(format!(
            "Policy has not been granted access to the '{path}' host capability. The violation has been reported."
        )));
    }
    let request = match request(call) {
        Requested::Parsed(parsed) => *parsed,
        Requested::Malformed(message) => return Ok(Err(message)),
        Requested::Unknown => {
            return Ok(Err(match call.namespace {
                "oci" | "net" | "crypto" | "kubernetes" => {
                    format!("unknown operation: {}", call.operation)
                }
                other => format!("unknown namespace: {other}"),
            }));
        }
    };
    if let Some(refused) = refuse_kind(policy, &scope.grants, &request) {
        return Ok(Err(refused));
    }
    let session = scope.capabilities.session().cloned();
    if let Some(replayed) = session.as_ref().and_then(|s| s.replayed(&request.recorded)) {
        return Ok(replayed);
    }
    let answer = before(deadline, serve(scope, &request)).await?;
    if let Some(session) = &session {
        session.keep(&request.recorded, &answer);
    }
    Ok(answer)
}

/// A host operation the guest asked for, parsed.
struct Parsed {
    operation: Operation,
    /// As kwctl's session files name it.
    recorded: Request,
}

enum Operation {
    ManifestDigest(String),
    Manifest(String),
    ManifestConfig(String),
    Verify(SignatureQuery),
    Lookup(String),
    Certificate(CertificateRequest),
    List {
        query: OwnedQuery,
        masks: Option<BTreeSet<String>>,
    },
    Get {
        api_version: String,
        kind: String,
        name: String,
        namespace: Option<String>,
        masks: Option<BTreeSet<String>>,
    },
    CanI(AccessReview),
}

struct OwnedQuery {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
}

/// The SDK's `ListResourcesByNamespaceRequest` and `ListAllResourcesRequest`.
#[derive(Deserialize)]
struct ListRequest {
    api_version: String,
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    label_selector: Option<String>,
    #[serde(default)]
    field_selector: Option<String>,
    #[serde(default)]
    field_masks: Option<BTreeSet<String>>,
}

/// The SDK's `GetResourceRequest`.
#[derive(Deserialize)]
struct GetRequest {
    api_version: String,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    disable_cache: bool,
    #[serde(default)]
    field_masks: Option<BTreeSet<String>>,
}

/// The SDK's `CanIRequest`.
#[derive(Deserialize)]
struct CanIRequest {
    subject_access_review: SubjectAccessReview,
    #[serde(default)]
    disable_cache: bool,
}

#[derive(Deserialize, Serialize)]
struct SubjectAccessReview {
    #[serde(default)]
    groups: Option<Vec<String>>,
    resource_attributes: ResourceAttributes,
    user: String,
}

#[derive(Deserialize, Serialize)]
struct ResourceAttributes {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    resource: String,
    #[serde(default)]
    subresource: Option<String>,
    verb: String,
    #[serde(default)]
    version: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(call: Call<'_>) -> Result<T, String> {
    serde_json::from_slice(call.payload).map_err(|e| {
        format!(
            "the {}/{} request is malformed: {e}",
            call.namespace, call.operation
        )
    })
}

fn recorded(variant: &'static str, fields: serde_json::Value) -> Request {
    Request { variant, fields }
}

/// What a call asks for.
enum Requested {
    /// An operation, parsed (boxed: it is much larger than the others).
    Parsed(Box<Parsed>),
    /// A known operation whose payload does not parse: why.
    Malformed(String),
    /// No operation this host knows.
    Unknown,
}

/// The operation `call` names, parsed.
fn request(call: Call<'_>) -> Requested {
    let image = |variant: &'static str, make: fn(String) -> Operation| {
        parse::<String>(call).map(|image| Parsed {
            recorded: recorded(variant, json!({"image": image})),
            operation: make(image),
        })
    };
    let parsed = match (call.namespace, call.operation) {
        ("oci", "v1/manifest_digest") => image("OciManifestDigest", Operation::ManifestDigest),
        ("oci", "v1/oci_manifest") => image("OciManifest", Operation::Manifest),
        ("oci", "v1/oci_manifest_config") => {
            image("OciManifestAndConfig", Operation::ManifestConfig)
        }
        ("oci", "v1/verify" | "v2/verify") => verification(call),
        ("net", "v1/dns_lookup_host") => parse::<String>(call).map(|host| Parsed {
            recorded: recorded("DNSLookupHost", json!({"host": host})),
            operation: Operation::Lookup(host),
        }),
        ("crypto", "v1/is_certificate_trusted") => {
            parse::<CertificateRequest>(call).map(|request| Parsed {
                recorded: recorded("CryptoIsCertificateTrusted", json!({"request": request})),
                operation: Operation::Certificate(request),
            })
        }
        ("kubernetes", op @ ("list_resources_by_namespace" | "list_resources_all")) => {
            parse::<ListRequest>(call).and_then(|r| {
                let by_namespace = op == "list_resources_by_namespace";
                if by_namespace && r.namespace.is_none() {
                    return Err(format!(
                        "the kubernetes/{op} request is malformed: missing field `namespace`"
                    ));
                }
                let mut fields = json!({
                    "api_version": r.api_version, "kind": r.kind,
                    "label_selector": r.label_selector, "field_selector": r.field_selector,
                    "field_masks": r.field_masks,
                });
                let variant = if by_namespace {
                    fields["namespace"] = json!(r.namespace);
                    "KubernetesListResourceNamespace"
                } else {
                    "KubernetesListResourceAll"
                };
                Ok(Parsed {
                    recorded: recorded(variant, fields),
                    operation: Operation::List {
                        query: OwnedQuery {
                            api_version: r.api_version,
                            kind: r.kind,
                            namespace: if by_namespace { r.namespace } else { None },
                            label_selector: r.label_selector,
                            field_selector: r.field_selector,
                        },
                        masks: r.field_masks,
                    },
                })
            })
        }
        ("kubernetes", "get_resource") => parse::<GetRequest>(call).map(|r| Parsed {
            recorded: recorded(
                "KubernetesGetResource",
                json!({"api_version": r.api_version, "kind": r.kind, "name": r.name,
                       "namespace": r.namespace, "disable_cache": r.disable_cache,
                       "field_masks": r.field_masks}),
            ),
            operation: Operation::Get {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                namespace: r.namespace,
                masks: r.field_masks,
            },
        }),
        ("kubernetes", "can_i") => parse::<CanIRequest>(call).map(|r| {
            let review = &r.subject_access_review;
            let attributes = &review.resource_attributes;
            let access = AccessReview {
                user: review.user.clone(),
                groups: review.groups.iter().flatten().cloned().collect(),
                namespace: attributes.namespace.clone(),
                verb: attributes.verb.clone(),
                group: attributes.group.clone(),
                resource: attributes.resource.clone(),
                subresource: attributes.subresource.clone(),
                name: attributes.name.clone(),
                version: attributes.version.clone(),
            };
            Parsed {
                recorded: recorded(
                    "KubernetesCanI",
                    json!({"request": review, "disable_cache": r.disable_cache}),
                ),
                operation: Operation::CanI(access),
            }
        }),
        _ => return Requested::Unknown,
    };
    match parsed {
        Ok(parsed) => Requested::Parsed(Box::new(parsed)),
        Err(message) => Requested::Malformed(message),
    }
}

/// A sigstore verification request (v1: externally tagged; v2: `type`), recorded as kwctl
/// records it, as the query it makes (policy-evaluator `callback_handler/sigstore_verification.rs`):
/// every key, or every keyless identity, must have signed the image.
fn verification(call: Call<'_>) -> Result<Parsed, String> {
    let value: serde_json::Value = parse(call)?;
    let (variant, fields) = match (call.operation, value) {
        ("v2/verify", serde_json::Value::Object(mut map)) => {
            let variant = map
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_owned))
                .ok_or_else(|| "the oci/v2/verify request has no `type`".to_owned())?;
            (variant, serde_json::Value::Object(map))
        }
        (_, serde_json::Value::Object(map)) if map.len() == 1 => {
            map.into_iter().next().unwrap_or_default()
        }
        _ => return Err(format!("the oci/{} request is malformed", call.operation)),
    };
    const VARIANTS: [&str; 5] = [
        "SigstorePubKeyVerify",
        "SigstoreKeylessVerify",
        "SigstoreKeylessPrefixVerify",
        "SigstoreGithubActionsVerify",
        "SigstoreCertificateVerify",
    ];
    let variant = VARIANTS
        .into_iter()
        .find(|v| *v == variant)
        .ok_or_else(|| {
            format!(
                "the oci/{} request names an unknown verification {variant:?}",
                call.operation
            )
        })?;
    let query = signature_query(variant, &fields)
        .map_err(|e| format!("the oci/{} {variant} request: {e}", call.operation))?;
    Ok(Parsed {
        recorded: recorded(variant, fields),
        operation: Operation::Verify(query),
    })
}

/// The issuer of GitHub Actions' identity tokens.
const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn signature_query(variant: &str, fields: &serde_json::Value) -> Result<SignatureQuery, String> {
    #[derive(Deserialize)]
    struct Common {
        image: String,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    #[derive(Deserialize)]
    struct Keyless {
        issuer: String,
        subject: String,
    }
    #[derive(Deserialize)]
    struct KeylessPrefix {
        issuer: String,
        url_prefix: String,
    }
    let common: Common = serde_json::from_value(fields.clone()).map_err(|e| e.to_string())?;
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let keyless = |subject, issuer| {
        Signer::Keyless(Identity {
            subject,
            issuer,
            claims: Vec::new(),
        })
    };
    let signers = match variant {
        "SigstorePubKeyVerify" => serde_json::from_value::<Vec<String>>(field("pub_keys"))
            .map_err(|e| format!("pub_keys: {e}"))?
            .into_iter()
            .map(Signer::Key)
            .collect(),
        "SigstoreKeylessVerify" => serde_json::from_value::<Vec<Keyless>>(field("keyless"))
            .map_err(|e| format!("keyless: {e}"))?
            .into_iter()
            .map(|k| keyless(Pattern::Exact(k.subject), Pattern::Exact(k.issuer)))
            .collect(),
        "SigstoreKeylessPrefixVerify" => {
            serde_json::from_value::<Vec<KeylessPrefix>>(field("keyless_prefix"))
                .map_err(|e| format!("keyless_prefix: {e}"))?
                .into_iter()
                .map(|k| keyless(Pattern::Prefix(k.url_prefix), Pattern::Exact(k.issuer)))
                .collect()
        }
        "SigstoreGithubActionsVerify" => {
            let owner: String =
                serde_json::from_value(field("owner")).map_err(|e| format!("owner: {e}"))?;
            let repo: Option<String> =
                serde_json::from_value(field("repo")).map_err(|e| format!("repo: {e}"))?;
            // The repository the workflow ran for (Fulcio OID .1.5, `owner/repo`).
            let repository = match repo {
                Some(repo) => Pattern::Exact(format!("{owner}/{repo}")),
                None => Pattern::Prefix(format!("{owner}/")),
            };
            vec![Signer::Keyless(Identity {
                subject: Pattern::Prefix("https://github.com/".to_owned()),
                issuer: Pattern::Exact(GITHUB_ACTIONS_ISSUER.to_owned()),
                claims: vec![("githubWorkflowRepository".to_owned(), repository)],
            })]
        }
        "SigstoreCertificateVerify" => {
            return Err(
                "verification with a given certificate is not supported by this host yet: use a key or a keyless identity"
                    .to_owned(),
            );
        }
        _ => return Err("unknown verification".to_owned()),
    };
    if signers.is_empty() {
        return Err("it names no key or identity to verify with".to_owned());
    }
    Ok(SignatureQuery {
        image: common.image,
        signers,
        annotations: common.annotations.unwrap_or_default().into_iter().collect(),
    })
}

/// Kubewarden's refusal of a Kubernetes kind outside the policy's context-aware resources
/// (`can_i` is not limited).
fn refuse_kind(policy: &str, grants: &Grants, parsed: &Parsed) -> Option<String> {
    let (api_version, kind) = match &parsed.operation {
        Operation::List { query, .. } => (&query.api_version, &query.kind),
        Operation::Get {
            api_version, kind, ..
        } => (api_version, kind),
        _ => return None,
    };
    if grants.kubernetes_kind(api_version, kind) {
        return None;
    }
    tracing::warn!(policy, resource = %format!("{api_version}/{kind}"), "the policy asked for Kubernetes resources it is not granted");
    Some(format!(
        "Policy has not been granted access to Kubernetes {api_version}/{kind} resources. The violation has been reported."
    ))
}

/// Answers a parsed operation from the scope's capabilities.
async fn serve(scope: &Scope, parsed: &Parsed) -> Answer {
    let capabilities = &scope.capabilities;
    match &parsed.operation {
        Operation::Verify(query) => {
            let supply_chain = capabilities
                .supply_chain()
                .ok_or_else(|| "this host was given no image signature verification".to_owned())?;
            let digest = query.verify(supply_chain.as_ref()).await?;
            to_json(&json!({"is_trusted": true, "digest": digest}))
        }
        Operation::ManifestDigest(image) => {
            let manifest = registry(capabilities)?.manifest(image).await?;
            to_json(&json!({"digest": manifest.digest}))
        }
        Operation::Manifest(image) => Ok(registry(capabilities)?.manifest(image).await?.bytes),
        Operation::ManifestConfig(image) => {
            let registry = registry(capabilities)?;
            let manifest = registry.image_manifest(image).await?;
            let body: serde_json::Value = serde_json::from_slice(&manifest.bytes)
                .map_err(|e| format!("the manifest of {image} is not JSON: {e}"))?;
            let config_digest = body
                .pointer("/config/digest")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("the manifest of {image} names no config"))?;
            let config: serde_json::Value =
                serde_json::from_slice(&registry.blob(image, config_digest).await?)
                    .map_err(|e| format!("the config of {image} is not JSON: {e}"))?;
            to_json(&json!({"manifest": body, "digest": manifest.digest, "config": config}))
        }
        Operation::Lookup(host) => {
            if !capabilities.dns() {
                return Err(format!(
                    "DNS lookups are turned off on this host (looking up {host:?})"
                ));
            }
            let addresses = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("looking up {host}: {e}"))?;
            let mut ips: Vec<String> = addresses.map(|a| a.ip().to_string()).collect();
            ips.dedup();
            to_json(&json!({"ips": ips}))
        }
        Operation::Certificate(request) => {
            let verdict = certificates::is_trusted(request, capabilities.clock().now())?;
            to_json(&verdict)
        }
        Operation::List { query, masks } => {
            let items = cluster(capabilities)?
                .list(&ListQuery {
                    api_version: &query.api_version,
                    kind: &query.kind,
                    namespace: query.namespace.as_deref(),
                    label_selector: query.label_selector.as_deref(),
                    field_selector: query.field_selector.as_deref(),
                })
                .map_err(|e| e.to_string())?;
            let items: Vec<serde_json::Value> =
                items.iter().map(|i| masked(i, masks.as_ref())).collect();
            to_json(&json!({
                "apiVersion": query.api_version,
                "kind": format!("{}List", query.kind),
                "metadata": {"resourceVersion": ""},
                "items": items,
            }))
        }
        Operation::Get {
            api_version,
            kind,
            name,
            namespace,
            masks,
        } => {
            let object = cluster(capabilities)?
                .get(api_version, kind, namespace.as_deref(), name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| match namespace {
                    Some(ns) => format!("{kind} {ns}/{name} ({api_version}) not found"),
                    None => format!("{kind} {name} ({api_version}) not found"),
                })?;
            to_json(&masked(&object, masks.as_ref()))
        }
        Operation::CanI(review) => {
            let status = cluster(capabilities)?
                .can_i(review)
                .map_err(|e| e.to_string())?;
            to_json(&status)
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Answer {
    serde_json::to_vec(value).map_err(|e| format!("encoding the answer: {e}"))
}

fn masked(object: &serde_json::Value, masks: Option<&BTreeSet<String>>) -> serde_json::Value {
    match masks {
        Some(masks) if !masks.is_empty() => cluster::prune(object, masks),
        _ => object.clone(),
    }
}

fn registry(capabilities: &Capabilities) -> Result<&Arc<dyn Registry>, String> {
    capabilities
        .registry()
        .ok_or_else(|| "this host was given no image registry to read".to_owned())
}

fn cluster(capabilities: &Capabilities) -> Result<Arc<dyn Cluster>, String> {
    capabilities.cluster().ok_or_else(|| {
        "this host serves no Kubernetes resources (give the CLI --kubernetes-dir, or the server hostOperations.kubernetesDirectory)".to_owned()
    })
}

/// A log event of the SDKs' loggers: a level, a message, and any other fields.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
    #[serde(flatten)]
    fields: BTreeMap<String, serde_json::Value>,
}

/// Writes a guest's log event at its level, attributed to the policy; an event that does not
/// parse is written as it came, at warn.
fn log(policy: &str, payload: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Event>(payload) else {
        tracing::warn!(policy, event = %String::from_utf8_lossy(payload), "the policy logged an event that is not JSON");
        return;
    };
    let fields = serde_json::to_string(&event.fields).unwrap_or_default();
    let message = event.message;
    match event.level.to_ascii_lowercase().as_str() {
        "trace" => tracing::trace!(policy, fields, "{message}"),
        "debug" => tracing::debug!(policy, fields, "{message}"),
        "warning" | "warn" => tracing::warn!(policy, fields, "{message}"),
        "error" => tracing::error!(policy, fields, "{message}"),
        _ => tracing::info!(policy, fields, "{message}"),
    }
}
