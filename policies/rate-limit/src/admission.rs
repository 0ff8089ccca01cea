//! The admission home: Kubernetes' EventRateLimit admission plugin as a policy, generalised to
//! any resource and operation. Every limit that matches a request takes one token from its
//! bucket (kept by the host, so counts survive instance recycling, traps and reloads, and are
//! shared by replicas when the host keeps them in Redis); a request any of them refuses is
//! denied with code 429 and when to retry.
//!
//! Mirrors kubernetes/kubernetes `plugin/pkg/admission/eventratelimit/` (`admission.go`,
//! `limitenforcer.go`): dry-run requests are not counted, every matching limit is consulted even
//! after one refuses, and the message aggregates each refusal as
//! `limit reached on type <Type> for key <key>`.

pub mod settings;

use std::borrow::Cow;
use std::time::Duration;

use palisade_sdk::host::Level;
use palisade_sdk::wire::{AdmissionRequest, Operation, PolicyMetadata, Rule, Verdict};
use palisade_sdk::{AdmissionPolicy, Host, PolicyError, SettingsError};
use serde::Deserialize;

pub use settings::Settings;
use settings::{KeyType, Limit, Matcher, OnError};

/// The audit annotation naming the limits a request was refused by.
pub const LIMITED_BY: &str = "rate-limited-by";

/// The admission rate limit policy.
pub struct AdmissionRateLimit;

/// The compiled settings.
#[derive(Debug, Clone)]
pub struct Prepared {
    limits: Vec<Limit>,
    on_error: OnError,
}

impl AdmissionPolicy for AdmissionRateLimit {
    type Settings = Settings;
    type Prepared = Prepared;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Rate limits on Kubernetes API requests: EventRateLimit's \
                          configuration, generalised to any resource and operation"
                .to_owned(),
            rules: vec![Rule::new(
                &["*"],
                &["*"],
                &["*"],
                &[
                    Operation::Create,
                    Operation::Update,
                    Operation::Delete,
                    Operation::Connect,
                ],
            )],
            mutating: false,
        }
    }

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        Ok(Prepared {
            limits: settings::compile(&settings)?,
            on_error: settings.on_error,
        })
    }

    fn evaluate(
        request: &AdmissionRequest,
        prepared: &Prepared,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        evaluate(request, prepared, host)
    }
}

/// A limit that refused the request.
struct Refusal<'a> {
    limit: &'a Limit,
    key: String,
    retry_after: Duration,
}

/// Decides on one request.
///
/// # Errors
/// [`PolicyError::InvalidRequest`] when an event's object does not read as an event (for
/// `SourceAndObject` keys).
pub fn evaluate(
    request: &AdmissionRequest,
    prepared: &Prepared,
    host: &dyn Host,
) -> Result<Verdict, PolicyError> {
    if request.dry_run {
        return Ok(Verdict::not_applicable(
            "dry-run requests are not counted (as EventRateLimit)",
        ));
    }
    let resource = match &request.sub_resource {
        Some(sub) if !sub.is_empty() => Cow::Owned(format!("{}/{sub}", request.resource.resource)),
        _ => Cow::Borrowed(request.resource.resource.as_str()),
    };
    let mut matched = 0_usize;
    let mut refusals = Vec::new();
    let mut failures = Vec::new();
    for limit in &prepared.limits {
        if !matches(&limit.matcher, request, &resource) {
            continue;
        }
        let Some(key) = key(limit.key, request)? else {
            continue;
        };
        matched = matched.saturating_add(1);
        let bucket = format!("{}/{key}", limit.id);
        // Every matching limit takes its token, even after another refused (limitenforcer.go).
        match host.take(&bucket, limit.shape, 1) {
            Ok(taken) if taken.allowed => {}
            Ok(taken) => refusals.push(Refusal {
                limit,
                key,
                retry_after: taken.retry_after,
            }),
            Err(error) => {
                host.log(
                    Level::Warn,
                    &format!("limit {} for key {key:?} not checked: {error}", limit.label),
                );
                failures.push(format!("{}: {error}", limit.label));
            }
        }
    }
    if !refusals.is_empty() {
        return Ok(refused(&refusals));
    }
    if !failures.is_empty() {
        let message = format!("rate limits not checked: {}", failures.join("; "));
        return Ok(match prepared.on_error {
            OnError::Allow => Verdict::allow().with_warning(message),
            OnError::Deny => Verdict::deny("rate-limit-unavailable", message).with_code(500),
        });
    }
    if matched == 0 {
        return Ok(Verdict::not_applicable("no limit counts this request"));
    }
    Ok(Verdict::allow())
}

/// The 429: EventRateLimit's `Too many requests: <aggregate>` (NewTooManyRequestsError around
/// an aggregate of each limit's error), then when the request could pass.
fn refused(refusals: &[Refusal<'_>]) -> Verdict {
    let each: Vec<String> = refusals
        .iter()
        .map(|r| format!("limit reached on {} for key {}", r.limit.label, r.key))
        .collect();
    let aggregate = match each.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let retry = refusals
        .iter()
        .map(|r| r.retry_after)
        .max()
        .unwrap_or_default();
    let seconds = retry.as_millis().div_ceil(1000).max(1);
    let ids: Vec<&str> = refusals.iter().map(|r| r.limit.id.as_str()).collect();
    Verdict::deny(
        "rate-limited",
        format!("Too many requests: {aggregate}; retry after {seconds}s"),
    )
    .with_code(429)
    .with_audit_annotation(LIMITED_BY, ids.join(","))
}

/// Whether the limit counts the request, whose resource (with its subresource) is `resource`.
fn matches(m: &Matcher, request: &AdmissionRequest, resource: &str) -> bool {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let user = &request.user_info;
    m.operations.contains(&request.operation)
        && (m.api_groups.is_empty() || m.api_groups.contains(&request.resource.group))
        && (m.resources.is_empty() || m.resources.iter().any(|r| r == resource))
        && (m.namespaces.is_empty() || m.namespaces.iter().any(|n| n == namespace))
        && !m.excluded_namespaces.iter().any(|n| n == namespace)
        && !m.excluded_users.contains(&user.username)
        && !user.groups.iter().any(|g| m.excluded_groups.contains(g))
}

/// The bucket key of a request; `None` when the limit does not count it (a `ServiceAccount`
/// limit and a user that is not one).
fn key(key: KeyType, request: &AdmissionRequest) -> Result<Option<String>, PolicyError> {
    Ok(Some(match key {
        KeyType::Server => String::new(),
        KeyType::Namespace => request.namespace.clone().unwrap_or_default(),
        KeyType::User => request.user_info.username.clone(),
        KeyType::ServiceAccount => {
            if !request
                .user_info
                .username
                .starts_with("system:serviceaccount:")
            {
                return Ok(None);
            }
            request.user_info.username.clone()
        }
        KeyType::SourceAndObject => source_and_object(request)?,
    }))
}

/// An event's source and involved object (core/v1 `Event`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Event {
    source: Source,
    involved_object: Involved,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Source {
    component: String,
    host: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Involved {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    api_version: String,
}

/// EventRateLimit's `SourceAndObject` key: the event's source and involved object fields
/// concatenated without a separator, in this order (`limitenforcer.go`).
fn source_and_object(request: &AdmissionRequest) -> Result<String, PolicyError> {
    let event: Event = request.object()?.unwrap_or_default();
    Ok([
        event.source.component,
        event.source.host,
        event.involved_object.kind,
        event.involved_object.namespace,
        event.involved_object.name,
        event.involved_object.uid,
        event.involved_object.api_version,
    ]
    .concat())
}
