//! The policy's settings, parsed and checked once: rules by image pattern, the signers they
//! trust, the attestations they require, and the checks that need no registry (allowed
//! registries, `:latest`, digests).

use std::collections::BTreeMap;

use base64::Engine as _;
use palisade_sdk::host::images::{self, Identity, Pattern, Signer};
use palisade_sdk::{PolicySettings, SettingsError};
use serde::{Deserialize, Deserializer};

use crate::reference::Glob;

/// Settings of the `image-signature` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Rules by image pattern; every rule that matches an image applies to it.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Registries (`registry.example.com`) and repository patterns
    /// (`ghcr.io/example/**`) images may come from; any when empty.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    /// Deny images tagged `latest`, or with neither tag nor digest.
    #[serde(default)]
    pub deny_latest: bool,
    /// What happens to an image no rule matches: `allow` (the default) or `deny`.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// On UPDATE, verify every image, not only those the update adds or changes.
    #[serde(default)]
    pub verify_unchanged: bool,
}

/// What happens to an image no rule matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Unmatched {
    /// It is allowed (after the allowed-registry and `latest` checks).
    #[default]
    Allow,
    /// It is denied: every image must be covered by a rule.
    Deny,
}

/// What a rule does with digests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DigestMode {
    /// Tags are fine.
    #[default]
    Allow,
    /// The image must be written with its digest (`name@sha256:...`).
    Require,
    /// A tag is rewritten to `name:tag@<digest that was verified>` (a JSONPatch; the policy
    /// is then a mutating one).
    Mutate,
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Its name in messages; `rules[<index>]` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The image names (`registry/repository`) it applies to, as patterns.
    pub images: Vec<String>,
    /// Image names it does not apply to, among those.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Signers that must have signed the image: every set must be satisfied.
    #[serde(default)]
    pub signatures: Vec<AttestorSet>,
    /// Attestations the image must carry.
    #[serde(default)]
    pub attestations: Vec<AttestationRule>,
    /// Digest pinning.
    #[serde(default)]
    pub digest: DigestMode,
}

/// Signers of which `count` must have signed (all of them when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestorSet {
    /// How many entries must verify: 1 is any-of, the number of entries (the default) all-of.
    #[serde(default)]
    pub count: Option<usize>,
    /// The signers.
    pub entries: Vec<Attestor>,
}

/// One signer: a public key or a keyless identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestor {
    /// Its name in messages.
    #[serde(default)]
    pub name: Option<String>,
    /// A PEM public key (ECDSA P-256/P-384, RSA, Ed25519).
    #[serde(default)]
    pub key: Option<String>,
    /// A keyless identity.
    #[serde(default)]
    pub keyless: Option<Keyless>,
    /// Annotations its signature must carry (signatures only).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A Fulcio certificate's identity, as cosign's `--certificate-identity[-regexp]` and
/// `--certificate-oidc-issuer[-regexp]` name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keyless {
    /// The subject, exactly.
    #[serde(default)]
    pub subject: Option<String>,
    /// The subject, by regular expression (unanchored).
    #[serde(default)]
    pub subject_regexp: Option<String>,
    /// The OIDC issuer, exactly.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The OIDC issuer, by regular expression.
    #[serde(default)]
    pub issuer_regexp: Option<String>,
    /// Certificate claims by Fulcio's names, exactly (`githubWorkflowRepository: example/app`).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Certificate claims by regular expression.
    #[serde(default)]
    pub claim_regexps: BTreeMap<String, String>,
}

/// An attestation an image must carry, and what it must say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationRule {
    /// Its name in messages; the predicate type when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The predicate type (a URI or one of cosign's aliases: `slsaprovenance1`, `vuln`,
    /// `spdx`, `cyclonedx`, ...), or several, any of which will do.
    #[serde(deserialize_with = "one_or_many")]
    pub predicate_type: Vec<String>,
    /// Who must have signed it: every set satisfied.
    pub attestors: Vec<AttestorSet>,
    /// SLSA provenance: allowed builders and source repositories.
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// Vulnerability report thresholds.
    #[serde(default)]
    pub vulnerabilities: Option<Vulnerabilities>,
    /// SBOM contents.
    #[serde(default)]
    pub sbom: Option<Sbom>,
}

