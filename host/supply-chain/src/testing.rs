//! A local Sigstore for tests (feature `testing`): a Fulcio-like CA, a Rekor v1 log, a CT log and
//! an RFC 3161 timestamp authority that issue certificates and make keyless and key-based
//! bundles offline, and the `trusted_root.json` that trusts them. No network.
//!
//! What it makes follows the formats [`crate::bundle`] verifies (protobuf-specs
//! `sigstore_bundle.proto` and `sigstore_trustroot.proto`, Rekor's `hashedrekord` and `dsse`
//! 0.0.1 schemas, RFC 6962 for SCTs and Merkle trees, C2SP `signed-note` for checkpoints,
//! RFC 3161 and RFC 5652 for timestamps), and it can leave defects in on purpose ([`Defect`])
//! so tests see each one rejected.
//!
//! ```
//! use palisade_supply_chain::bundle::{self, Artifact, Identity, Signer};
//! use palisade_supply_chain::testing::{CertificateRequest, Credential, Instance, Options, Version};
//!
//! let sigstore = Instance::new()?;
//! let leaf = sigstore.issue(&CertificateRequest::email("dev@example.com", "https://issuer.example"))?;
//! let json = sigstore.sign_blob(Credential::Keyless(&leaf), b"artefact", &Options::new(Version::V0_3))?;
//! let identity = Identity {
//!     subject: Some("dev@example.com".to_owned()),
//!     issuer: Some("https://issuer.example".to_owned()),
//!     ..Identity::default()
//! };
//! let verified = bundle::verify(
//!     &sigstore.trust_root()?,
//!     &json,
//!     Artifact::Bytes(b"artefact"),
//!     &Signer::Keyless(vec![identity]),
//! )?;
//! assert!(verified.certificate.is_some());
//! # Ok::<(), String>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ecdsa::signature::Signer as _;
use pkcs8::EncodePublicKey as _;
use rand_core::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use x509_cert::certificate::{Certificate, TbsCertificate, Version as CertificateVersion};
use x509_cert::der::asn1::{
    BitString, GeneralizedTime, Ia5String, OctetString, Uint, UtcTime, Utf8StringRef,
};
use x509_cert::der::oid::{AssociatedOid as _, ObjectIdentifier};
use x509_cert::der::{DateTime, Decode as _, Encode as _};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

pub mod images;

use crate::bundle::{CLAIMS, TrustRoot};
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Statement};
use crate::keys::{SigningKey, pem_encode};

/// The Rekor log's URL in the trusted root; its host names the log in checkpoints.
pub const REKOR_URL: &str = "https://rekor.sigstore.test";
/// The Fulcio CA's URL in the trusted root.
pub const FULCIO_URL: &str = "https://fulcio.sigstore.test";
/// The CT log's URL in the trusted root.
pub const CT_URL: &str = "https://ctfe.sigstore.test";
/// The timestamp authority's URL in the trusted root.
pub const TSA_URL: &str = "https://tsa.sigstore.test";

/// The checkpoint signer name of the Rekor log (the host of [`REKOR_URL`]), as Rekor v1 writes it.
const REKOR_NAME: &str = "rekor.sigstore.test";
/// Entries logged in earlier shards: a Rekor v1 entry's `logIndex` is global, its inclusion
/// proof's index is the one in the current tree (reference §1.4), so the two differ here too.
const EARLIER_SHARDS: u64 = 1_000_000;
/// Unrelated entries in the log before the first of ours.
const SEED_ENTRIES: usize = 3;
/// How long the trusted root's `validFor` windows extend either side of the instance's creation.
const TRUST_WINDOW: i64 = 24 * 3600;

