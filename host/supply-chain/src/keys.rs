//! Public and private keys, and signatures made and checked the way cosign makes and checks them
//! (sigstore/sigstore `pkg/signature`, `pkg/cryptoutils`):
//! - ECDSA P-256 and P-384 signatures are ASN.1 DER `SEQUENCE {r, s}`. P-256 hashes with
//!   SHA-256; P-384 with SHA-384, and SHA-256 is tried as well (cosign's `--key` signs with
//!   SHA-256 whatever the curve; sigstore-go's "compat" check does the same);
//! - RSA is PKCS#1 v1.5 (what cosign's verifier for an RSA key uses) or PSS, both with SHA-256,
//!   the signature a plain octet string;
//! - Ed25519 is pure Ed25519 over the message (no digest can be verified with it).
//!
//! Public keys are SubjectPublicKeyInfo (PEM `PUBLIC KEY`, or DER), or PKCS#1 `RSA PUBLIC KEY`.
//! Private keys are PKCS#8 (`PRIVATE KEY`), SEC 1 (`EC PRIVATE KEY`) or PKCS#1
//! (`RSA PRIVATE KEY`).

use std::fmt;

use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::DecodePublicKey;

/// A hash algorithm of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The digest of `data`.
    #[must_use]
    pub fn digest(self, data: &[u8]) -> Digest {
        let bytes = match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        };
        Digest {
            algorithm: self,
            bytes,
        }
    }

    /// Its name in OCI digests and Rekor entries: `sha256`, `sha384`, `sha512`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// The length of its digests in bytes.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The algorithm named `name` (`sha256`, `SHA2_256`, ...; case-insensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" | "sha2_256" | "sha-256" => Some(Self::Sha256),
            "sha384" | "sha2_384" | "sha-384" => Some(Self::Sha384),
            "sha512" | "sha2_512" | "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// A digest and the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    /// The algorithm.
    pub algorithm: HashAlgorithm,
    /// The digest's bytes.
    pub bytes: Vec<u8>,
}