/// What a provenance must show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    /// Builder ids (`runDetails.builder.id`, v0.2's `builder.id`), as patterns.
    #[serde(default)]
    pub builder_ids: Vec<String>,
    /// Source repositories (`https://github.com/example/app`), as patterns over the URI
    /// without `git+`, ref and `.git`.
    #[serde(default)]
    pub source_repositories: Vec<String>,
}

/// Thresholds on a vulnerability report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vulnerabilities {
    /// No vulnerability above this severity.
    #[serde(default)]
    pub max_severity: Option<Severity>,
    /// At most this many vulnerabilities of a severity.
    #[serde(default)]
    pub max_count: BTreeMap<Severity, u32>,
    /// Vulnerability ids that are not counted (`CVE-2026-1000`, `GHSA-...`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// The scan must have finished at most this long ago (`72h`, `7d`, `30m`); needs the
    /// `clock` capability.
    #[serde(default)]
    pub max_age: Option<String>,
}

/// What an SBOM must not contain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sbom {
    /// Packages by name, or `name@version`.
    #[serde(default)]
    pub denied_packages: Vec<String>,
    /// Licenses by SPDX id (`GPL-3.0-only`), anywhere in a package's license expression.
    #[serde(default)]
    pub denied_licenses: Vec<String>,
}

/// Vulnerability severities, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Unknown or unrated.
    Unknown,
    /// Negligible.
    Negligible,
    /// Low.
    Low,
    /// Medium (moderate).
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Reads a scanner's severity, case-insensitively (`MODERATE` is medium).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "UNKNOWN" | "" => Self::Unknown,
            "NEGLIGIBLE" => Self::Negligible,
            "LOW" => Self::Low,
            "MEDIUM" | "MODERATE" => Self::Medium,
            "HIGH" => Self::High,
            "CRITICAL" => Self::Critical,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unknown => "UNKNOWN",
            Self::Negligible => "NEGLIGIBLE",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        })
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a severity: UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH or CRITICAL"
            ))
        })
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        Prepared::new(self).map(drop)
    }
}

/// Settings made ready for requests: patterns compiled, signers built, types resolved.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The rules.
    pub rules: Vec<PreparedRule>,
    /// Allowed registries and repositories (empty: any).
    pub allowed: Vec<Glob>,
    /// Deny `latest`.
    pub deny_latest: bool,
    /// Unmatched images.
    pub unmatched: Unmatched,
    /// Verify unchanged images on UPDATE.
    pub verify_unchanged: bool,
}

/// A rule made ready.
#[derive(Debug, Clone)]
pub struct PreparedRule {
    /// Its name in messages.
    pub name: String,
    /// Images it applies to.
    pub images: Vec<Glob>,
    /// Images it does not.
    pub exclude: Vec<Glob>,
    /// Signer sets for signatures.
    pub signatures: Vec<SignerSet>,
    /// Attestations.
    pub attestations: Vec<PreparedAttestation>,
    /// Digest pinning.
    pub digest: DigestMode,
}

impl PreparedRule {
    /// Whether the rule applies to the image named `name` (`registry/repository`).
    #[must_use]
    pub fn applies_to(&self, name: &str) -> bool {
        self.images.iter().any(|g| g.matches(name)) && !self.exclude.iter().any(|g| g.matches(name))
    }

    /// Whether it needs the registry (signatures or attestations to verify).
    #[must_use]
    pub fn verifies(&self) -> bool {
        !self.signatures.is_empty() || !self.attestations.is_empty()
    }
}

/// Signers of which `count` must verify.
#[derive(Debug, Clone)]
pub struct SignerSet {
    /// How many.
    pub count: usize,
    /// The signers, with their names and annotations.
    pub entries: Vec<PreparedSigner>,
}

/// A signer made ready.
#[derive(Debug, Clone)]
pub struct PreparedSigner {
    /// Its name in messages.
    pub name: String,
    /// Who.
    pub signer: Signer,
    /// Annotations its signature must carry.
    pub annotations: Vec<(String, String)>,
}

/// An attestation requirement made ready.
#[derive(Debug, Clone)]
pub struct PreparedAttestation {
    /// Its name in messages.
    pub name: String,
    /// Predicate type URIs, any of which will do.
    pub predicate_types: Vec<String>,
    /// Signer sets.
    pub attestors: Vec<SignerSet>,
    /// Provenance checks: builder and source patterns.
    pub provenance: Option<(Vec<Glob>, Vec<Glob>)>,
    /// Vulnerability thresholds, with the maximum age in seconds.
    pub vulnerabilities: Option<(Vulnerabilities, Option<u64>)>,
    /// SBOM checks.
    pub sbom: Option<Sbom>,
}