/// ecdsa-with-SHA384 (RFC 5758 §3.2): how the CAs sign certificates.
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// id-kp-codeSigning (RFC 5280 §4.2.1.12).
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// The embedded SCT list (RFC 6962 §3.3).
const CT_PRECERT_SCTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
/// Fulcio's OIDC issuer, deprecated form: the raw string (fulcio `docs/oid-info.md`).
const FULCIO_ISSUER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer, a DER UTF8String.
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// The Sigstore bundle version to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`: the certificate as
    /// `x509CertificateChain` (leaf and intermediate); the SET is required.
    V0_1,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.2`: the chain as in v0.1; an
    /// inclusion proof with its checkpoint is required.
    V0_2,
    /// `application/vnd.dev.sigstore.bundle.v0.3+json`: the leaf alone as `certificate`.
    #[default]
    V0_3,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Self; 3] = [Self::V0_1, Self::V0_2, Self::V0_3];

    /// Its `mediaType`.
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Self::V0_1 => "application/vnd.dev.sigstore.bundle+json;version=0.1",
            Self::V0_2 => "application/vnd.dev.sigstore.bundle+json;version=0.2",
            Self::V0_3 => "application/vnd.dev.sigstore.bundle.v0.3+json",
        }
    }
}

/// A defect left in a bundle on purpose; each must make verification fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The content changed after it was signed and logged: a byte appended to the DSSE
    /// envelope's payload, or the message signature's last byte flipped.
    TamperedContent,
    /// The entry names the trusted log, but its SET and checkpoint are signed by another key.
    WrongLogKey,
    /// The entry has no SET (`inclusionPromise`), so nothing authenticates its integrated time.
    NoSignedEntryTimestamp,
}

/// How a bundle is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The bundle version.
    pub version: Version,
    /// The log's integrated time, seconds since the epoch; now if `None`. Verifiers reject a
    /// time in the future, outside the certificate's validity, or outside the trusted root's
    /// windows (a day either side of the instance's creation).
    pub integrated_time: Option<i64>,
    /// An RFC 3161 timestamp from the instance's timestamp authority, of this time (seconds
    /// since the epoch), over the signature; none if `None`.
    pub timestamp: Option<i64>,
    /// A defect to leave in.
    pub defect: Option<Defect>,
}

impl Options {
    /// A bundle of `version`, integrated now, without defects.
    #[must_use]
    pub fn new(version: Version) -> Self {
        Self {
            version,
            ..Self::default()
        }
    }

    /// The same, integrated at `time` (seconds since the epoch).
    #[must_use]
    pub fn integrated_at(self, time: i64) -> Self {
        Self {
            integrated_time: Some(time),
            ..self
        }
    }

    /// The same, with an RFC 3161 timestamp of `time` (seconds since the epoch).
    #[must_use]
    pub fn timestamped_at(self, time: i64) -> Self {
        Self {
            timestamp: Some(time),
            ..self
        }
    }

    /// The same, with `defect`.
    #[must_use]
    pub fn with_defect(self, defect: Defect) -> Self {
        Self {
            defect: Some(defect),
            ..self
        }
    }
}

/// A certificate's subject: its only SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A URI SAN (a CI workflow, a SPIFFE id).
    Uri(String),
    /// An email SAN.
    Email(String),
}

/// What a Fulcio-style certificate is issued for.
#[derive(Debug, Clone)]
pub struct CertificateRequest {
    /// The subject.
    pub subject: Subject,
    /// The OIDC issuer (`1.3.6.1.4.1.57264.1.8`, and `.1.1`).
    pub issuer: String,
    /// Other Fulcio claims by name ([`CLAIMS`]): `.1.9` to `.1.24` as DER UTF8Strings, the
    /// deprecated GitHub ones (`.1.2` to `.1.6`) as raw bytes.
    pub claims: BTreeMap<String, String>,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity (inclusive), seconds since the epoch.
    pub not_after: i64,
}

impl CertificateRequest {
    /// A certificate for the URI `uri` from `issuer`, valid from a minute ago for ten minutes.
    #[must_use]
    pub fn uri(uri: &str, issuer: &str) -> Self {
        Self::new(Subject::Uri(uri.to_owned()), issuer)
    }

    /// A certificate for the email address `email` from `issuer`, valid from a minute ago for
    /// ten minutes.
    #[must_use]
    pub fn email(email: &str, issuer: &str) -> Self {
        Self::new(Subject::Email(email.to_owned()), issuer)
    }

    fn new(subject: Subject, issuer: &str) -> Self {
        let now = now();
        Self {
            subject,
            issuer: issuer.to_owned(),
            claims: BTreeMap::new(),
            not_before: now - 60,
            not_after: now + 600,
        }
    }

    /// The same, with the claim `name` ([`CLAIMS`]) set to `value`.
    #[must_use]
    pub fn claim(mut self, name: &str, value: &str) -> Self {
        self.claims.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The same, valid from `not_before` to `not_after` (seconds since the epoch).
    #[must_use]
    pub fn valid(self, not_before: i64, not_after: i64) -> Self {
        Self {
            not_before,
            not_after,
            ..self
        }
    }
}

/// An issued leaf certificate, its issuing chain and its private key (ECDSA P-256).
pub struct Leaf {
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: SigningKey,
    not_before: i64,
    not_after: i64,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Leaf {
    /// The certificate, DER.
    #[must_use]
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The certificate, PEM.
    #[must_use]
    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.certificate)
    }

    /// The intermediates that issued it, DER, issuer first (no root).
    #[must_use]
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Its private key.
    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Start of validity, seconds since the epoch.
    #[must_use]
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity (inclusive), seconds since the epoch.
    #[must_use]
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
}

/// What signs a bundle.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// Keyless: a leaf certificate's key; the bundle carries the certificate.
    Keyless(&'a Leaf),
    /// A key; the bundle carries `publicKey{hint}` (base64 SHA-256 of its SubjectPublicKeyInfo).
    Key(&'a SigningKey),
}

/// A local Sigstore instance: a root CA and a Fulcio-like intermediate (ECDSA P-384), a Rekor v1
/// log and a CT log (ECDSA P-256), and an RFC 3161 timestamp authority (a P-384 root and a
/// P-256 signer), each created at random when the instance is.
pub struct Instance {
    root: Authority,
    intermediate: Authority,
    rekor: LogKey,
    ct: LogKey,
    /// Signs the SETs and checkpoints of [`Defect::WrongLogKey`].
    rogue: LogKey,
    tsa_root: Authority,
    tsa: TimestampAuthority,
    tree: Mutex<Tree>,
    tree_id: u64,
    valid_for: Value,
    /// When it was made (or is made to look made), seconds since the epoch.
    created: i64,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("rekor_log_id", &hex::encode(self.rekor.id))
            .field("ct_log_id", &hex::encode(self.ct.id))
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// A new instance with fresh keys. Its trusted root's `validFor` windows run from a day
    /// before now to a day after; its CA certificates from a day before now for ten years.
    ///
    /// # Errors
    /// When a certificate cannot be encoded (not expected).
    pub fn new() -> Result<Self, String> {
        Self::at(now())
    }

    /// A new instance with fresh keys, as if created at `now` (seconds since the epoch): its
    /// trusted root's `validFor` windows run from a day before `now` to a day after, its CA
    /// certificates from a day before `now` for ten years. Bundles made with integrated times
    /// and timestamps near `now` then verify whenever they are checked later, and the trusted
    /// root does not depend on when the instance was made.
    ///
    /// # Errors
    /// When a certificate cannot be encoded (a time before 1970 or after 2049).
    pub fn at(now: i64) -> Result<Self, String> {
        let root = Authority::root(ROOT_NAME, now)?;
        let intermediate = Authority::intermediate(&root, now)?;
        let tsa_root = Authority::root(TSA_ROOT_NAME, now)?;
        let tsa = TimestampAuthority::new(&tsa_root, now)?;
        let mut leaves = Vec::new();
        for _ in 0..SEED_ENTRIES {
            leaves.push(leaf_hash(&random::<32>()));
        }
        Ok(Self {
            root,
            intermediate,
            rekor: LogKey::new(),
            ct: LogKey::new(),
            rogue: LogKey::new(),
            tsa_root,
            tsa,
            tree: Mutex::new(Tree { leaves, logged: 0 }),
            tree_id: u64::from_be_bytes(random::<8>()) >> 1,
            valid_for: json!({
                "start": rfc3339(now - TRUST_WINDOW)?,
                "end": rfc3339(now + TRUST_WINDOW)?,
            }),
            created: now,
        })
    }

    /// The instance's `trusted_root.json` (protobuf-specs `TrustedRoot`, media type
    /// `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the CA chain
    /// (intermediate, then root), the Rekor log, the CT log and the timestamp authority
    /// (signer, then root), each with its `validFor`.
    #[must_use]
    pub fn trusted_root_json(&self) -> String {
        let log = |key: &LogKey, url: &str| {
            json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64(&key.spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": self.valid_for,
                },
                "logId": { "keyId": base64(&key.id) },
            })
        };
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(&self.rekor, REKOR_URL)],
            "certificateAuthorities": [{
                "subject": { "organization": ORGANIZATION, "commonName": INTERMEDIATE_NAME },
                "uri": FULCIO_URL,
                "certChain": { "certificates": [
                    { "rawBytes": base64(&self.intermediate.certificate) },
                    { "rawBytes": base64(&self.root.certificate) },
                ] },
                "validFor": self.valid_for,
            }],
            "ctlogs": [log(&self.ct, CT_URL)],
            "timestampAuthorities": [{
                "subject": { "organization": ORGANIZATION, "commonName": TSA_NAME },
                "uri": TSA_URL,
                "certChain": { "certificates": [
                    { "rawBytes": base64(&self.tsa.certificate) },
                    { "rawBytes": base64(&self.tsa_root.certificate) },
                ] },
                "validFor": self.valid_for,
            }],
        })
        .to_string()
    }

    /// [`Self::trusted_root_json`], loaded.
    ///
    /// # Errors
    /// When [`TrustRoot::from_json`] refuses it (not expected).
    pub fn trust_root(&self) -> Result<TrustRoot, String> {
        TrustRoot::from_json(&self.trusted_root_json(), "local Sigstore")
    }

    /// Issues a Fulcio-style certificate for `request`: empty subject name, critical SAN, EKU
    /// codeSigning, KeyUsage digitalSignature, the OIDC issuer and claims, and an embedded SCT
    /// from the instance's CT log, timestamped at `not_before`.
    ///
    /// # Errors
    /// An unknown claim name, a subject that is not ASCII, or a validity the certificate cannot
    /// encode.
    pub fn issue(&self, request: &CertificateRequest) -> Result<Leaf, String> {
        issue(&self.intermediate, &self.ct, request)
    }

    /// Issues a certificate as [`Self::issue`] does, from a CA the trusted root does not hold:
    /// one made for this call, with the same names as the instance's CA but other keys (its
    /// SCT is still from the trusted CT log).
    ///
    /// # Errors
    /// As [`Self::issue`].
    pub fn issue_untrusted(&self, request: &CertificateRequest) -> Result<Leaf, String> {
        let root = Authority::root(ROOT_NAME, self.created)?;
        let intermediate = Authority::intermediate(&root, self.created)?;
        issue(&intermediate, &self.ct, request)
    }

    /// A bundle of a message signature over `artifact` by `credential`, logged as a
    /// `hashedrekord` 0.0.1 entry of the artefact's SHA-256 digest.
    ///
    /// # Errors
    /// A key other than ECDSA P-256 or RSA: the entry records a SHA-256 digest the key must
    /// have signed (sigstore-verify 0.15.1 reads no other), while [`SigningKey`] signs SHA-384
    /// digests with P-384 keys and whole messages with Ed25519 ones (a `hashedrekord` holds
    /// Ed25519ph); sign a DSSE envelope with those. Also a key that cannot sign, or a poisoned
    /// log.
    pub fn sign_blob(
        &self,
        credential: Credential<'_>,
        artifact: &[u8],
        options: &Options,
    ) -> Result<String, String> {
        let key = credential.key();
        let algorithm = key.public_key().algorithm();
        if !matches!(algorithm, "ECDSA P-256" | "RSA") {
            return Err(format!(
                "an {algorithm} key does not sign SHA-256 digests as a hashedrekord entry needs; sign a DSSE envelope with it"
            ));
        }
        let signature = key.sign(artifact).map_err(|e| e.to_string())?;
        self.bundle(
            credential,
            &Content::Message {
                digest: Sha256::digest(artifact).into(),
                signature,
            },
            options,
        )
    }

    /// A bundle of a DSSE envelope holding `statement` (payload type
    /// `application/vnd.in-toto+json`) signed by `credential`, logged as a `dsse` 0.0.1 entry.
    ///
    /// # Errors
    /// A key that cannot sign, or a poisoned log.
    pub fn attest(
        &self,
        credential: Credential<'_>,
        statement: &Statement,
        options: &Options,
    ) -> Result<String, String> {
        let payload = serde_json::to_vec(statement).map_err(|e| e.to_string())?;
        let mut envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, credential.key())?;
        if let Credential::Key(key) = credential {
            // The key's hint, which verifiers may compare with the bundle's (reference §1.4).
            for signature in &mut envelope.signatures {
                signature.keyid = key_hint(key);
            }
        }
        self.bundle(credential, &Content::Dsse(envelope), options)
    }

    /// Logs `content` and writes the bundle.
    fn bundle(
        &self,
        credential: Credential<'_>,
        content: &Content,
        options: &Options,
    ) -> Result<String, String> {
        let (mut material, verifier) = match credential {
            Credential::Keyless(leaf) => {
                let material = match options.version {
                    Version::V0_1 | Version::V0_2 => {
                        let certificates: Vec<Value> = std::iter::once(&leaf.certificate)
                            .chain(&leaf.chain)
                            .map(|der| json!({ "rawBytes": base64(der) }))
                            .collect();
                        json!({ "x509CertificateChain": { "certificates": certificates } })
                    }
                    Version::V0_3 => {
                        json!({ "certificate": { "rawBytes": base64(&leaf.certificate) } })
                    }
                };
                (material, leaf.certificate_pem())
            }
            Credential::Key(key) => (
                json!({ "publicKey": { "hint": key_hint(key) } }),
                key.public_key().to_pem(),
            ),
        };
        let (kind, body) = content.entry(&verifier);
        let body = serde_json_canonicalizer::to_vec(&body)
            .map_err(|e| format!("cannot canonicalize the entry: {e}"))?;
        let entry = self.log(kind, &body, options)?;

        material["tlogEntries"] = json!([entry]);
        if let Some(time) = options.timestamp {
            let token = self.tsa.timestamp(content.signature(), time)?;
            material["timestampVerificationData"] =
                json!({ "rfc3161Timestamps": [{ "signedTimestamp": base64(&token) }] });
        }
        let mut content = content.to_json();
        if options.defect == Some(Defect::TamperedContent) {
            content = tamper(content)?;
        }
        let mut bundle = json!({
            "mediaType": options.version.media_type(),
            "verificationMaterial": material,
        });
        if let (Value::Object(bundle), Value::Object(content)) = (&mut bundle, content) {
            bundle.extend(content);
        }
        Ok(bundle.to_string())
    }

    /// Appends `body` to the log and returns the bundle's `tlogEntries[]` element for it: the
    /// SET over RFC 8785 canonical `{body, integratedTime, logID, logIndex}` and the inclusion
    /// proof with a signed checkpoint.
    fn log(&self, kind: &str, body: &[u8], options: &Options) -> Result<Value, String> {
        let (index, size, root, hashes) = {
            let mut tree = self
                .tree
                .lock()
                .map_err(|_| "the local log's lock is poisoned".to_owned())?;
            let index = tree.leaves.len();
            tree.leaves.push(leaf_hash(body));
            // Later entries by others (none, one or two), so proofs also cover leaves that
            // are not the newest.
            for _ in 0..tree.logged % 3 {
                tree.leaves.push(leaf_hash(&random::<32>()));
            }
            tree.logged += 1;
            (
                index,
                tree.leaves.len(),
                subtree_root(&tree.leaves),
                audit_path(index, &tree.leaves),
            )
        };
        let signer = match options.defect {
            Some(Defect::WrongLogKey) => &self.rogue,
            _ => &self.rekor,
        };
        let log_index = EARLIER_SHARDS + index as u64;
        let integrated_time = options.integrated_time.unwrap_or_else(now);

        // The SET: sigstore-go `pkg/tlog/entry.go`, the payload Rekor v1 signs.
        let set_payload = serde_json_canonicalizer::to_vec(&json!({
            "body": base64(body),
            "integratedTime": integrated_time,
            "logID": hex::encode(self.rekor.id),
            "logIndex": log_index,
        }))
        .map_err(|e| format!("cannot canonicalize the SET payload: {e}"))?;
        let set = signer.sign(&set_payload);

        // The checkpoint (C2SP signed note): origin, size, root hash; a blank line; then
        // `— <name> base64(key hint || signature)`, the hint being the first four bytes of
        // the log id. Rekor v1's origin is `<host> - <tree id>`.
        let note = format!(
            "{REKOR_NAME} - {}\n{size}\n{}\n",
            self.tree_id,
            base64(&root)
        );
        let mut signature = self.rekor.id[..4].to_vec();
        signature.extend(signer.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} {REKOR_NAME} {}\n", base64(&signature));

        let mut entry = json!({
            "logIndex": log_index.to_string(),
            "logId": { "keyId": base64(&self.rekor.id) },
            "kindVersion": { "kind": kind, "version": "0.0.1" },
            "integratedTime": integrated_time.to_string(),
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": base64(&root),
                "treeSize": size.to_string(),
                "hashes": hashes.iter().map(|h| base64(h)).collect::<Vec<_>>(),
                "checkpoint": { "envelope": checkpoint },
            },
            "canonicalizedBody": base64(body),
        });
        if options.defect != Some(Defect::NoSignedEntryTimestamp) {
            entry["inclusionPromise"] = json!({ "signedEntryTimestamp": base64(&set) });
        }
        Ok(entry)
    }
}

