#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use palisade_sdk::host::images::{Rejection, Verified};
use palisade_sdk::pods;
use palisade_sdk::wire::{
    AdmissionRequest, Operation, PatchOperation, PolicyMetadata, Text, Verdict,
};
use palisade_sdk::{AdmissionPolicy, Host, HostError, PolicyError, SettingsError};
use serde::Deserialize;
use serde_json::Value;

pub mod attestation;
pub mod reference;
pub mod settings;

use reference::Reference;
use settings::{DigestMode, PreparedAttestation, PreparedRule, SignerSet, Unmatched};
pub use settings::{Prepared, Settings};

/// The reason of a denial.
pub const REASON: &str = "untrusted-image";

/// The supply-chain policy, as exported to the admission component home.
pub struct ImageSignature;

impl AdmissionPolicy for ImageSignature {
    type Settings = Settings;
    type Prepared = Prepared;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: env!("CARGO_PKG_DESCRIPTION").to_owned(),
            rules: pods::admission_rules(),
            // Rules with `digest: mutate` rewrite tags to digests.
            mutating: true,
        }
    }

    fn prepare(settings: Settings) -> Result<Prepared, SettingsError> {
        Prepared::new(&settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        settings: &Prepared,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        evaluate(request, settings, host)
    }
}

/// A container, as far as images go.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ContainerImage<'a> {
    name: Text<'a>,
    image: Text<'a>,
}

/// A pod spec's containers of every kind (the rest of the object is skipped unread).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct PodSpec<'a> {
    init_containers: Vec<ContainerImage<'a>>,
    containers: Vec<ContainerImage<'a>>,
    ephemeral_containers: Vec<ContainerImage<'a>>,
}

/// A pod template (`template` of the workloads).
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Template<'a> {
    spec: Option<PodSpec<'a>>,
}

/// A Job's spec, reduced to its template.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct JobSpec<'a> {
    template: Option<Template<'a>>,
}

/// A CronJob's job template.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct JobTemplate<'a> {
    spec: Option<JobSpec<'a>>,
}

/// A `spec`: a Pod's (its containers), or a workload's (its template, or a CronJob's job
/// template).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct Spec<'a> {
    init_containers: Vec<ContainerImage<'a>>,
    containers: Vec<ContainerImage<'a>>,
    ephemeral_containers: Vec<ContainerImage<'a>>,
    template: Option<Template<'a>>,
    job_template: Option<JobTemplate<'a>>,
}

/// The union of the objects that carry pod specs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Object<'a> {
    spec: Option<Spec<'a>>,
    template: Option<Template<'a>>,
}

impl<'a> Object<'a> {
    /// The pod spec the target keeps, if the object has one.
    fn pod_spec(self, target: &pods::Target) -> Option<PodSpec<'a>> {
        use pods::{Target, Workload};
        match target {
            Target::Pod => self.spec.map(|s| PodSpec {
                init_containers: s.init_containers,
                containers: s.containers,
                ephemeral_containers: s.ephemeral_containers,
            }),
            Target::Workload(Workload::PodTemplate) => self.template?.spec,
            Target::Workload(Workload::CronJob) => self.spec?.job_template?.spec?.template?.spec,
            Target::Workload(_) => self.spec?.template?.spec,
            Target::NotApplicable(_) => None,
        }
    }
}

/// One container of the request's pod spec.
struct Container<'a> {
    /// `container "app"`, `init container "setup"`, ...
    label: String,
    image: Text<'a>,
    /// JSON Pointer of its `image`.
    pointer: String,
}

impl<'a> PodSpec<'a> {
    /// Its containers, with how messages name them and where their images are.
    fn containers(self, spec_pointer: &str) -> Vec<Container<'a>> {
        let mut out = Vec::new();
        for (list, field, kind) in [
            (self.init_containers, "initContainers", "init container"),
            (self.containers, "containers", "container"),
            (
                self.ephemeral_containers,
                "ephemeralContainers",
                "ephemeral container",
            ),
        ] {
            for (index, container) in list.into_iter().enumerate() {
                out.push(Container {
                    label: format!("{kind} {:?}", container.name.as_str()),
                    image: container.image,
                    pointer: format!("{spec_pointer}/{field}/{index}/image"),
                });
            }
        }
        out
    }
}

