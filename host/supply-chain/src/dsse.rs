//! DSSE envelopes and the in-toto statements they carry (protobuf-specs `envelope.proto`,
//! in-toto attestation `spec/v1`, `spec/v0.1.0`).
//!
//! A signature covers `PAE(payloadType, payload)`, never the JSON of the envelope. A statement
//! names its subjects by digest; an artefact is a subject when one of them has its digest.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::keys::{Digest, HashAlgorithm, PublicKey, SigningKey};

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// in-toto Statement v0.1 (what `cosign attest` writes).
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

pub use palisade_sdk::host::images::{PREDICATE_ALIASES, predicate_type};

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// What the payload is (`application/vnd.in-toto+json`).
    pub payload_type: String,
    /// The payload, base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// Its signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// An unauthenticated hint of the key.
    #[serde(default)]
    pub keyid: String,
    /// The signature over the PAE, base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub sig: Vec<u8>,
}

/// DSSE's pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
#[must_use]
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Parses an envelope's JSON.
    ///
    /// # Errors
    /// A message naming what is missing or malformed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))
    }

    /// Signs `payload` of `payload_type` with `key`.
    ///
    /// # Errors
    /// When the key cannot sign.
    pub fn sign(payload_type: &str, payload: Vec<u8>, key: &SigningKey) -> Result<Self, String> {
        let sig = key
            .sign(&pae(payload_type, &payload))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig,
            }],
        })
    }

    /// The envelope's JSON.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The index of the first signature `key` verifies.
    ///
    /// # Errors
    /// When none does (or there is none).
    pub fn verify(&self, key: &PublicKey) -> Result<usize, String> {
        if self.signatures.is_empty() {
            return Err("the envelope has no signature".to_owned());
        }
        let message = pae(&self.payload_type, &self.payload);
        self.signatures
            .iter()
            .position(|s| key.verify(&message, &s.sig).is_ok())
            .ok_or_else(|| {
                format!(
                    "no signature of the envelope verifies with the {} key",
                    key.algorithm()
                )
            })
    }

    /// The in-toto statement it carries.
    ///
    /// # Errors
    /// When the payload type is not in-toto's or the payload is not a statement.
    pub fn statement(&self) -> Result<Statement, String> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(format!(
                "the envelope's payload type is `{}`, not `{IN_TOTO_PAYLOAD_TYPE}`",
                self.payload_type
            ));
        }
        Statement::from_json(&self.payload)
    }
}

/// An in-toto statement (v0.1 or v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// `https://in-toto.io/Statement/v1` or `/v0.1`.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What it is about.
    pub subject: Vec<Subject>,
    /// The predicate's type.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// A subject of a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Its name (an image reference, a file name), if given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its digests: algorithm name to lowercase hex.
    #[serde(default)]
    pub digest: std::collections::BTreeMap<String, String>,
    /// Annotations (v1; cosign v3 puts `-a` annotations here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Subjects a statement may have before it is refused (sigstore-go's limit).
pub const MAX_SUBJECTS: usize = 1024;

impl Statement {
    /// Parses a statement's JSON.
    ///
    /// # Errors
    /// A message naming what is missing or malformed, or an unknown `_type`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let statement: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not an in-toto statement: {e}"))?;
        if statement.statement_type != STATEMENT_V1 && statement.statement_type != STATEMENT_V0_1 {
            return Err(format!(
                "unknown in-toto statement type `{}`",
                statement.statement_type
            ));
        }
        if statement.subject.len() > MAX_SUBJECTS {
            return Err(format!(
                "the statement has {} subjects, more than {MAX_SUBJECTS}",
                statement.subject.len()
            ));
        }
        Ok(statement)
    }

    /// A statement about `subject` (named `name`) of `predicate_type`.
    #[must_use]
    pub fn new(
        name: &str,
        subject: &Digest,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Self {
        Self {
            statement_type: STATEMENT_V1.to_owned(),
            subject: vec![Subject {
                name: name.to_owned(),
                digest: [(
                    subject.algorithm.name().to_owned(),
                    hex::encode(&subject.bytes),
                )]
                .into_iter()
                .collect(),
                annotations: None,
            }],
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }

    /// The subject whose digest (of the same algorithm) is `digest`.
    #[must_use]
    pub fn subject_with(&self, digest: &Digest) -> Option<&Subject> {
        let wanted = hex::encode(&digest.bytes);
        self.subject.iter().find(|s| {
            s.digest.iter().any(|(algorithm, value)| {
                HashAlgorithm::from_name(algorithm) == Some(digest.algorithm)
                    && value.eq_ignore_ascii_case(&wanted)
            })
        })
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::decode_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// Decodes standard base64, padded or not, ignoring line breaks (Go's decoder skips `\r\n`);
/// URL-safe base64 is accepted too.
///
/// # Errors
/// When it is not base64.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(cleaned.as_bytes())
        .or_else(|_| {
            base64::engine::GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            )
            .decode(cleaned.as_bytes())
        })
        .map_err(|e| format!("not base64: {e}"))
}

/// Standard padded base64.
#[must_use]
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelopes_sign_verify_and_carry_statements() {
        let key = SigningKey::generate_p256();
        let image = HashAlgorithm::Sha256.digest(b"image");
        let statement = Statement::new(
            "registry.example/app",
            &image,
            "https://slsa.dev/provenance/v1",
            serde_json::json!({"runDetails": {"builder": {"id": "https://builder.example"}}}),
        );
        let envelope = Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&statement).unwrap(),
            &key,
        )
        .unwrap();
        let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(parsed.verify(&key.public_key()).unwrap(), 0);
        let read = parsed.statement().unwrap();
        assert!(read.subject_with(&image).is_some());
        assert!(
            read.subject_with(&HashAlgorithm::Sha256.digest(b"other"))
                .is_none()
        );

        let mut tampered = parsed.clone();
        tampered.payload.push(b' ');
        assert!(
            tampered
                .verify(&key.public_key())
                .unwrap_err()
                .contains("no signature")
        );
        assert!(
            parsed
                .verify(&SigningKey::generate_p256().public_key())
                .is_err()
        );

        let mut other_type = parsed;
        other_type.payload_type = "text/plain".to_owned();
        assert!(other_type.statement().unwrap_err().contains("payload type"));
    }

    #[test]
    fn base64_with_line_breaks_and_without_padding_decodes() {
        assert_eq!(decode_base64("aGVs\r\nbG8").unwrap(), b"hello");
        assert!(decode_base64("!!").is_err());
    }
}