impl Credential<'_> {
    fn key(&self) -> &SigningKey {
        match self {
            Self::Keyless(leaf) => &leaf.key,
            Self::Key(key) => key,
        }
    }
}

/// What a bundle carries, signed.
enum Content {
    /// A signature over an artefact, and the artefact's SHA-256 digest.
    Message {
        digest: [u8; 32],
        signature: Vec<u8>,
    },
    /// A signed DSSE envelope.
    Dsse(Envelope),
}

impl Content {
    /// The Rekor entry's kind and body (before canonicalization), with `verifier` (PEM) as
    /// the certificate or key (rekor `pkg/types/{hashedrekord,dsse}/v0.0.1/*schema.json`).
    fn entry(&self, verifier: &str) -> (&'static str, Value) {
        match self {
            Self::Message { digest, signature } => (
                "hashedrekord",
                json!({
                    "apiVersion": "0.0.1",
                    "kind": "hashedrekord",
                    "spec": {
                        "data": { "hash": { "algorithm": "sha256", "value": hex::encode(digest) } },
                        "signature": {
                            "content": base64(signature),
                            "publicKey": { "content": base64(verifier.as_bytes()) },
                        },
                    },
                }),
            ),
            Self::Dsse(envelope) => (
                "dsse",
                json!({
                    "apiVersion": "0.0.1",
                    "kind": "dsse",
                    "spec": {
                        "envelopeHash": {
                            "algorithm": "sha256",
                            "value": hex::encode(Sha256::digest(envelope.to_json())),
                        },
                        "payloadHash": {
                            "algorithm": "sha256",
                            "value": hex::encode(Sha256::digest(&envelope.payload)),
                        },
                        "signatures": envelope.signatures.iter().map(|s| json!({
                            "signature": base64(&s.sig),
                            "verifier": base64(verifier.as_bytes()),
                        })).collect::<Vec<_>>(),
                    },
                }),
            ),
        }
    }

