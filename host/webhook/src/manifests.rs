//! Kubernetes objects for deploying the webhook: the Validating- and
//! MutatingWebhookConfiguration that route the API server's reviews to each configured policy,
//! with rules read from each policy's own metadata.

use serde_json::{Value, json};

use crate::PolicySet;
use crate::config::{Config, FailurePolicy};

/// Where the API server reaches the webhook.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// An in-cluster Service.
    Service {
        /// Service name.
        name: String,
        /// Service namespace.
        namespace: String,
        /// Service port.
        port: u16,
    },
    /// A URL (`https://host:port`), for a webhook outside the cluster.
    Url(String),
}

/// Options of the generated configurations.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Name of the two configuration objects.
    pub name: String,
    /// Where the webhook is.
    pub endpoint: Endpoint,
    /// The CA bundle (PEM) that signed the serving certificate, base64-encoded into caBundle.
    pub ca_bundle: Option<String>,
    /// How long the API server waits (1-30 s).
    pub timeout_seconds: u8,
    /// Namespaces the webhooks never see (the webhook's own, kube-system).
    pub excluded_namespaces: Vec<String>,
}

/// The ValidatingWebhookConfiguration (every policy and group) and, when any policy mutates,
/// the MutatingWebhookConfiguration (mutating policies only).
///
/// # Errors
/// When the server's `limits.requestTimeout` does not fit `timeoutSeconds`: the API server
/// would give up (and apply its own failurePolicy) before the server's timeout answer, so a
/// slow policy's failurePolicy would never be the one that decides.
pub fn webhook_configurations(
    config: &Config,
    set: &PolicySet,
    options: &WebhookOptions,
) -> Result<Vec<Value>, String> {
    let waits = std::time::Duration::from_secs(u64::from(options.timeout_seconds));
    if config.limits.request_timeout >= waits {
        return Err(format!(
            "limits.requestTimeout ({}) must be shorter than the webhook's timeoutSeconds ({}s): \
             the API server stops waiting first and the policies' failurePolicy never answers",
            humantime::format_duration(config.limits.request_timeout),
            options.timeout_seconds
        ));
    }
    let rules = set.webhook_rules();
    let failure = |id: &str| {
        let policy = config.policies.iter().find(|p| p.id == id);
        policy
            .map_or(FailurePolicy::Fail, |p| p.failure_policy)
            .label()
    };
    let webhook = |id: &str, rules: &[palisade_sdk::wire::Rule], endpoint: &str| {
        let mut client = match &options.endpoint {
            Endpoint::Service {
                name,
                namespace,
                port,
            } => json!({
                "service": {"name": name, "namespace": namespace, "path": format!("/{endpoint}/{id}"), "port": port}
            }),
            Endpoint::Url(url) => {
                json!({"url": format!("{}/{endpoint}/{id}", url.trim_end_matches('/'))})
            }
        };
        if let Some(ca) = &options.ca_bundle {
            client["caBundle"] = json!(ca);
        }
        json!({
            "name": format!("{id}.palisade.dev"),
            "clientConfig": client,
            "rules": rules.iter().map(|r| json!({
                "apiGroups": r.api_groups, "apiVersions": r.api_versions,
                "resources": r.resources, "operations": r.operations, "scope": "*",
            })).collect::<Vec<_>>(),
            "failurePolicy": failure(id),
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "timeoutSeconds": options.timeout_seconds,
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": options.excluded_namespaces,
            }]},
        })
    };
    let metadata = json!({"name": options.name, "labels": {"app.kubernetes.io/name": "palisade"}});
    let validating: Vec<Value> = rules
        .iter()
        .filter(|(_, r, _)| !r.is_empty())
        .map(|(id, r, _)| webhook(id, r, "validate"))
        .collect();
    let mut out = vec![json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": validating,
    })];
    let mutating: Vec<Value> = rules
        .iter()
        .filter(|(_, r, m)| *m && !r.is_empty())
        .map(|(id, r, _)| {
            let mut hook = webhook(id, r, "mutate");
            hook["reinvocationPolicy"] = json!("IfNeeded");
            hook
        })
        .collect();
    if !mutating.is_empty() {
        out.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": metadata,
            "webhooks": mutating,
        }));
    }
    Ok(out)
}
