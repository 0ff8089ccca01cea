#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use palisade_sdk::wire::{
    AdmissionRequest, Operation, PatchOperation, PolicyMetadata, RawJson, Verdict,
};
use palisade_sdk::{AdmissionPolicy, Host, PolicyError, SettingsError};

mod checks;
mod exemption;
mod level;
mod model;
mod mutate;
mod settings;
mod update;
mod version;
mod workload;

pub use exemption::EXEMPT_ANNOTATION;
pub use level::Level;
pub use settings::{Exemptions, Settings};
pub use version::{NEWEST_MINOR, Version, VersionError};

use model::Pod;
use palisade_sdk::pods::{self, Target};
use workload::PodTemplate as _;

/// Audit annotation with the `<level>:<version>` a request was evaluated against (PSA's
/// `pod-security.kubernetes.io/enforce-policy`). The API server prefixes audit annotation keys
/// with the webhook's name, so keys carry no prefix of their own.
pub const ENFORCE_POLICY_ANNOTATION: &str = "enforce-policy";

/// The Pod Security Standards policy, as exported to every ABI.
pub struct PodSecurity;

impl AdmissionPolicy for PodSecurity {
    type Settings = Settings;
    type Prepared = Settings;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: env!("CARGO_PKG_DESCRIPTION").to_owned(),
            rules: pods::admission_rules(),
            // With the `mutate` setting the policy returns a JSONPatch.
            mutating: true,
        }
    }

    fn prepare(settings: Settings) -> Result<Settings, SettingsError> {
        Ok(settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        settings: &Settings,
        _host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        evaluate(request, settings)
    }
}

/// Evaluates one admission request against the configured Pod Security Standard; with the
/// `mutate` setting, on the object completed with the restricted defaults it lacks (the patch
/// comes with an allowed verdict; a denial lists what the defaults could not fix).
///
/// # Errors
/// As [`enforce`].
pub fn evaluate(request: &AdmissionRequest, settings: &Settings) -> Result<Verdict, PolicyError> {
    let verdict = enforce(request, settings)?;
    if !settings.mutate || matches!(verdict.reason.as_str(), "exempt" | "not-applicable") {
        return Ok(verdict);
    }
    // A pod's containers cannot change after creation; workload templates can.
    let pointer = match pods::classify(request) {
        Target::Pod if request.operation == Operation::Create => "/spec",
        Target::Workload(workload) => workload.spec_pointer(),
        Target::Pod | Target::NotApplicable(_) => return Ok(verdict),
    };
    let Some(mut object) = request.object::<serde_json::Value>()? else {
        return Ok(verdict);
    };
    let patch = mutate::add_defaults(&mut object, pointer);
    if patch.is_empty() {
        return Ok(verdict);
    }
    let raw = RawJson::from_value(&object)
        .map_err(|e| PolicyError::Internal(format!("re-serializing the patched object: {e}")))?;
    let patched = AdmissionRequest {
        object: Some(raw),
        ..request.clone()
    };
    let after = enforce(&patched, settings)?;
    if !after.allowed {
        return Ok(after);
    }
    let added: Vec<&str> = patch
        .iter()
        .filter_map(|op| match op {
            PatchOperation::Add { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let warning = format!(
        "pod-security added the restricted defaults at {}",
        added.join(", ")
    );
    Ok(after.with_warning(warning).with_patch(patch))
}

/// Enforces the configured Pod Security Standard on the request as it is, in PSA's order:
/// operation and resource, namespace and user exemptions, the `privileged` level, insignificant
/// pod updates, runtime-class exemption, then every check of the level and version.
///
/// # Errors
/// [`PolicyError::InvalidRequest`] when the object (or, for a pod UPDATE, the old object) is
/// missing or does not parse as the kind it claims to be.
pub fn enforce(request: &AdmissionRequest, settings: &Settings) -> Result<Verdict, PolicyError> {
    let operation = match request.operation {
        Operation::Create | Operation::Update => request.operation,
        Operation::Delete => return Ok(not_checked("DELETE")),
        Operation::Connect => return Ok(not_checked("CONNECT")),
    };
    let workload = match pods::classify(request) {
        Target::NotApplicable(why) => return Ok(Verdict::not_applicable(why)),
        Target::Pod => None,
        Target::Workload(workload) => Some(workload),
    };
    if let Some(verdict) = exemption::by_request(request, &settings.exemptions) {
        return Ok(verdict);
    }
    if settings.level == Level::Privileged {
        // PSA reports a privileged policy as `privileged:latest`, whatever the version.
        return Ok(Verdict {
            message: "the privileged level allows every pod".to_owned(),
            ..Verdict::allow()
        }
        .with_audit_annotation(ENFORCE_POLICY_ANNOTATION, "privileged:latest"));
    }
    let pod = match workload {
        Some(workload) => match workload.pod_template(request)? {
            Some(pod) => pod,
            None => {
                return Ok(Verdict::not_applicable(
                    "the replication controller has no pod template (spec.template)",
                ));
            }
        },
        None => {
            let pod: Pod = required(request.object()?, "object")?;
            if operation == Operation::Update {
                let old: Pod = required(request.old_object()?, "oldObject")?;
                if !update::is_significant(&pod.spec, &old.spec) {
                    return Ok(Verdict::not_applicable(
                        "the update changes no container image and adds no ephemeral container, \
                         and no other field pod security reads can change",
                    ));
                }
            }
            pod
        }
    };
    if let Some(verdict) = exemption::by_runtime_class(&pod.spec, &settings.exemptions) {
        return Ok(verdict);
    }
    let policy = format!("{}:{}", settings.level, settings.version);
    let failures = checks::evaluate(settings.level, settings.version.effective_minor(), &pod);
    let verdict = match failures.first() {
        None => Verdict::allow(),
        Some(first) => Verdict::deny(
            first.check,
            format!(
                "violates PodSecurity {policy:?}: {}",
                checks::describe(&failures)
            ),
        ),
    };
    Ok(verdict.with_audit_annotation(ENFORCE_POLICY_ANNOTATION, policy))
}

fn not_checked(operation: &str) -> Verdict {
    Verdict::not_applicable(format!(
        "{operation} requests are not checked: pod security applies to CREATE and UPDATE"
    ))
}

fn required<'a>(object: Option<Pod<'a>>, field: &str) -> Result<Pod<'a>, PolicyError> {
    object.ok_or_else(|| PolicyError::InvalidRequest(format!("the request has no {field}")))
}

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(PodSecurity);
#[cfg(all(target_arch = "wasm32", feature = "kubewarden"))]
palisade_sdk::export_kubewarden!(PodSecurity, "kubewarden-metadata.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_crate_and_every_resource_psa_checks() {
        let metadata = PodSecurity::metadata();
        assert_eq!(metadata.name, "pod-security");
        assert!(metadata.mutating);
        let resources: Vec<String> = metadata
            .rules
            .iter()
            .flat_map(|rule| {
                rule.resources.iter().flat_map(move |resource| {
                    rule.api_groups
                        .iter()
                        .map(move |group| format!("{group}/{resource}"))
                })
            })
            .collect();
        for expected in [
            "/pods",
            "/pods/ephemeralcontainers",
            "/replicationcontrollers",
            "/podtemplates",
            "apps/deployments",
            "apps/replicasets",
            "apps/statefulsets",
            "apps/daemonsets",
            "batch/jobs",
            "batch/cronjobs",
        ] {
            assert!(resources.iter().any(|r| r == expected), "{expected}");
        }
        for rule in &metadata.rules {
            assert_eq!(rule.operations, [Operation::Create, Operation::Update]);
        }
    }
}