    /// The signature a timestamp covers: the message signature or the envelope's.
    fn signature(&self) -> &[u8] {
        match self {
            Self::Message { signature, .. } => signature,
            Self::Dsse(envelope) => envelope.signatures.first().map_or(&[], |s| &s.sig),
        }
    }

    /// The bundle's content member: `messageSignature` or `dsseEnvelope`.
    fn to_json(&self) -> Value {
        match self {
            Self::Message { digest, signature } => json!({
                "messageSignature": {
                    "messageDigest": {
                        "algorithm": "SHA2_256",
                        "digest": base64(digest),
                    },
                    "signature": base64(signature),
                },
            }),
            Self::Dsse(envelope) => json!({
                "dsseEnvelope": {
                    "payload": base64(&envelope.payload),
                    "payloadType": envelope.payload_type,
                    "signatures": envelope.signatures.iter().map(|s| json!({
                        "sig": base64(&s.sig),
                        "keyid": s.keyid,
                    })).collect::<Vec<_>>(),
                },
            }),
        }
    }
}

/// [`Defect::TamperedContent`] applied to a content member.
fn tamper(mut content: Value) -> Result<Value, String> {
    let (field, change): (&mut Value, fn(&mut Vec<u8>)) =
        if let Some(envelope) = content.get_mut("dsseEnvelope") {
            (&mut envelope["payload"], |payload| payload.push(b' '))
        } else {
            (&mut content["messageSignature"]["signature"], |signature| {
                if let Some(last) = signature.last_mut() {
                    *last ^= 1;
                }
            })
        };
    let mut bytes = field
        .as_str()
        .map(crate::dsse::decode_base64)
        .transpose()?
        .ok_or("no content to tamper with")?;
    change(&mut bytes);
    *field = Value::String(base64(&bytes));
    Ok(content)
}

