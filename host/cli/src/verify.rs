//! `palisade verify-blob` and `palisade sign-blob`, with cosign's meaning: a blob signed with a
//! key (`--key` and `--signature`), or a Sigstore bundle (`--bundle`) checked against a trusted
//! root, by key or by keyless identity. Exit 0 only when the signature verifies; 1 when it does
//! not; 2 when the input cannot be used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use palisade_suite::input;
use palisade_supply_chain::bundle::{self, Artifact, Identity, Signer, TrustRoot};
use palisade_supply_chain::dsse::decode_base64;
use palisade_supply_chain::keys::{Digest, PublicKey, SigningKey};

use crate::output;

/// Who must have signed a bundle: a key, or a keyless identity (cosign's flags).
#[derive(Debug, Args)]
pub(crate) struct SignerArgs {
    /// Public key (PEM: SubjectPublicKeyInfo or PKCS#1 RSA) the signature must verify with.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["certificate_identity", "certificate_identity_regexp"])]
    key: Option<PathBuf>,
    /// Keyless: the certificate's subject (URI or email SAN), exactly.
    #[arg(long, value_name = "SUBJECT")]
    certificate_identity: Option<String>,
    /// Keyless: the certificate's subject by regular expression (unanchored, as cosign's).
    #[arg(long, value_name = "REGEXP", conflicts_with = "certificate_identity")]
    certificate_identity_regexp: Option<String>,
    /// Keyless: the certificate's OIDC issuer, exactly.
    #[arg(long, value_name = "URL")]
    certificate_oidc_issuer: Option<String>,
    /// Keyless: the certificate's OIDC issuer by regular expression (unanchored).
    #[arg(
        long,
        value_name = "REGEXP",
        conflicts_with = "certificate_oidc_issuer"
    )]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: a Fulcio certificate claim that must have this value, as NAME=VALUE
    /// (sourceRepositoryURI, sourceRepositoryRef, buildSignerURI, githubWorkflowRepository, ...);
    /// repeatable.
    #[arg(long = "certificate-claim", value_name = "NAME=VALUE", value_parser = parse_claim)]
    certificate_claims: Vec<(String, String)>,
    /// Keyless: the certificate's githubWorkflowTrigger claim (OID .1.2).
    #[arg(long, value_name = "TRIGGER")]
    certificate_github_workflow_trigger: Option<String>,
    /// Keyless: the certificate's githubWorkflowSHA claim (OID .1.3).
    #[arg(long, value_name = "SHA")]
    certificate_github_workflow_sha: Option<String>,
    /// Keyless: the certificate's githubWorkflowName claim (OID .1.4).
    #[arg(long, value_name = "NAME")]
    certificate_github_workflow_name: Option<String>,
    /// Keyless: the certificate's githubWorkflowRepository claim (OID .1.5, owner/repo).
    #[arg(long, value_name = "REPOSITORY")]
    certificate_github_workflow_repository: Option<String>,
    /// Keyless: the certificate's githubWorkflowRef claim (OID .1.6).
    #[arg(long, value_name = "REF")]
    certificate_github_workflow_ref: Option<String>,
    /// Trusted root (Sigstore `trusted_root.json`) for bundles [default: Sigstore's public-good
    /// instance, as shipped].
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Use Sigstore's staging instance's trusted root, as shipped.
    #[arg(long, conflicts_with = "trusted_root")]
    staging: bool,
}