impl Prepared {
    /// Checks and prepares `settings`.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the setting.
    pub fn new(settings: &Settings) -> Result<Self, SettingsError> {
        let allowed = settings
            .allowed_registries
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Glob::new(text)
                    .map_err(|e| SettingsError::new(format!("allowedRegistries[{i}]"), e))
            })
            .collect::<Result<_, _>>()?;
        let rules = settings
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| prepare_rule(&format!("rules[{i}]"), rule))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            allowed,
            deny_latest: settings.deny_latest,
            unmatched: settings.unmatched,
            verify_unchanged: settings.verify_unchanged,
        })
    }

    /// Whether a rule rewrites images (the policy's verdicts may carry patches).
    #[must_use]
    pub fn mutates(&self) -> bool {
        self.rules.iter().any(|r| r.digest == DigestMode::Mutate)
    }
}

fn globs(path: &str, patterns: &[String]) -> Result<Vec<Glob>, SettingsError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, text)| Glob::new(text).map_err(|e| SettingsError::new(format!("{path}[{i}]"), e)))
        .collect()
}

fn prepare_rule(path: &str, rule: &Rule) -> Result<PreparedRule, SettingsError> {
    if rule.images.is_empty() {
        return Err(SettingsError::new(
            format!("{path}.images"),
            "names no image pattern (use \"**\" for every image)",
        ));
    }
    if rule.signatures.is_empty()
        && rule.attestations.is_empty()
        && rule.digest != DigestMode::Require
    {
        return Err(SettingsError::new(
            path,
            "requires nothing: give signatures, attestations or digest: require",
        ));
    }
    if rule.digest == DigestMode::Mutate
        && rule.signatures.is_empty()
        && rule.attestations.is_empty()
    {
        return Err(SettingsError::new(
            format!("{path}.digest"),
            "mutate rewrites images to the digest that was verified, so the rule needs signatures or attestations",
        ));
    }
    let signatures = rule
        .signatures
        .iter()
        .enumerate()
        .map(|(i, set)| signer_set(&format!("{path}.signatures[{i}]"), set, true))
        .collect::<Result<_, _>>()?;
    let attestations = rule
        .attestations
        .iter()
        .enumerate()
        .map(|(i, a)| prepare_attestation(&format!("{path}.attestations[{i}]"), a))
        .collect::<Result<_, _>>()?;
    Ok(PreparedRule {
        name: rule.name.clone().unwrap_or_else(|| path.to_owned()),
        images: globs(&format!("{path}.images"), &rule.images)?,
        exclude: globs(&format!("{path}.exclude"), &rule.exclude)?,
        signatures,
        attestations,
        digest: rule.digest,
    })
}

fn signer_set(
    path: &str,
    set: &AttestorSet,
    annotations: bool,
) -> Result<SignerSet, SettingsError> {
    if set.entries.is_empty() {
        return Err(SettingsError::new(
            format!("{path}.entries"),
            "names no signer",
        ));
    }
    let count = set.count.unwrap_or(set.entries.len());
    if count == 0 || count > set.entries.len() {
        return Err(SettingsError::new(
            format!("{path}.count"),
            format!(
                "must be between 1 and the number of entries ({})",
                set.entries.len()
            ),
        ));
    }
    let entries = set
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| prepare_signer(&format!("{path}.entries[{i}]"), entry, annotations))
        .collect::<Result<_, _>>()?;
    Ok(SignerSet { count, entries })
}