impl Digest {
    /// Parses `<algorithm>:<lowercase hex>` (an OCI digest such as `sha256:ab12...`).
    ///
    /// # Errors
    /// A message naming what is wrong: no `:`, an unknown algorithm, bad hex or a wrong length.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, hex_digits) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not a digest: expected <algorithm>:<hex>"))?;
        let algorithm = HashAlgorithm::from_name(name)
            .ok_or_else(|| format!("`{text}`: unknown digest algorithm `{name}`"))?;
        if hex_digits.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("`{text}`: a digest's hex is lowercase"));
        }
        if hex_digits.len() != algorithm.digest_len() * 2 {
            return Err(format!(
                "`{text}`: a {} digest has {} hex digits, not {}",
                algorithm.name(),
                algorithm.digest_len() * 2,
                hex_digits.len()
            ));
        }
        let bytes =
            hex::decode(hex_digits).map_err(|e| format!("`{text}`: not hexadecimal: {e}"))?;
        Ok(Self { algorithm, bytes })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), hex::encode(&self.bytes))
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not one this key could have made (a bad encoding, another message,
    /// another key).
    #[error("the signature does not verify with the {0} key")]
    Invalid(&'static str),
    /// This key cannot check a signature this way.
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Clone)]
enum Verifier {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public key that checks signatures.
#[derive(Clone)]
pub struct PublicKey {
    verifier: Verifier,
    /// Its SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &hex::encode(self.key_id()))
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Reads a PEM public key: `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`
    /// (PKCS#1). Text around the PEM block is ignored.
    ///
    /// # Errors
    /// When there is no such block, or it holds no key of a supported algorithm.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_block(text, &["PUBLIC KEY", "RSA PUBLIC KEY"])?;
        if label == "RSA PUBLIC KEY" {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let key = rsa::RsaPublicKey::from_pkcs1_der(&der)
                .map_err(|e| KeyError(format!("not a PKCS#1 RSA public key: {e}")))?;
            return Self::from_verifier(Verifier::Rsa(key));
        }
        Self::from_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// When it is not one, or holds a key of an unsupported algorithm or curve.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| KeyError(format!("not a SubjectPublicKeyInfo: {e}")))?;
        let oid = info.algorithm.oid;
        let verifier = if oid == ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyError(format!("an EC key without its curve: {e}")))?;
            if curve == SECP256R1 {
                Verifier::P256(
                    p256::ecdsa::VerifyingKey::from_public_key_der(der)
                        .map_err(|e| KeyError(format!("not a P-256 key: {e}")))?,
                )
            } else if curve == SECP384R1 {
                Verifier::P384(
                    p384::ecdsa::VerifyingKey::from_public_key_der(der)
                        .map_err(|e| KeyError(format!("not a P-384 key: {e}")))?,
                )
            } else {
                return Err(KeyError(format!(
                    "unsupported elliptic curve {curve}: ECDSA keys are P-256 or P-384"
                )));
            }
        } else if oid == RSA_ENCRYPTION {
            Verifier::Rsa(
                rsa::RsaPublicKey::from_public_key_der(der)
                    .map_err(|e| KeyError(format!("not an RSA key: {e}")))?,
            )
        } else if oid == ED25519 {
            Verifier::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(der)
                    .map_err(|e| KeyError(format!("not an Ed25519 key: {e}")))?,
            )
        } else {
            return Err(KeyError(format!(
                "unsupported public key algorithm {oid}: keys are ECDSA (P-256, P-384), RSA or Ed25519"
            )));
        };
        Ok(Self {
            verifier,
            spki: der.to_vec(),
        })
    }

    /// Reads a PKCS#1 `RSAPublicKey`, DER (how some trusted roots hold RSA keys).
    ///
    /// # Errors
    /// When it is not one.
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<Self, KeyError> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        let key = rsa::RsaPublicKey::from_pkcs1_der(der)
            .map_err(|e| KeyError(format!("not a PKCS#1 RSA public key: {e}")))?;
        Self::from_verifier(Verifier::Rsa(key))
    }

    fn from_verifier(verifier: Verifier) -> Result<Self, KeyError> {
        let document = match &verifier {
            Verifier::P256(k) => k.to_public_key_der(),
            Verifier::P384(k) => k.to_public_key_der(),
            Verifier::Rsa(k) => k.to_public_key_der(),
            Verifier::Ed25519(k) => k.to_public_key_der(),
        }
        .map_err(|e| KeyError(format!("cannot encode the public key: {e}")))?;
        Ok(Self {
            verifier,
            spki: document.as_bytes().to_vec(),
        })
    }

    /// The key's algorithm: `ECDSA P-256`, `ECDSA P-384`, `RSA`, `Ed25519`.
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        match self.verifier {
            Verifier::P256(_) => "ECDSA P-256",
            Verifier::P384(_) => "ECDSA P-384",
            Verifier::Rsa(_) => "RSA",
            Verifier::Ed25519(_) => "Ed25519",
        }
    }

    /// Its SubjectPublicKeyInfo, DER.
    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Its key id as RFC 6962 and Rekor compute it: SHA-256 of the SubjectPublicKeyInfo.
    #[must_use]
    pub fn key_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    /// The key as PEM `PUBLIC KEY`.
    #[must_use]
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki)
    }

    /// Checks `signature` over `message`, with the hashes cosign uses for the key (see the
    /// module's documentation).
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] when it does not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.verifier {
            Verifier::P256(_) | Verifier::Rsa(_) => {
                self.verify_digest(&HashAlgorithm::Sha256.digest(message), signature)
            }
            Verifier::P384(_) => self
                .verify_digest(&HashAlgorithm::Sha384.digest(message), signature)
                .or_else(|_| self.verify_digest(&HashAlgorithm::Sha256.digest(message), signature)),
            Verifier::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Invalid(self.algorithm()))?;
                key.verify_strict(message, &signature)
                    .map_err(|_| SignatureError::Invalid(self.algorithm()))
            }
        }
    }

    /// Checks `signature` over a message of which only `digest` is known (ECDSA and RSA sign
    /// a digest; Ed25519 cannot be checked this way).
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] when it does not verify; [`SignatureError::Unsupported`] for
    /// an Ed25519 key.
    pub fn verify_digest(&self, digest: &Digest, signature: &[u8]) -> Result<(), SignatureError> {
        let invalid = || SignatureError::Invalid(self.algorithm());
        match &self.verifier {
            Verifier::P256(key) => {
                let signature = p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid())?;
                key.verify_prehash(&digest.bytes, &signature)
                    .map_err(|_| invalid())
            }
            Verifier::P384(key) => {
                let signature = p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid())?;
                key.verify_prehash(&digest.bytes, &signature)
                    .map_err(|_| invalid())
            }
            Verifier::Rsa(key) => {
                let (pkcs1, pss) = match digest.algorithm {
                    HashAlgorithm::Sha256 => (
                        rsa::Pkcs1v15Sign::new::<Sha256>(),
                        rsa::Pss::new::<Sha256>(),
                    ),
                    HashAlgorithm::Sha384 => (
                        rsa::Pkcs1v15Sign::new::<Sha384>(),
                        rsa::Pss::new::<Sha384>(),
                    ),
                    HashAlgorithm::Sha512 => (
                        rsa::Pkcs1v15Sign::new::<Sha512>(),
                        rsa::Pss::new::<Sha512>(),
                    ),
                };
                key.verify(pkcs1, &digest.bytes, signature)
                    .or_else(|_| key.verify(pss, &digest.bytes, signature))
                    .map_err(|_| invalid())
            }
            Verifier::Ed25519(_) => Err(SignatureError::Unsupported(
                "an Ed25519 signature covers the message itself, not a digest of it: give the artefact, not its digest"
                    .to_owned(),
            )),
        }
    }

    /// Checks an Ed25519ph signature (SHA-512 prehash, how Rekor's `hashedrekord` entries hold
    /// Ed25519 signatures) over `message`.
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] when it does not verify or the key is not Ed25519.
    pub fn verify_ed25519ph(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let Verifier::Ed25519(key) = &self.verifier else {
            return Err(SignatureError::Invalid(self.algorithm()));
        };
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| SignatureError::Invalid(self.algorithm()))?;
        let mut prehash = Sha512::new();
        prehash.update(message);
        key.verify_prehashed_strict(prehash, None, &signature)
            .map_err(|_| SignatureError::Invalid(self.algorithm()))
    }
}