/// Checks every image of the request's pod spec (a Pod's, or a workload's template) against
/// the settings; denies naming each container, its image, the requirement and why, or allows
/// (with a patch pinning digests, for `digest: mutate` rules).
///
/// # Errors
/// [`PolicyError::InvalidRequest`] for a request without an object;
/// [`PolicyError::Internal`] when the host cannot verify (the registry is unreachable, the
/// policy lacks the `supply-chain` capability): the webhook's failure policy decides.
pub fn evaluate(
    request: &AdmissionRequest,
    settings: &Prepared,
    host: &dyn Host,
) -> Result<Verdict, PolicyError> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(Verdict::not_applicable(
            "only CREATE and UPDATE carry images",
        ));
    }
    let target = pods::classify(request);
    let Some(spec_pointer) = target.spec_pointer() else {
        let pods::Target::NotApplicable(why) = target else {
            return Ok(Verdict::allow());
        };
        return Ok(Verdict::not_applicable(why));
    };
    let object: Object<'_> = request
        .object()?
        .ok_or_else(|| PolicyError::InvalidRequest("the request has no object".to_owned()))?;
    let Some(spec) = object.pod_spec(&target) else {
        return Ok(Verdict::not_applicable("the object has no pod template"));
    };
    // On UPDATE, images the object already had were checked when they were added.
    let unchanged: BTreeSet<String> = match request.old_object::<Object<'_>>()? {
        Some(old) if request.operation == Operation::Update && !settings.verify_unchanged => old
            .pod_spec(&target)
            .map(|spec| {
                spec.containers(spec_pointer)
                    .iter()
                    .map(|c| c.image.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        _ => BTreeSet::new(),
    };
    let mut checker = Checker {
        settings,
        host,
        outcomes: BTreeMap::new(),
        now: None,
    };
    let mut failures = Vec::new();
    let mut patch = Vec::new();
    for container in spec.containers(spec_pointer) {
        let image = container.image.as_str();
        let outcome = checker.image(image, unchanged.contains(image))?;
        if outcome.failures.is_empty() {
            if let Some(pinned) = &outcome.pinned {
                patch.push(PatchOperation::Replace {
                    path: container.pointer.clone(),
                    value: Value::String(pinned.clone()),
                });
            }
        } else {
            failures.push(format!(
                "{} (image {image:?}): {}",
                container.label,
                outcome.failures.join("; ")
            ));
        }
    }
    if !failures.is_empty() {
        return Ok(Verdict::deny(REASON, failures.join("; ")));
    }
    let verdict = Verdict::allow();
    Ok(if patch.is_empty() {
        verdict
    } else {
        verdict.with_patch(patch)
    })
}

/// What one image came to.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Each requirement that failed, and why.
    failures: Vec<String>,
    /// The image pinned to its verified digest, when a rule mutates.
    pinned: Option<String>,
}

/// Checks images, each once per request.
struct Checker<'a> {
    settings: &'a Prepared,
    host: &'a dyn Host,
    outcomes: BTreeMap<String, Outcome>,
    /// The host's time, read once when a report's age is checked.
    now: Option<Option<Duration>>,
}

/// The host's failure as the policy's: it could not decide.
fn host_failure(image: &str, error: &HostError) -> PolicyError {
    PolicyError::Internal(format!("verifying image {image:?}: {error}"))
}