const ORGANIZATION: &str = "palisade-test";
const ROOT_NAME: &str = "sigstore-test";
const INTERMEDIATE_NAME: &str = "sigstore-test-intermediate";
const TSA_ROOT_NAME: &str = "sigstore-test-tsa";
const TSA_NAME: &str = "sigstore-test-tsa-signer";

/// A CA: its key, name and certificate.
struct Authority {
    key: p384::ecdsa::SigningKey,
    name: Name,
    spki: Vec<u8>,
    certificate: Vec<u8>,
}

impl Authority {
    /// A self-signed root named `common_name`, like Fulcio's: CA, keyCertSign and cRLSign;
    /// valid from a day before `now` for ten years.
    fn root(common_name: &str, now: i64) -> Result<Self, String> {
        let key = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let name = ca_name(common_name)?;
        let spki = p384_spki(&key)?;
        let not_before = now - TRUST_WINDOW;
        let tbs = tbs_certificate(
            &name,
            name.clone(),
            &spki,
            (not_before, not_before + 10 * 365 * 24 * 3600),
            vec![
                extension(
                    BasicConstraints::OID,
                    true,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: Some(1),
                    },
                )?,
                extension(
                    KeyUsage::OID,
                    true,
                    &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
                )?,
                extension(SubjectKeyIdentifier::OID, false, &key_identifier(&spki)?)?,
            ],
        )?;
        let certificate = sign_certificate(&key, tbs)?;
        Ok(Self {
            key,
            name,
            spki,
            certificate,
        })
    }

    /// An intermediate under `root`, like Fulcio's: CA with path length 0, EKU codeSigning;
    /// valid from a day before `now` for ten years.
    fn intermediate(root: &Self, now: i64) -> Result<Self, String> {
        let key = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let name = ca_name(INTERMEDIATE_NAME)?;
        let spki = p384_spki(&key)?;
        let not_before = now - TRUST_WINDOW;
        let tbs = tbs_certificate(
            &root.name,
            name.clone(),
            &spki,
            (not_before, not_before + 10 * 365 * 24 * 3600),
            vec![
                extension(
                    BasicConstraints::OID,
                    true,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: Some(0),
                    },
                )?,
                extension(
                    KeyUsage::OID,
                    true,
                    &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
                )?,
                extension(
                    ExtendedKeyUsage::OID,
                    false,
                    &ExtendedKeyUsage(vec![CODE_SIGNING]),
                )?,
                extension(SubjectKeyIdentifier::OID, false, &key_identifier(&spki)?)?,
                extension(
                    AuthorityKeyIdentifier::OID,
                    false,
                    &authority_key_id(&root.spki)?,
                )?,
            ],
        )?;
        let certificate = sign_certificate(&root.key, tbs)?;
        Ok(Self {
            key,
            name,
            spki,
            certificate,
        })
    }
}

/// Issues a leaf under `intermediate` with an SCT from `ct`.
fn issue(
    intermediate: &Authority,
    ct: &LogKey,
    request: &CertificateRequest,
) -> Result<Leaf, String> {
    let key = SigningKey::generate_p256();
    let spki = key.public_key().spki_der().to_vec();
    let san = match &request.subject {
        Subject::Uri(uri) => GeneralName::UniformResourceIdentifier(ia5(uri)?),
        Subject::Email(email) => GeneralName::Rfc822Name(ia5(email)?),
    };
    let mut extensions = vec![
        extension(
            KeyUsage::OID,
            true,
            &KeyUsage(KeyUsages::DigitalSignature.into()),
        )?,
        extension(
            ExtendedKeyUsage::OID,
            false,
            &ExtendedKeyUsage(vec![CODE_SIGNING]),
        )?,
        extension(SubjectKeyIdentifier::OID, false, &key_identifier(&spki)?)?,
        extension(
            AuthorityKeyIdentifier::OID,
            false,
            &authority_key_id(&intermediate.spki)?,
        )?,
        // Fulcio leaves have an empty subject name, so the SAN is critical (RFC 5280 §4.2.1.6).
        extension(SubjectAltName::OID, true, &SubjectAltName(vec![san]))?,
        raw_extension(FULCIO_ISSUER, request.issuer.as_bytes().to_vec())?,
        extension(FULCIO_ISSUER_V2, false, &utf8(&request.issuer)?)?,
    ];
    for (name, value) in &request.claims {
        let position = CLAIMS.iter().position(|c| c == name).ok_or_else(|| {
            format!(
                "unknown certificate claim `{name}`; known: {}",
                CLAIMS.join(", ")
            )
        })?;
        // `CLAIMS` lists `.1.9` to `.1.24`, then the deprecated `.1.2` to `.1.6`.
        let arc = if position < 16 {
            9 + position
        } else {
            position - 14
        };
        let oid = ObjectIdentifier::new(&format!("1.3.6.1.4.1.57264.1.{arc}"))
            .map_err(|e| format!("claim {name}: {e}"))?;
        extensions.push(if arc <= 6 {
            raw_extension(oid, value.as_bytes().to_vec())?
        } else {
            extension(oid, false, &utf8(value)?)?
        });
    }
    let validity = (request.not_before, request.not_after);
    let mut tbs = tbs_certificate(
        &intermediate.name,
        Name::default(),
        &spki,
        validity,
        extensions,
    )?;

    // RFC 6962 §3.2: the SCT signs the precertificate's TBS (this TBS, without the SCT
    // extension) and the SHA-256 of the issuer's SubjectPublicKeyInfo.
    let precertificate = tbs
        .to_der()
        .map_err(|e| format!("cannot encode the TBS: {e}"))?;
    let timestamp = u64::try_from(request.not_before)
        .map_err(|_| "a validity before 1970".to_owned())?
        .saturating_mul(1000);
    let scts = ct.sct_list(&intermediate.spki, &precertificate, timestamp)?;
    let value = OctetString::new(scts)
        .and_then(|list| list.to_der())
        .map_err(|e| format!("cannot encode the SCT list: {e}"))?;
    if let Some(extensions) = &mut tbs.extensions {
        extensions.push(raw_extension(CT_PRECERT_SCTS, value)?);
    }
    let certificate = sign_certificate(&intermediate.key, tbs)?;
    Ok(Leaf {
        certificate,
        chain: vec![intermediate.certificate.clone()],
        key,
        not_before: request.not_before,
        not_after: request.not_after,
    })
}