enum Signer {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key that signs as cosign signs: ECDSA (DER signatures; SHA-256 for P-256,
/// SHA-384 for P-384), RSA PKCS#1 v1.5 with SHA-256, pure Ed25519.
pub struct SigningKey {
    signer: Signer,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new ECDSA P-256 key (what `cosign generate-key-pair` makes).
    #[must_use]
    pub fn generate_p256() -> Self {
        Self {
            signer: Signer::P256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng)),
        }
    }

    /// A new ECDSA P-384 key.
    #[must_use]
    pub fn generate_p384() -> Self {
        Self {
            signer: Signer::P384(p384::ecdsa::SigningKey::random(&mut rand_core::OsRng)),
        }
    }

    /// A new Ed25519 key.
    #[must_use]
    pub fn generate_ed25519() -> Self {
        Self {
            signer: Signer::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng)),
        }
    }

    /// A new RSA key of `bits` bits.
    ///
    /// # Errors
    /// When the size cannot be used.
    pub fn generate_rsa(bits: usize) -> Result<Self, KeyError> {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
            .map_err(|e| KeyError(format!("cannot make a {bits}-bit RSA key: {e}")))?;
        Ok(Self {
            signer: Signer::Rsa(Box::new(key)),
        })
    }

    /// Reads a PEM private key: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC 1) or
    /// `RSA PRIVATE KEY` (PKCS#1).
    ///
    /// # Errors
    /// When there is no such block or it holds no key of a supported algorithm.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_block(text, &["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"])?;
        match label {
            "EC PRIVATE KEY" => {
                use p256::elliptic_curve::SecretKey;
                if let Ok(key) = SecretKey::<p256::NistP256>::from_sec1_der(&der) {
                    return Ok(Self {
                        signer: Signer::P256(key.into()),
                    });
                }
                SecretKey::<p384::NistP384>::from_sec1_der(&der)
                    .map(|key| Self {
                        signer: Signer::P384(key.into()),
                    })
                    .map_err(|e| KeyError(format!("not a P-256 or P-384 SEC 1 private key: {e}")))
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map(|key| Self {
                        signer: Signer::Rsa(Box::new(key)),
                    })
                    .map_err(|e| KeyError(format!("not a PKCS#1 RSA private key: {e}")))
            }
            _ => Self::from_pkcs8_der(&der),
        }
    }

    /// Reads a PKCS#8 private key, DER.
    ///
    /// # Errors
    /// When it is not one, or holds a key of an unsupported algorithm or curve.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError(format!("not a PKCS#8 private key: {e}")))?;
        let oid = info.algorithm.oid;
        let signer = if oid == ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyError(format!("an EC key without its curve: {e}")))?;
            if curve == SECP256R1 {
                Signer::P256(
                    p256::ecdsa::SigningKey::from_pkcs8_der(der)
                        .map_err(|e| KeyError(format!("not a P-256 private key: {e}")))?,
                )
            } else if curve == SECP384R1 {
                Signer::P384(
                    p384::ecdsa::SigningKey::from_pkcs8_der(der)
                        .map_err(|e| KeyError(format!("not a P-384 private key: {e}")))?,
                )
            } else {
                return Err(KeyError(format!(
                    "unsupported elliptic curve {curve}: ECDSA keys are P-256 or P-384"
                )));
            }
        } else if oid == RSA_ENCRYPTION {
            Signer::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| KeyError(format!("not an RSA private key: {e}")))?,
            ))
        } else if oid == ED25519 {
            Signer::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| KeyError(format!("not an Ed25519 private key: {e}")))?,
            )
        } else {
            return Err(KeyError(format!(
                "unsupported private key algorithm {oid}: keys are ECDSA (P-256, P-384), RSA or Ed25519"
            )));
        };
        Ok(Self { signer })
    }

    /// The key as PKCS#8, DER.
    ///
    /// # Errors
    /// When it cannot be encoded.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let document = match &self.signer {
            Signer::P256(k) => k.to_pkcs8_der(),
            Signer::P384(k) => k.to_pkcs8_der(),
            Signer::Rsa(k) => k.to_pkcs8_der(),
            Signer::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| KeyError(format!("cannot encode the private key: {e}")))?;
        Ok(document.as_bytes().to_vec())
    }

    /// The key as PEM `PRIVATE KEY` (PKCS#8, unencrypted).
    ///
    /// # Errors
    /// When it cannot be encoded.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(pem_encode("PRIVATE KEY", &self.to_pkcs8_der()?))
    }

    /// Its public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let verifier = match &self.signer {
            Signer::P256(k) => Verifier::P256(*k.verifying_key()),
            Signer::P384(k) => Verifier::P384(*k.verifying_key()),
            Signer::Rsa(k) => Verifier::Rsa(k.to_public_key()),
            Signer::Ed25519(k) => Verifier::Ed25519(k.verifying_key()),
        };
        let spki = match &verifier {
            Verifier::P256(k) => k.to_public_key_der(),
            Verifier::P384(k) => k.to_public_key_der(),
            Verifier::Rsa(k) => k.to_public_key_der(),
            Verifier::Ed25519(k) => k.to_public_key_der(),
        }
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
        PublicKey { verifier, spki }
    }

    /// Signs `message`.
    ///
    /// # Errors
    /// When the key cannot sign (an RSA key too small for the digest).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |e: &dyn fmt::Display| KeyError(format!("cannot sign: {e}"));
        match &self.signer {
            Signer::P256(key) => {
                let signature: p256::ecdsa::Signature = key
                    .sign_prehash(&Sha256::digest(message))
                    .map_err(|e| failed(&e))?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
            Signer::P384(key) => {
                let signature: p384::ecdsa::Signature = key
                    .sign_prehash(&Sha384::digest(message))
                    .map_err(|e| failed(&e))?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
            Signer::Rsa(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
                .map_err(|e| failed(&e)),
            Signer::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                Ok(key.sign(message).to_bytes().to_vec())
            }
        }
    }
}