fn prepare_signer(
    path: &str,
    entry: &Attestor,
    annotations: bool,
) -> Result<PreparedSigner, SettingsError> {
    if !annotations && !entry.annotations.is_empty() {
        return Err(SettingsError::new(
            format!("{path}.annotations"),
            "only signatures carry annotations",
        ));
    }
    let (signer, described) = match (&entry.key, &entry.keyless) {
        (Some(key), None) => {
            check_pem(key).map_err(|e| SettingsError::new(format!("{path}.key"), e))?;
            (
                Signer::Key(key.trim().to_owned()),
                format!("key {}", key_label(key)),
            )
        }
        (None, Some(keyless)) => {
            let identity = identity(&format!("{path}.keyless"), keyless)?;
            let described = format!(
                "keyless {}",
                keyless
                    .subject
                    .as_deref()
                    .or(keyless.subject_regexp.as_deref())
                    .unwrap_or_default()
            );
            (Signer::Keyless(identity), described)
        }
        _ => {
            return Err(SettingsError::new(
                path,
                "give exactly one of key and keyless",
            ));
        }
    };
    Ok(PreparedSigner {
        name: entry.name.clone().unwrap_or(described),
        signer,
        annotations: entry
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// A short label of a PEM key for messages: the start of its base64 body after the algorithm
/// prefix, which differs between keys.
fn key_label(pem: &str) -> String {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let tail: String = body
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("...{tail}")
}

/// Checks that `pem` is one PEM `PUBLIC KEY` block with a base64 body.
fn check_pem(pem: &str) -> Result<(), String> {
    let text = pem.trim();
    let body = text
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or(
            "is not a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)",
        )?;
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    // A SubjectPublicKeyInfo is a DER SEQUENCE whose first member, the AlgorithmIdentifier,
    // names the algorithm (and for EC keys the curve) by object identifier.
    if der.first() != Some(&0x30) || der.len() < 32 {
        return Err("the PEM body is not a SubjectPublicKeyInfo".to_owned());
    }
    let algorithm = der.get(..24.min(der.len())).unwrap_or_default();
    let has = |oid: &[u8]| algorithm.windows(oid.len()).any(|w| w == oid);
    let supported = if has(EC_PUBLIC_KEY) {
        has(P256) || has(P384)
    } else {
        has(RSA_ENCRYPTION) || has(ED25519)
    };
    if !supported {
        return Err(
            "the key's algorithm is not supported: give an ECDSA P-256 or P-384, RSA or Ed25519 public key"
                .to_owned(),
        );
    }
    Ok(())
}

/// DER object identifiers (tag, length, value) of the supported key algorithms and curves.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn regexp(path: &str, pattern: &str) -> Result<Pattern, SettingsError> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| SettingsError::new(path, format!("not a regular expression: {e}")))?;
    Ok(Pattern::Regexp(pattern.to_owned()))
}

fn exact_or_regexp(
    path: &str,
    name: &str,
    exact: Option<&String>,
    pattern: Option<&String>,
) -> Result<Pattern, SettingsError> {
    match (exact, pattern) {
        (Some(value), None) => Ok(Pattern::Exact(value.clone())),
        (None, Some(pattern)) => regexp(&format!("{path}.{name}Regexp"), pattern),
        _ => Err(SettingsError::new(
            path,
            format!(
                "give exactly one of {name} and {name}Regexp (cosign requires both an identity and an issuer)"
            ),
        )),
    }
}

fn identity(path: &str, keyless: &Keyless) -> Result<Identity, SettingsError> {
    let subject = exact_or_regexp(
        path,
        "subject",
        keyless.subject.as_ref(),
        keyless.subject_regexp.as_ref(),
    )?;
    let issuer = exact_or_regexp(
        path,
        "issuer",
        keyless.issuer.as_ref(),
        keyless.issuer_regexp.as_ref(),
    )?;
    let mut claims = Vec::new();
    for (name, value) in &keyless.claims {
        check_claim(&format!("{path}.claims.{name}"), name)?;
        claims.push((name.clone(), Pattern::Exact(value.clone())));
    }
    for (name, pattern) in &keyless.claim_regexps {
        let at = format!("{path}.claimRegexps.{name}");
        check_claim(&at, name)?;
        claims.push((name.clone(), regexp(&at, pattern)?));
    }
    Ok(Identity {
        subject,
        issuer,
        claims,
    })
}

fn check_claim(path: &str, name: &str) -> Result<(), SettingsError> {
    if images::FULCIO_CLAIMS.contains(&name) {
        Ok(())
    } else {
        Err(SettingsError::new(
            path,
            format!(
                "is not one of Fulcio's certificate claims: {}",
                images::FULCIO_CLAIMS.join(", ")
            ),
        ))
    }
}

fn prepare_attestation(
    path: &str,
    rule: &AttestationRule,
) -> Result<PreparedAttestation, SettingsError> {
    if rule.predicate_type.is_empty() {
        return Err(SettingsError::new(
            format!("{path}.predicateType"),
            "names no predicate type",
        ));
    }
    let predicate_types = rule
        .predicate_type
        .iter()
        .map(|name| {
            images::predicate_type(name)
                .map(str::to_owned)
                .map_err(|e| SettingsError::new(format!("{path}.predicateType"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rule.attestors.is_empty() {
        return Err(SettingsError::new(
            format!("{path}.attestors"),
            "names no signer: an attestation counts only when someone trusted signed it",
        ));
    }
    let attestors = rule
        .attestors
        .iter()
        .enumerate()
        .map(|(i, set)| signer_set(&format!("{path}.attestors[{i}]"), set, false))
        .collect::<Result<_, _>>()?;
    let provenance = match &rule.provenance {
        None => None,
        Some(p) => {
            if !predicate_types
                .iter()
                .all(|t| t.starts_with("https://slsa.dev/provenance/"))
            {
                return Err(SettingsError::new(
                    format!("{path}.provenance"),
                    "applies to SLSA provenance (slsaprovenance02, slsaprovenance1)",
                ));
            }
            if p.builder_ids.is_empty() && p.source_repositories.is_empty() {
                return Err(SettingsError::new(
                    format!("{path}.provenance"),
                    "give builderIds, sourceRepositories or both",
                ));
            }
            let sources: Vec<String> = p
                .source_repositories
                .iter()
                .map(|s| crate::attestation::source_name(s))
                .collect();
            Some((
                globs_any(&format!("{path}.provenance.builderIds"), &p.builder_ids)?,
                globs_any(&format!("{path}.provenance.sourceRepositories"), &sources)?,
            ))
        }
    };
    let vulnerabilities = match &rule.vulnerabilities {
        None => None,
        Some(v) => {
            let age = v
                .max_age
                .as_deref()
                .map(|text| {
                    parse_age(text).ok_or_else(|| {
                        SettingsError::new(
                            format!("{path}.vulnerabilities.maxAge"),
                            format!("{text:?} is not a duration such as 30m, 72h or 7d"),
                        )
                    })
                })
                .transpose()?;
            if v.max_severity.is_none() && v.max_count.is_empty() && age.is_none() {
                return Err(SettingsError::new(
                    format!("{path}.vulnerabilities"),
                    "give maxSeverity, maxCount, maxAge or several",
                ));
            }
            Some((v.clone(), age))
        }
    };
    Ok(PreparedAttestation {
        name: rule
            .name
            .clone()
            .unwrap_or_else(|| rule.predicate_type.join(" or ")),
        predicate_types,
        attestors,
        provenance,
        vulnerabilities,
        sbom: rule.sbom.clone(),
    })
}

/// Patterns over any text (builder ids and source URIs are not image names: no registry
/// widening).
fn globs_any(path: &str, patterns: &[String]) -> Result<Vec<Glob>, SettingsError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, text)| Glob::any(text).map_err(|e| SettingsError::new(format!("{path}[{i}]"), e)))
        .collect()
}

/// `30s`, `30m`, `72h`, `7d` in seconds.
fn parse_age(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let number: u64 = text.get(..text.len().checked_sub(1)?)?.parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    number.checked_mul(scale).filter(|&s| s > 0)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::check_pem;

    #[test]
    fn keys_of_supported_algorithms_only() {
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAED+jjkl5suDNPqBi8hW2JYAOPacmQ\nGYV7CwUyAYXldr7Vrnfd9OxzTzuTjBZlNgo8UN+7i3k8zciKU5BjxJHmyQ==\n-----END PUBLIC KEY-----\n";
        assert_eq!(check_pem(p256), Ok(()));
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
        assert_eq!(check_pem(ed25519), Ok(()));
        // P-521 and DSA keys are well-formed, but cosign's verifiers here do not take them.
        let p521 = "-----BEGIN PUBLIC KEY-----\nMIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQBVtFxstsvBEcMy+ojUt05yNQ+728m\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PUBLIC KEY-----";
        assert!(check_pem(p521).unwrap_err().contains("not supported"));
        let dsa = "-----BEGIN PUBLIC KEY-----\nMIIBvjCCATMGByqGSM44BAEwggEmAoGBAJlVy+IUQ1PDKq4v0WxwUUsqnGsm06PS\n-----END PUBLIC KEY-----";
        assert!(check_pem(dsa).unwrap_err().contains("not supported"));
        assert!(
            check_pem("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----")
                .unwrap_err()
                .contains("base64")
        );
    }
}