/// id-kp-timeStamping (RFC 5280 §4.2.1.12).
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
/// id-sha256 (RFC 5754 §2.2).
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-signedData (RFC 5652 §5.1).
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// The content-type attribute (RFC 5652 §11.1).
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// The message-digest attribute (RFC 5652 §11.2).
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// The signing-certificate-v2 attribute (RFC 5035 §3), which RFC 3161 §2.4.1 requires.
const SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// The TSA's policy: a test value under Sigstore's private arc (const-oid 0.9 cannot encode
/// the examples arc `2.999`).
const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");

/// An RFC 3161 timestamp authority's signer: its key (ECDSA P-256) and certificate (EKU
/// timeStamping, critical), issued by a root of its own.
struct TimestampAuthority {
    key: p256::ecdsa::SigningKey,
    certificate: Vec<u8>,
    /// The certificate's issuer and serial number, DER: the CMS signer's identifier.
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

impl TimestampAuthority {
    fn new(root: &Authority, now: i64) -> Result<Self, String> {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| format!("cannot encode a P-256 key: {e}"))?;
        let not_before = now - TRUST_WINDOW;
        let tbs = tbs_certificate(
            &root.name,
            ca_name(TSA_NAME)?,
            &spki,
            (not_before, not_before + 10 * 365 * 24 * 3600),
            vec![
                extension(
                    KeyUsage::OID,
                    true,
                    &KeyUsage(KeyUsages::DigitalSignature.into()),
                )?,
                // RFC 3161 §2.3: the only EKU, critical.
                extension(
                    ExtendedKeyUsage::OID,
                    true,
                    &ExtendedKeyUsage(vec![TIME_STAMPING]),
                )?,
                extension(SubjectKeyIdentifier::OID, false, &key_identifier(&spki)?)?,
                extension(
                    AuthorityKeyIdentifier::OID,
                    false,
                    &authority_key_id(&root.spki)?,
                )?,
            ],
        )?;
        let encode = |what: &str, result: x509_cert::der::Result<Vec<u8>>| {
            result.map_err(|e| format!("cannot encode the TSA certificate's {what}: {e}"))
        };
        let issuer = encode("issuer", tbs.issuer.to_der())?;
        let serial = encode("serial number", tbs.serial_number.to_der())?;
        let certificate = sign_certificate(&root.key, tbs)?;
        Ok(Self {
            key,
            certificate,
            issuer,
            serial,
        })
    }

    /// A `TimeStampToken` (RFC 3161 §2.4.2: a CMS `ContentInfo` of `SignedData` over a
    /// `TSTInfo`) stamping `signature` (its SHA-256 as the message imprint) at `time`.
    fn timestamp(&self, signature: &[u8], time: i64) -> Result<Vec<u8>, String> {
        let der = |what: &str, result: x509_cert::der::Result<Vec<u8>>| {
            result.map_err(|e| format!("cannot encode the timestamp's {what}: {e}"))
        };
        let sha256 = sequence(&[der("algorithm", SHA256.to_der())?]);
        let gen_time = GeneralizedTime::from_unix_duration(Duration::from_secs(
            u64::try_from(time).map_err(|_| format!("time {time} is before 1970"))?,
        ))
        .map_err(|e| format!("time {time}: {e}"))?;
        // TSTInfo ::= SEQUENCE { version 1, policy, messageImprint, serialNumber, genTime }
        let tst_info = sequence(&[
            der("version", 1u8.to_der())?,
            der("policy", TSA_POLICY.to_der())?,
            sequence(&[
                sha256.clone(),
                der(
                    "imprint",
                    OctetString::new(Sha256::digest(signature).to_vec()).and_then(|o| o.to_der()),
                )?,
            ]),
            der(
                "serial",
                Uint::new(&random::<16>()).and_then(|n| n.to_der()),
            )?,
            der("genTime", gen_time.to_der())?,
        ]);

        // Signed attributes (RFC 5652 §5.3), a DER SET OF: sorted by their encodings.
        let attribute = |oid: ObjectIdentifier, value: Vec<u8>| -> Result<Vec<u8>, String> {
            Ok(sequence(&[
                der("attribute", oid.to_der())?,
                tlv(SET, &value),
            ]))
        };
        let certificate_hash =
            OctetString::new(Sha256::digest(&self.certificate).to_vec()).and_then(|o| o.to_der());
        let mut attributes = [
            attribute(CONTENT_TYPE, der("content type", TST_INFO.to_der())?)?,
            attribute(
                MESSAGE_DIGEST,
                der(
                    "digest",
                    OctetString::new(Sha256::digest(&tst_info).to_vec()).and_then(|o| o.to_der()),
                )?,
            )?,
            // SigningCertificateV2 { certs SEQUENCE OF ESSCertIDv2 { certHash } } (SHA-256,
            // the default hash, is left out).
            attribute(
                SIGNING_CERTIFICATE_V2,
                sequence(&[sequence(&[sequence(&[der(
                    "certificate hash",
                    certificate_hash,
                )?])])]),
            )?,
        ];
        attributes.sort();
        let attributes = attributes.concat();
        let signature: p256::ecdsa::DerSignature = self.key.sign(&tlv(SET, &attributes));

        let signer_info = sequence(&[
            der("version", 1u8.to_der())?,
            sequence(&[self.issuer.clone(), self.serial.clone()]),
            sha256.clone(),
            tlv(CONTEXT_0, &attributes),
            sequence(&[der("algorithm", ECDSA_WITH_SHA256.to_der())?]),
            der(
                "signature",
                OctetString::new(signature.as_bytes()).and_then(|o| o.to_der()),
            )?,
        ]);
        let signed_data = sequence(&[
            der("version", 3u8.to_der())?,
            tlv(SET, &sha256),
            sequence(&[
                der("content type", TST_INFO.to_der())?,
                tlv(
                    CONTEXT_0,
                    &der(
                        "TSTInfo",
                        OctetString::new(tst_info).and_then(|o| o.to_der()),
                    )?,
                ),
            ]),
            tlv(CONTEXT_0, &self.certificate),
            tlv(SET, &signer_info),
        ]);
        Ok(sequence(&[
            der("content type", SIGNED_DATA.to_der())?,
            tlv(CONTEXT_0, &signed_data),
        ]))
    }
}