const ID_EC_PUBLIC_KEY: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");

/// The first PEM block of `text` whose label is one of `labels`, decoded.
fn pem_block<'l>(text: &str, labels: &[&'l str]) -> Result<(&'l str, Vec<u8>), KeyError> {
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            return Err(KeyError(format!("PEM block `{label}` has no END line")));
        };
        if let Some(wanted) = labels.iter().find(|l| **l == label) {
            let body: String = body_start[..body_end]
                .lines()
                .filter(|line| !line.contains(':'))
                .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
                .collect();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| KeyError(format!("PEM block `{label}` is not base64: {e}")))?;
            return Ok((wanted, der));
        }
        rest = &body_start[body_end + end_marker.len()..];
    }
    Err(KeyError(format!(
        "no PEM block labelled {} found",
        labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

/// `der` as a PEM block labelled `label`, lines of 64 characters.
#[must_use]
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every PEM block labelled `label` in `text`, decoded (a certificate chain).
///
/// # Errors
/// When a block is not base64.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let Some(stop) = body.find(&end) else {
            return Err(KeyError(format!("PEM block `{label}` has no END line")));
        };
        let (_, der) = pem_block(
            &rest[start..start + begin.len() + stop + end.len()],
            &[label],
        )?;
        blocks.push(der);
        rest = &body[stop + end.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn every_key() -> Vec<SigningKey> {
        vec![
            SigningKey::generate_p256(),
            SigningKey::generate_p384(),
            SigningKey::generate_ed25519(),
            SigningKey::generate_rsa(2048).unwrap(),
        ]
    }

    #[test]
    fn every_algorithm_signs_and_verifies_through_pem() {
        for key in every_key() {
            let private = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            let public = PublicKey::from_pem(&private.public_key().to_pem()).unwrap();
            assert_eq!(public, key.public_key());
            let signature = private.sign(b"payload").unwrap();
            public.verify(b"payload", &signature).unwrap();
            assert_eq!(
                public.verify(b"payloaD", &signature),
                Err(SignatureError::Invalid(public.algorithm())),
                "{}",
                public.algorithm()
            );
            let other = SigningKey::generate_p256().public_key();
            assert!(other.verify(b"payload", &signature).is_err());
        }
    }

    #[test]
    fn digests_verify_for_ecdsa_and_rsa_but_not_ed25519() {
        for key in every_key() {
            let signature = key.sign(b"artefact").unwrap();
            let digest = HashAlgorithm::Sha256.digest(b"artefact");
            let public = key.public_key();
            let result = public.verify_digest(&digest, &signature);
            match public.algorithm() {
                "Ed25519" => assert!(matches!(result, Err(SignatureError::Unsupported(_)))),
                // P-384 signs SHA-384 digests.
                "ECDSA P-384" => {
                    assert!(result.is_err());
                    public
                        .verify_digest(&HashAlgorithm::Sha384.digest(b"artefact"), &signature)
                        .unwrap();
                }
                _ => result.unwrap(),
            }
        }
    }

    #[test]
    fn p384_accepts_sha256_signatures_as_cosign_makes_them() {
        let key = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let signature: p384::ecdsa::Signature = key.sign_prehash(&Sha256::digest(b"m")).unwrap();
        let public =
            PublicKey::from_der(key.verifying_key().to_public_key_der().unwrap().as_bytes())
                .unwrap();
        public.verify(b"m", signature.to_der().as_bytes()).unwrap();
    }

    #[test]
    fn rsa_pss_signatures_verify() {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let signature = key
            .sign_with_rng(
                &mut rand_core::OsRng,
                rsa::Pss::new::<Sha256>(),
                &Sha256::digest(b"m"),
            )
            .unwrap();
        let public =
            PublicKey::from_der(key.to_public_key().to_public_key_der().unwrap().as_bytes())
                .unwrap();
        public.verify(b"m", &signature).unwrap();
        assert!(public.verify(b"n", &signature).is_err());
    }

    #[test]
    fn sec1_pkcs1_and_pkcs1_public_keys_are_read() {
        use p256::pkcs8::EncodePrivateKey as _;
        use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
        let ec = p256::SecretKey::random(&mut rand_core::OsRng);
        let sec1 = ec.to_sec1_pem(pkcs8::LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&sec1).unwrap();
        assert_eq!(key.public_key().algorithm(), "ECDSA P-256");
        let _ = ec.to_pkcs8_der().unwrap();

        let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let pkcs1 = rsa_key.to_pkcs1_pem(pkcs8::LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&pkcs1).unwrap();
        let public_pkcs1 = rsa_key
            .to_public_key()
            .to_pkcs1_pem(pkcs8::LineEnding::LF)
            .unwrap();
        let public = PublicKey::from_pem(&public_pkcs1).unwrap();
        public.verify(b"x", &key.sign(b"x").unwrap()).unwrap();
    }

    #[test]
    fn bad_keys_and_digests_are_named() {
        assert_eq!(
            PublicKey::from_pem("hello").unwrap_err().0,
            "no PEM block labelled `PUBLIC KEY` or `RSA PUBLIC KEY` found"
        );
        let garbage = pem_encode("PUBLIC KEY", b"garbage");
        assert!(
            PublicKey::from_pem(&garbage)
                .unwrap_err()
                .0
                .starts_with("not a SubjectPublicKeyInfo")
        );
        assert!(
            Digest::parse("sha256:abc")
                .unwrap_err()
                .contains("64 hex digits")
        );
        assert!(
            Digest::parse("md5:abc")
                .unwrap_err()
                .contains("unknown digest algorithm")
        );
        let digest = HashAlgorithm::Sha256.digest(b"");
        assert_eq!(Digest::parse(&digest.to_string()).unwrap(), digest);
    }

    #[test]
    fn key_ids_are_the_sha256_of_the_spki() {
        let key = SigningKey::generate_p256().public_key();
        assert_eq!(
            key.key_id().to_vec(),
            Sha256::digest(key.spki_der()).to_vec()
        );
    }
}