impl Checker<'_> {
    fn image(&mut self, image: &str, unchanged: bool) -> Result<Outcome, PolicyError> {
        let key = format!("{unchanged}|{image}");
        if let Some(outcome) = self.outcomes.get(&key) {
            return Ok(outcome.clone());
        }
        let outcome = self.check(image, unchanged)?;
        self.outcomes.insert(key, outcome.clone());
        Ok(outcome)
    }

    fn check(&mut self, image: &str, unchanged: bool) -> Result<Outcome, PolicyError> {
        let settings = self.settings;
        let mut outcome = Outcome::default();
        let reference = match Reference::parse(image) {
            Ok(reference) => reference,
            Err(why) => {
                outcome
                    .failures
                    .push(format!("not a valid image reference: {why}"));
                return Ok(outcome);
            }
        };
        let name = reference.name();
        if !settings.allowed.is_empty() && !settings.allowed.iter().any(|g| g.matches(&name)) {
            outcome.failures.push(format!(
                "allowed registries: {name} is not in {}",
                settings
                    .allowed
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if settings.deny_latest && reference.is_latest() {
            outcome.failures.push(if reference.tag.is_some() {
                "latest: the tag latest is denied; name a version or a digest".to_owned()
            } else {
                "latest: no tag or digest means latest, which is denied; name a version or a digest"
                    .to_owned()
            });
        }
        let rules: Vec<&PreparedRule> = settings
            .rules
            .iter()
            .filter(|r| r.applies_to(&name))
            .collect();
        if rules.is_empty() && settings.unmatched == Unmatched::Deny {
            outcome.failures.push(format!(
                "no rule covers {name}, and unmatched images are denied"
            ));
        }
        let mut digest: Option<String> = None;
        for rule in rules {
            if rule.digest == DigestMode::Require && reference.digest.is_none() {
                outcome.failures.push(format!(
                    "rule {:?}: the image must be pinned by digest ({name}@sha256:...)",
                    rule.name
                ));
            }
            if !rule.verifies() || unchanged {
                continue;
            }
            let resolved = match &digest {
                Some(d) => d.clone(),
                None => {
                    let d = self
                        .host
                        .resolve_image(image)
                        .map_err(|e| host_failure(image, &e))?;
                    digest = Some(d.clone());
                    d
                }
            };
            let pinned = format!("{name}@{resolved}");
            let before = outcome.failures.len();
            for (index, set) in rule.signatures.iter().enumerate() {
                if let Some(why) = self.signatures(&pinned, set)? {
                    outcome
                        .failures
                        .push(format!("rule {:?} signatures[{index}]: {why}", rule.name));
                }
            }
            for attestation in &rule.attestations {
                if let Some(why) = self.attestation(&pinned, attestation)? {
                    outcome.failures.push(format!(
                        "rule {:?} attestation {:?}: {why}",
                        rule.name, attestation.name
                    ));
                }
            }
            if rule.digest == DigestMode::Mutate
                && reference.digest.is_none()
                && outcome.failures.len() == before
            {
                outcome.pinned = Some(format!("{image}@{resolved}"));
            }
        }
        Ok(outcome)
    }

    /// Why fewer than `set.count` of its signers signed `pinned`, or `None`.
    fn signatures(&self, pinned: &str, set: &SignerSet) -> Result<Option<String>, PolicyError> {
        let mut verified = 0_usize;
        let mut reasons = Vec::new();
        for entry in &set.entries {
            match self
                .host
                .image_signatures(pinned, &entry.signer, &entry.annotations)
                .map_err(|e| host_failure(pinned, &e))?
            {
                Ok(_) => verified = verified.saturating_add(1),
                Err(rejection) => {
                    reasons.push(format!("{}: {}", entry.name, rejection_text(&rejection)))
                }
            }
        }
        Ok((verified < set.count).then(|| {
            format!(
                "{verified} of the {} required signers verified ({})",
                set.count,
                reasons.join("; ")
            )
        }))
    }

    /// Why the attestation requirement does not hold, or `None`.
    fn attestation(
        &mut self,
        pinned: &str,
        requirement: &PreparedAttestation,
    ) -> Result<Option<String>, PolicyError> {
        let mut statements: Vec<(String, Value)> = Vec::new();
        for set in &requirement.attestors {
            let mut verified = 0_usize;
            let mut reasons = Vec::new();
            for entry in &set.entries {
                let mut found = false;
                for predicate_type in &requirement.predicate_types {
                    let answer: Verified<_> = self
                        .host
                        .image_attestations(pinned, &entry.signer, predicate_type)
                        .map_err(|e| host_failure(pinned, &e))?;
                    match answer {
                        Ok(attestations) => {
                            found = true;
                            for a in attestations {
                                let statement: Value =
                                    serde_json::from_str(&a.statement).map_err(|e| {
                                        PolicyError::Internal(format!(
                                            "the host gave a statement that is not JSON: {e}"
                                        ))
                                    })?;
                                statements.push((
                                    format!("{} ({})", entry.name, a.signed_by.source),
                                    statement,
                                ));
                            }
                        }
                        Err(rejection) => reasons.push(format!(
                            "{} ({predicate_type}): {}",
                            entry.name,
                            rejection_text(&rejection)
                        )),
                    }
                }
                if found {
                    verified = verified.saturating_add(1);
                }
            }
            if verified < set.count {
                return Ok(Some(format!(
                    "{verified} of the {} required signers attested it ({})",
                    set.count,
                    reasons.join("; ")
                )));
            }
        }
        let checks = requirement.provenance.is_some()
            || requirement.vulnerabilities.is_some()
            || requirement.sbom.is_some();
        if !checks {
            return Ok(None);
        }
        let mut reasons = Vec::new();
        for (by, statement) in &statements {
            match self.statement(statement, requirement) {
                None => return Ok(None),
                Some(why) => reasons.push(format!("{by}: {why}")),
            }
        }
        Ok(Some(format!(
            "no attestation satisfies it: {}",
            reasons.join("; ")
        )))
    }

    /// Why one statement does not satisfy the requirement's checks, or `None`.
    fn statement(
        &mut self,
        statement: &Value,
        requirement: &PreparedAttestation,
    ) -> Option<String> {
        let mut why = Vec::new();
        if let Some((builders, sources)) = &requirement.provenance {
            why.extend(attestation::provenance(statement, builders, sources));
        }
        if let Some((limits, max_age)) = &requirement.vulnerabilities {
            let now = if max_age.is_some() { self.now() } else { None };
            match attestation::vulnerabilities(statement, limits, *max_age, now) {
                Ok(found) => why.extend(found),
                Err(unreadable) => why.push(unreadable),
            }
        }
        if let Some(limits) = &requirement.sbom {
            why.extend(attestation::sbom(statement, limits));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    fn now(&mut self) -> Option<Duration> {
        *self.now.get_or_insert_with(|| self.host.now().ok())
    }
}

fn rejection_text(rejection: &Rejection) -> String {
    match rejection {
        Rejection::Missing(why) => format!("missing: {why}"),
        Rejection::Unverified(why) => format!("not verified: {why}"),
    }
}

#[cfg(feature = "admission-component")]
palisade_sdk::export_admission!(ImageSignature);