/// DER tags of the constructed types written by hand.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0]`, constructed (EXPLICIT, or IMPLICIT over a constructed type).
const CONTEXT_0: u8 = 0xa0;

/// A DER TLV (X.690 §8.1): `tag`, the definite length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len().to_be_bytes();
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let significant: Vec<u8> = length.iter().copied().skip_while(|b| *b == 0).collect();
            // At most 8 length bytes, so the count fits in the low seven bits.
            out.push(0x80 | significant.len().to_be_bytes().last().copied().unwrap_or(0));
            out.extend(significant);
        }
    }
    out.extend(content);
    out
}

/// A DER SEQUENCE of the encoded `members`.
fn sequence(members: &[Vec<u8>]) -> Vec<u8> {
    tlv(SEQUENCE, &members.concat())
}

/// A log's key (ECDSA P-256) and id (SHA-256 of its SubjectPublicKeyInfo, RFC 6962 §3.2).
struct LogKey {
    key: p256::ecdsa::SigningKey,
    spki: Vec<u8>,
    id: [u8; 32],
}

impl LogKey {
    fn new() -> Self {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let id = Sha256::digest(&spki).into();
        Self { key, spki, id }
    }

    /// An ECDSA signature (SHA-256, DER) over `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::DerSignature = self.key.sign(message);
        signature.as_bytes().to_vec()
    }

    /// A `SignedCertificateTimestampList` (RFC 6962 §3.3, TLS encoding) of one SCT for the
    /// precertificate TBS `tbs` issued under `issuer_spki`, timestamped `timestamp` (ms).
    fn sct_list(&self, issuer_spki: &[u8], tbs: &[u8], timestamp: u64) -> Result<Vec<u8>, String> {
        let too_long = |what: &str| format!("the {what} is too long for an SCT");
        // digitally-signed struct { version v1, signature_type certificate_timestamp,
        // timestamp, entry_type precert_entry, PreCert { issuer_key_hash, tbs<u24> },
        // extensions<u16> }
        let mut signed = vec![0, 0];
        signed.extend(timestamp.to_be_bytes());
        signed.extend(1u16.to_be_bytes());
        signed.extend(Sha256::digest(issuer_spki));
        let tbs_length = u32::try_from(tbs.len())
            .ok()
            .filter(|n| *n < 1 << 24)
            .ok_or_else(|| too_long("TBS"))?;
        signed.extend(&tbs_length.to_be_bytes()[1..]);
        signed.extend(tbs);
        signed.extend(0u16.to_be_bytes());
        let signature = self.sign(&signed);

        // SignedCertificateTimestamp { version, log_id, timestamp, extensions<u16>,
        // digitally-signed { hash sha256(4), signature ecdsa(3), signature<u16> } }
        let mut sct = vec![0];
        sct.extend(self.id);
        sct.extend(timestamp.to_be_bytes());
        sct.extend(0u16.to_be_bytes());
        sct.extend([4, 3]);
        let length = u16::try_from(signature.len()).map_err(|_| too_long("signature"))?;
        sct.extend(length.to_be_bytes());
        sct.extend(signature);

        let sct_length = u16::try_from(sct.len()).map_err(|_| too_long("SCT"))?;
        let list_length = sct_length
            .checked_add(2)
            .ok_or_else(|| too_long("SCT list"))?;
        let mut list = list_length.to_be_bytes().to_vec();
        list.extend(sct_length.to_be_bytes());
        list.extend(sct);
        Ok(list)
    }
}

/// The log's leaves (RFC 6962 leaf hashes) and how many of ours it holds.
struct Tree {
    leaves: Vec<[u8; 32]>,
    logged: usize,
}

/// RFC 6962 §2.1: `SHA-256(0x00 || data)`.
fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0]);
    hasher.update(data);
    hasher.finalize().into()
}