fn parse_claim(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if !bundle::CLAIMS.contains(&name) {
        return Err(format!(
            "unknown certificate claim `{name}`; known: {}",
            bundle::CLAIMS.join(", ")
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn regexp(flag: &str, text: Option<&String>) -> anyhow::Result<Option<regex::Regex>> {
    text.map(|t| regex::Regex::new(t).with_context(|| format!("--{flag} `{t}`")))
        .transpose()
}

impl SignerArgs {
    /// The signer these flags name.
    pub(crate) fn signer(&self) -> anyhow::Result<Signer> {
        if let Some(path) = &self.key {
            let key = PublicKey::from_pem(&input::read_text(path)?)
                .with_context(|| format!("--key {}", path.display()))?;
            return Ok(Signer::Key(key));
        }
        let mut claims: BTreeMap<String, String> =
            self.certificate_claims.iter().cloned().collect();
        for (name, value) in [
            (
                "githubWorkflowTrigger",
                &self.certificate_github_workflow_trigger,
            ),
            ("githubWorkflowSHA", &self.certificate_github_workflow_sha),
            ("githubWorkflowName", &self.certificate_github_workflow_name),
            (
                "githubWorkflowRepository",
                &self.certificate_github_workflow_repository,
            ),
            ("githubWorkflowRef", &self.certificate_github_workflow_ref),
        ] {
            if let Some(value) = value {
                claims.insert(name.to_owned(), value.clone());
            }
        }
        let identity = Identity {
            subject: self.certificate_identity.clone(),
            subject_regexp: regexp(
                "certificate-identity-regexp",
                self.certificate_identity_regexp.as_ref(),
            )?,
            issuer: self.certificate_oidc_issuer.clone(),
            issuer_regexp: regexp(
                "certificate-oidc-issuer-regexp",
                self.certificate_oidc_issuer_regexp.as_ref(),
            )?,
            claims,
            claim_regexps: BTreeMap::new(),
        };
        if let Err(e) = identity.check() {
            bail!("give --key, or a keyless identity: {e}");
        }
        Ok(Signer::Keyless(vec![identity]))
    }

    /// Whether a trusted root was named (a file, or staging's).
    pub(crate) fn has_trust_root(&self) -> bool {
        self.trusted_root.is_some() || self.staging
    }

    /// The trusted root these flags name.
    pub(crate) fn trust_root(&self) -> anyhow::Result<TrustRoot> {
        let root = match (&self.trusted_root, self.staging) {
            (Some(path), _) => {
                TrustRoot::from_json(&input::read_text(path)?, &path.display().to_string())
            }
            (None, true) => TrustRoot::staging(),
            (None, false) => TrustRoot::production(),
        };
        root.map_err(anyhow::Error::msg)
    }
}

/// `palisade verify-blob`.
#[derive(Debug, Args)]
pub(crate) struct VerifyBlobArgs {
    /// The blob, or its digest as sha256:<hex> (for a bundle; a file of that name wins).
    #[arg(value_name = "FILE_OR_DIGEST")]
    blob: String,
    /// Signature over the blob (base64, as `cosign sign-blob` writes it, or raw bytes), with
    /// --key.
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "bundle")]
    signature: Option<PathBuf>,
    /// Sigstore bundle (v0.1, v0.2, v0.3; a message signature or a DSSE envelope).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    signer: SignerArgs,
}

/// A blob given on the command line: a file, or a digest.
enum Blob {
    Bytes(Vec<u8>),
    Digest(Digest),
}

fn read_blob(text: &str) -> anyhow::Result<Blob> {
    let path = Path::new(text);
    if !path.exists()
        && let Some(hex_digits) = text.strip_prefix("sha256:")
        && hex_digits.len() == 64
    {
        return Ok(Blob::Digest(
            Digest::parse(text).map_err(anyhow::Error::msg)?,
        ));
    }
    Ok(Blob::Bytes(input::read_bytes(path)?))
}

pub(crate) fn verify_blob(args: &VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    let blob = read_blob(&args.blob)?;
    let signer = args.signer.signer()?;
    let verdict = match (&args.bundle, &args.signature, &signer) {
        (Some(path), _, _) => {
            let json = input::read_text(path)?;
            let root = args.signer.trust_root()?;
            let artifact = match &blob {
                Blob::Bytes(bytes) => Artifact::Bytes(bytes),
                Blob::Digest(digest) => Artifact::Digest(digest),
            };
            bundle::verify(&root, &json, artifact, &signer).map(|verified| {
                match verified.certificate {
                    Some(c) => format!("signed by {} from {}", c.subject, c.issuer),
                    None => "signed with the key".to_owned(),
                }
            })
        }
        (None, Some(path), Signer::Key(key)) => {
            let raw = input::read_bytes(path)?;
            let signature = std::str::from_utf8(&raw)
                .ok()
                .and_then(|text| decode_base64(text.trim()).ok())
                .unwrap_or(raw);
            match &blob {
                Blob::Bytes(bytes) => key.verify(bytes, &signature),
                Blob::Digest(digest) => key.verify_digest(digest, &signature),
            }
            .map(|()| "signed with the key".to_owned())
            .map_err(|e| e.to_string())
        }
        _ => bail!("give --bundle, or --key with --signature"),
    };
    match verdict {
        Ok(what) => {
            output::note(format_args!("Verified OK: {} {what}", args.blob));
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            output::note(format_args!("error: {}: {reason}", args.blob));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `palisade sign-blob`.
#[derive(Debug, Args)]
pub(crate) struct SignBlobArgs {
    /// The blob to sign.
    #[arg(value_name = "FILE")]
    blob: PathBuf,
    /// Private key (PEM: PKCS#8, SEC 1 or PKCS#1).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the base64 signature [default: standard output].
    #[arg(long, value_name = "FILE")]
    output_signature: Option<PathBuf>,
}

pub(crate) fn sign_blob(args: &SignBlobArgs) -> anyhow::Result<ExitCode> {
    let blob = input::read_bytes(&args.blob)?;
    let key = SigningKey::from_pem(&input::read_text(&args.key)?)
        .with_context(|| format!("--key {}", args.key.display()))?;
    let signature = palisade_supply_chain::dsse::encode_base64(&key.sign(&blob)?);
    match &args.output_signature {
        Some(path) => std::fs::write(path, &signature)
            .with_context(|| format!("writing {}", path.display()))?,
        None => output::line(signature)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `palisade generate-key-pair`.
#[derive(Debug, Args)]
pub(crate) struct GenerateKeyPairArgs {
    /// Write <PREFIX>.key (PKCS#8, unencrypted: keep it secret) and <PREFIX>.pub.
    #[arg(long, default_value = "palisade", value_name = "PREFIX")]
    output_key_prefix: PathBuf,
    /// The key's algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcdsaP256)]
    algorithm: KeyAlgorithm,
}

/// Algorithms `generate-key-pair` makes keys of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeyAlgorithm {
    /// ECDSA on P-256 (cosign's).
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA, 3072 bits.
    Rsa3072,
}

pub(crate) fn generate_key_pair(args: &GenerateKeyPairArgs) -> anyhow::Result<ExitCode> {
    let key = match args.algorithm {
        KeyAlgorithm::EcdsaP256 => SigningKey::generate_p256(),
        KeyAlgorithm::EcdsaP384 => SigningKey::generate_p384(),
        KeyAlgorithm::Ed25519 => SigningKey::generate_ed25519(),
        KeyAlgorithm::Rsa3072 => SigningKey::generate_rsa(3072)?,
    };
    let private = args.output_key_prefix.with_extension("key");
    let public = args.output_key_prefix.with_extension("pub");
    for path in [&private, &public] {
        if path.exists() {
            bail!("{} exists: not overwriting it", path.display());
        }
    }
    write_private(&private, key.to_pkcs8_pem()?.as_bytes())?;
    std::fs::write(&public, key.public_key().to_pem())
        .with_context(|| format!("writing {}", public.display()))?;
    output::note(format_args!(
        "Private key written to {}\nPublic key written to {}",
        private.display(),
        public.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}
