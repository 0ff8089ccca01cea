//! The admission home's logic, with no ABI in it: the same rules over Kubernetes API requests.
//! The peer is the requesting user: `principals` are the user name and, for a service account
//! (`system:serviceaccount:<ns>:<name>`), also `cluster.local/ns/<ns>/sa/<name>`, so
//! `namespaces` match service accounts' namespaces; `source.groups` are the user's groups;
//! `methods` are the operation (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`); `paths` the API path
//! (`/api/v1/namespaces/prod/pods/web/exec`); `resource.*`, `request.userInfo.extra[..]` and
//! `object.labels[..]` read the rest. A denial is 403 naming the rule; an allow that an AUDIT
//! rule matched carries an audit annotation, for the API server's audit log.

use std::collections::BTreeMap;

use palisade_sdk::wire::{AdmissionRequest, Verdict};
use palisade_sdk::{Host, PolicyError, SettingsError};
use serde::Deserialize;

use crate::authorization::Effect;
use crate::{Attributes, Resource, Settings};

/// The reason of a denial.
pub const ACCESS_DENIED: &str = "rbac-access-denied";
/// The audit annotation naming the AUDIT rules an allowed request matched (the API server
/// writes it as `<webhook name>/audited`).
pub const AUDITED_ANNOTATION: &str = "audited";
/// The audit annotation naming the rule that allowed the request (`<webhook name>/policy`).
pub const POLICY_ANNOTATION: &str = "policy";

/// Settings compiled for the admission home.
pub type Prepared = crate::settings::Compiled;

/// Compiles the settings; CUSTOM policies (no callout from admission) and JWT rules (no token
/// at admission) are refused.
///
/// # Errors
/// [`SettingsError`] for a policy that cannot be used.
pub fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
    let prepared =
        settings.compile_without_custom("CUSTOM policies are not supported at admission")?;
    if !prepared.device.is_empty() {
        return Err(SettingsError::new(
            "device",
            "device tokens come with proxied requests; an admission request has none",
        ));
    }
    if !prepared.authenticator.is_empty() {
        return Err(SettingsError::new(
            "authentication",
            "JWT rules apply to proxied requests; the API server has authenticated an admission \
             request's user already (match it with principals, groups and userInfo extra)",
        ));
    }
    Ok(prepared)
}

#[derive(Deserialize, Default)]
struct Object {
    #[serde(default)]
    metadata: ObjectMetadata,
}

#[derive(Deserialize, Default)]
struct ObjectMetadata {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The labels of the object (the old object's when there is no new one, as on DELETE).
fn labels(request: &AdmissionRequest) -> BTreeMap<String, String> {
    request
        .object
        .as_ref()
        .or(request.old_object.as_ref())
        .and_then(|raw| serde_json::from_str::<Object>(raw.get()).ok())
        .map(|o| o.metadata.labels)
        .unwrap_or_default()
}

/// What the rules read of an API request.
#[must_use]
pub fn attributes(request: &AdmissionRequest) -> Attributes<'static> {
    let user = &request.user_info;
    let mut principals = vec![user.username.clone()];
    if let Some(rest) = user.username.strip_prefix("system:serviceaccount:")
        && let Some((namespace, name)) = rest.split_once(':')
    {
        principals.push(format!("cluster.local/ns/{namespace}/sa/{name}"));
    }
    let resource = Resource {
        group: request.resource.group.clone(),
        version: request.resource.version.clone(),
        resource: request.resource.resource.clone(),
        subresource: request.sub_resource.clone().unwrap_or_default(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request.name.clone().unwrap_or_default(),
    };
    Attributes {
        principals,
        groups: user.groups.clone(),
        method: Some(request.operation.as_str().to_owned().into()),
        path: Some(resource.path().into()),
        resource: Some(resource),
        extra: user.extra.clone(),
        labels: labels(request),
        ..Attributes::default()
    }
}

/// Decides on one API request and writes its audit record.
///
/// # Errors
/// [`PolicyError`] when a condition reads the time and the host's clock cannot be read.
pub fn evaluate(
    request: &AdmissionRequest,
    prepared: &Prepared,
    host: &dyn Host,
) -> Result<Verdict, PolicyError> {
    let mut attributes = attributes(request);
    if prepared.authorizer.uses_time() {
        attributes.time = Some(crate::LocalTime::at(
            host.now()?.as_secs(),
            prepared.utc_offset,
        ));
    }
    let assessment = prepared.sensitivity.assess(&attributes);
    let decision = assessment
        .denial()
        .unwrap_or_else(|| prepared.authorizer.decide(&attributes));
    if prepared.settings.audit.enabled {
        crate::audit::write(host, &attributes, &decision, assessment.label, None);
    }
    Ok(match decision.effect {
        Effect::Deny => {
            let rule = decision.rule().unwrap_or("none");
            let mut verdict = Verdict::deny(
                ACCESS_DENIED,
                format!(
                    "{}: rbac_access_denied_matched_policy[{rule}]",
                    prepared.settings.deny_body
                ),
            );
            verdict.code = Some(prepared.settings.deny_status);
            verdict
        }
        Effect::Allow => {
            let mut verdict = Verdict::allow();
            if !decision.audited.is_empty() {
                verdict
                    .audit_annotations
                    .insert(AUDITED_ANNOTATION.to_owned(), decision.audited.join(","));
                if let Some(rule) = decision.rule() {
                    verdict
                        .audit_annotations
                        .insert(POLICY_ANNOTATION.to_owned(), rule.to_owned());
                }
            }
            verdict
        }
    })
}