/// RFC 6962 §2.1: `SHA-256(0x01 || left || right)`.
fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n` (`n` at least 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1 `MTH(D[n])` of leaf hashes.
fn subtree_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest([]).into(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len());
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 `PATH(m, D[n])`: the inclusion proof of leaf `index`, leaf side first.
fn audit_path(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut path, sibling) = if index < k {
        (audit_path(index, &leaves[..k]), subtree_root(&leaves[k..]))
    } else {
        (
            audit_path(index - k, &leaves[k..]),
            subtree_root(&leaves[..k]),
        )
    };
    path.push(sibling);
    path
}

/// The TBS of a version 3 certificate signed with ecdsa-with-SHA384, with a random serial.
fn tbs_certificate(
    issuer: &Name,
    subject: Name,
    spki: &[u8],
    (not_before, not_after): (i64, i64),
    extensions: Vec<Extension>,
) -> Result<TbsCertificate, String> {
    let mut serial = random::<16>();
    // A positive INTEGER that is never zero.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    Ok(TbsCertificate {
        version: CertificateVersion::V3,
        serial_number: SerialNumber::new(&serial).map_err(|e| format!("serial number: {e}"))?,
        signature: ecdsa_with_sha384(),
        issuer: issuer.clone(),
        validity: Validity {
            not_before: utc_time(not_before)?,
            not_after: utc_time(not_after)?,
        },
        subject,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki)
            .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

/// Signs `tbs` with `key` (ECDSA P-384, SHA-384) into a DER certificate.
fn sign_certificate(key: &p384::ecdsa::SigningKey, tbs: TbsCertificate) -> Result<Vec<u8>, String> {
    let der = tbs
        .to_der()
        .map_err(|e| format!("cannot encode the TBS: {e}"))?;
    let signature: p384::ecdsa::DerSignature = key.sign(&der);
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_with_sha384(),
        signature: BitString::from_bytes(signature.as_bytes())
            .map_err(|e| format!("cannot encode the signature: {e}"))?,
    }
    .to_der()
    .map_err(|e| format!("cannot encode the certificate: {e}"))
}

fn ecdsa_with_sha384() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA384,
        parameters: None,
    }
}

/// An extension whose value is `value`, DER.
fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl x509_cert::der::Encode,
) -> Result<Extension, String> {
    let der = value
        .to_der()
        .map_err(|e| format!("cannot encode extension {oid}: {e}"))?;
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(der).map_err(|e| format!("extension {oid}: {e}"))?,
    })
}

/// A non-critical extension whose value is `bytes` as they are (Fulcio's deprecated claims).
fn raw_extension(oid: ObjectIdentifier, bytes: Vec<u8>) -> Result<Extension, String> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(bytes).map_err(|e| format!("extension {oid}: {e}"))?,
    })
}

/// `O=palisade-test, CN=<common_name>`.
fn ca_name(common_name: &str) -> Result<Name, String> {
    Name::from_str(&format!("CN={common_name},O={ORGANIZATION}"))
        .map_err(|e| format!("cannot make the name {common_name}: {e}"))
}

fn p384_spki(key: &p384::ecdsa::SigningKey) -> Result<Vec<u8>, String> {
    key.verifying_key()
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot encode a P-384 key: {e}"))
}

/// A key identifier: the first 20 bytes of the SHA-256 of the SubjectPublicKeyInfo (any
/// unique value will do, RFC 5280 §4.2.1.2).
fn key_identifier(spki: &[u8]) -> Result<SubjectKeyIdentifier, String> {
    OctetString::new(&Sha256::digest(spki)[..20])
        .map(SubjectKeyIdentifier)
        .map_err(|e| format!("key identifier: {e}"))
}

fn authority_key_id(issuer_spki: &[u8]) -> Result<AuthorityKeyIdentifier, String> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(key_identifier(issuer_spki)?.0),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

fn ia5(text: &str) -> Result<Ia5String, String> {
    Ia5String::new(text).map_err(|e| format!("`{text}` is not an IA5String (ASCII): {e}"))
}

fn utf8(text: &str) -> Result<Utf8StringRef<'_>, String> {
    Utf8StringRef::new(text).map_err(|e| format!("`{text}`: {e}"))
}

/// A certificate time: UTCTime, as RFC 5280 §4.1.2.5 wants before 2050.
fn utc_time(seconds: i64) -> Result<Time, String> {
    let since_epoch = Duration::from_secs(
        u64::try_from(seconds).map_err(|_| format!("time {seconds} is before 1970"))?,
    );
    UtcTime::from_unix_duration(since_epoch)
        .map(Time::UtcTime)
        .map_err(|e| format!("time {seconds} is not a UTCTime: {e}"))
}

/// `seconds` as RFC 3339 (`2026-12-07T16:40:00Z`).
fn rfc3339(seconds: i64) -> Result<String, String> {
    let since_epoch = Duration::from_secs(
        u64::try_from(seconds).map_err(|_| format!("time {seconds} is before 1970"))?,
    );
    DateTime::from_unix_duration(since_epoch)
        .map(|t| t.to_string())
        .map_err(|e| format!("time {seconds}: {e}"))
}

/// Now, in seconds since the epoch.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A key's hint in bundles: base64 of its RFC 6962 key id.
fn key_hint(key: &SigningKey) -> String {
    base64(&key.public_key().key_id())
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// RFC 9162 §2.1.3.2: the root recomputed from a leaf and its path, if the path has the
    /// length the tree's shape demands.
    fn root_from_path(
        mut index: usize,
        size: usize,
        leaf: [u8; 32],
        path: &[[u8; 32]],
    ) -> Option<[u8; 32]> {
        let mut last = size - 1;
        let mut hash = leaf;
        for sibling in path {
            if !index.is_multiple_of(2) || index == last {
                hash = node_hash(sibling, &hash);
                while index.is_multiple_of(2) && index != 0 {
                    index >>= 1;
                    last >>= 1;
                }
            } else {
                hash = node_hash(&hash, sibling);
            }
            index >>= 1;
            last >>= 1;
        }
        (last == 0).then_some(hash)
    }

    #[test]
    fn audit_paths_lead_to_the_root_for_every_leaf_of_every_size() {
        let leaves: Vec<[u8; 32]> = (0u8..20).map(|i| leaf_hash(&[i])).collect();
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let root = subtree_root(tree);
            for index in 0..size {
                let path = audit_path(index, tree);
                assert_eq!(
                    root_from_path(index, size, tree[index], &path),
                    Some(root),
                    "{index} of {size}"
                );
            }
        }
    }

    #[test]
    fn unknown_claims_are_named() {
        let sigstore = Instance::new().unwrap();
        let request = CertificateRequest::uri("https://ci.example/w", "https://issuer.example")
            .claim("noSuchClaim", "x");
        assert!(
            sigstore
                .issue(&request)
                .unwrap_err()
                .contains("noSuchClaim")
        );
    }
}
