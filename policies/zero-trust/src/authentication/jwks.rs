//! JSON Web Key Sets as Envoy's jwt_verify_lib reads them: RSA (`RS*`, `PS*`), EC P-256 and
//! P-384 (`ES256`, `ES384`), OKP Ed25519 (`EdDSA`) and oct (`HS*`) keys, each with its optional
//! `kid` and `alg`. Each key becomes a RustCrypto verifying key once, when the set is read, so
//! bad key material is found then and a signature check starts from a ready key.
//!
//! The primitives are RustCrypto's (`rsa`, `p256`, `p384`, `ed25519-dalek`, `hmac`, `sha2`);
//! only the JOSE mapping from algorithm name to primitive is here. (jsonwebtoken, which tests
//! sign with, links its signing code into every module that verifies: 0.4 MB more here.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac as _;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// The signature algorithms Envoy accepts, less ES512 (P-521 would add a third curve's
/// arithmetic to a module at its 1 MB budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

/// The algorithm a JWT header or JWK names; `None` for any other.
pub(crate) fn algorithm(name: &str) -> Option<Algorithm> {
    use Algorithm::{
        ES256, ES384, EdDSA, HS256, HS384, HS512, PS256, PS384, PS512, RS256, RS384, RS512,
    };
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        _ => return None,
    })
}

/// A key ready to check signatures.
#[derive(Clone)]
pub(crate) enum Material {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Hmac(Vec<u8>),
}

impl Material {
    /// Whether a token signed with `alg` can be checked with this key.
    pub(crate) fn verifies(&self, alg: Algorithm) -> bool {
        use Algorithm::{
            ES256, ES384, EdDSA, HS256, HS384, HS512, PS256, PS384, PS512, RS256, RS384, RS512,
        };
        match self {
            Self::Rsa(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256(_) => alg == ES256,
            Self::P384(_) => alg == ES384,
            Self::Ed25519(_) => alg == EdDSA,
            Self::Hmac(_) => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    /// Whether `signature` is `alg`'s signature of `message` by this key (JWS encodings: RSA
    /// signatures as they are, ECDSA as `r || s`, Ed25519 as 64 bytes, HMAC as the tag).
    pub(crate) fn check(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use Algorithm::{HS256, HS384, HS512, PS256, PS384, PS512, RS256, RS384, RS512};
        match (self, alg) {
            (Self::Rsa(key), RS256) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .is_ok(),
            (Self::Rsa(key), RS384) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(message),
                    signature,
                )
                .is_ok(),
            (Self::Rsa(key), RS512) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(message),
                    signature,
                )
                .is_ok(),
            (Self::Rsa(key), PS256) => key
                .verify(Pss::new::<Sha256>(), &Sha256::digest(message), signature)
                .is_ok(),
            (Self::Rsa(key), PS384) => key
                .verify(Pss::new::<Sha384>(), &Sha384::digest(message), signature)
                .is_ok(),
            (Self::Rsa(key), PS512) => key
                .verify(Pss::new::<Sha512>(), &Sha512::digest(message), signature)
                .is_ok(),
            (Self::P256(key), Algorithm::ES256) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok())
            }
            (Self::P384(key), Algorithm::ES384) => {
                use p384::ecdsa::signature::Verifier as _;
                p384::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok())
            }
            (Self::Ed25519(key), Algorithm::EdDSA) => {
                <[u8; 64]>::try_from(signature).is_ok_and(|s| {
                    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&s))
                        .is_ok()
                })
            }
            (Self::Hmac(key), HS256) => {
                hmac::Hmac::<Sha256>::new_from_slice(key).is_ok_and(|mut m| {
                    m.update(message);
                    m.verify_slice(signature).is_ok()
                })
            }
            (Self::Hmac(key), HS384) => {
                hmac::Hmac::<Sha384>::new_from_slice(key).is_ok_and(|mut m| {
                    m.update(message);
                    m.verify_slice(signature).is_ok()
                })
            }
            (Self::Hmac(key), HS512) => {
                hmac::Hmac::<Sha512>::new_from_slice(key).is_ok_and(|mut m| {
                    m.update(message);
                    m.verify_slice(signature).is_ok()
                })
            }
            _ => false,
        }
    }
}

/// One usable public key (or HMAC secret).
#[derive(Clone)]
pub(crate) struct Key {
    /// `kid`, when the set gives one.
    pub kid: Option<String>,
    /// `alg`, when the set gives one: only tokens of that algorithm use the key.
    pub alg: Option<Algorithm>,
    pub material: Material,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A key set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jwks {
    pub keys: Vec<Key>,
}

/// A key set that cannot be used, and where (`keys[2].n`, or empty for the whole set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwksError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl Jwks {
    /// Reads a key set from its JSON text. `strict`: every key must be usable (a configured,
    /// inline set: a bad key is a configuration error); otherwise unusable keys are skipped as
    /// Envoy skips them, and only a set with no usable key at all is refused (a fetched set).
    pub(crate) fn parse(text: &str, strict: bool) -> Result<Self, JwksError> {
        let whole = |message: &str| JwksError {
            path: String::new(),
            message: message.to_owned(),
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| whole(&format!("Jwks is an invalid JSON: {e}")))?;
        let keys = value
            .get("keys")
            .ok_or_else(|| whole("Jwks does not have [keys] field"))?
            .as_array()
            .ok_or_else(|| whole("[keys] in Jwks is not an array"))?;
        let mut set = Self::default();
        for (i, jwk) in keys.iter().enumerate() {
            match parse_key(jwk) {
                Ok(key) => set.keys.push(key),
                Err((field, message)) if strict => {
                    let path = if field.is_empty() {
                        format!("keys[{i}]")
                    } else {
                        format!("keys[{i}].{field}")
                    };
                    return Err(JwksError { path, message });
                }
                Err(_) => {}
            }
        }
        if set.keys.is_empty() {
            return Err(whole("Jwks doesn't have any valid public key"));
        }
        Ok(set)
    }
}

type KeyError = (&'static str, String);

fn field<'a>(jwk: &'a Value, name: &'static str, what: &str) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err((name, format!("[{name}] field is not string for {what}"))),
    }
}

fn required<'a>(jwk: &'a Value, name: &'static str, what: &str) -> Result<&'a str, KeyError> {
    field(jwk, name, what)?.ok_or_else(|| (name, format!("[{name}] field is missing for {what}")))
}

fn decoded(value: &str, name: &'static str, what: &str) -> Result<Vec<u8>, KeyError> {
    // Some issuers pad their base64url; the bytes are what counts.
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|e| {
            (
                name,
                format!("[{name}] field of {what} is not base64url: {e}"),
            )
        })
}

fn parse_key(jwk: &Value) -> Result<Key, KeyError> {
    let kty = match jwk.get("kty") {
        None => return Err(("kty", "[kty] is missing in [keys]".to_owned())),
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err(("kty", "[kty] is bad in [keys]".to_owned())),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(("kid", "[kid] is not a string".to_owned())),
    };
    let alg_name = jwk.get("alg").and_then(Value::as_str);
    if jwk.get("alg").is_some_and(|a| !a.is_string()) {
        return Err(("alg", "[alg] is not a string".to_owned()));
    }
    let material = match kty {
        "RSA" => {
            let what = "a RSA key";
            if alg_name.is_some_and(|a| !a.starts_with("RS") && !a.starts_with("PS")) {
                return Err((
                    "alg",
                    "[alg] is not started with [RS] or [PS] for an RSA key".into(),
                ));
            }
            let n = required(jwk, "n", what)?;
            let e = required(jwk, "e", what)?;
            let modulus = BigUint::from_bytes_be(&decoded(n, "n", what)?);
            let exponent = BigUint::from_bytes_be(&decoded(e, "e", what)?);
            let bits = modulus.bits();
            if bits < 1024 {
                return Err((
                    "n",
                    format!("the RSA modulus has {bits} bits; at least 1024 are needed"),
                ));
            }
            let key = RsaPublicKey::new(modulus, exponent).map_err(|e| {
                (
                    "n",
                    format!("Jwks RSA [n] or [e] field is missing or has a parse error: {e}"),
                )
            })?;
            Material::Rsa(key)
        }
        "EC" => {
            let what = "an EC key";
            if alg_name.is_some_and(|a| !a.starts_with("ES")) {
                return Err(("alg", "[alg] is not started with [ES] for an EC key".into()));
            }
            let crv = field(jwk, "crv", what)?;
            let (p384, size) = match (crv, alg_name) {
                (Some("P-256") | None, Some("ES256")) | (Some("P-256"), None) => (false, 32),
                (Some("P-384") | None, Some("ES384")) | (Some("P-384"), None) => (true, 48),
                (Some("P-256"), Some(_)) | (Some("P-384"), Some(_)) => {
                    return Err((
                        "crv",
                        "[crv] field specified is not compatible with [alg] for an EC key".into(),
                    ));
                }
                _ => {
                    return Err(("crv", "[crv] or [alg] field is not supported for an EC key (P-256/ES256 and P-384/ES384 are)".into()));
                }
            };
            let x = required(jwk, "x", what)?;
            let y = required(jwk, "y", what)?;
            // SEC1 uncompressed point: 0x04 || x || y.
            let mut point = vec![4u8];
            for (name, value) in [("x", x), ("y", y)] {
                let bytes = decoded(value, name, what)?;
                if bytes.len() != size {
                    return Err((
                        name,
                        format!("[{name}] has {} bytes; the curve needs {size}", bytes.len()),
                    ));
                }
                point.extend(bytes);
            }
            let fail = |_| {
                (
                    "x",
                    "Jwks EC create key fail: the point is not on the curve".to_owned(),
                )
            };
            if p384 {
                Material::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(fail)?)
            } else {
                Material::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(fail)?)
            }
        }
        "OKP" => {
            let what = "an OKP key";
            if alg_name.is_some_and(|a| a != "EdDSA") {
                return Err(("alg", "[alg] is not [EdDSA] for an OKP key".into()));
            }
            match required(jwk, "crv", what)? {
                "Ed25519" => {}
                _ => {
                    return Err((
                        "crv",
                        "[crv] field is not supported for an OKP key (Ed25519 is)".into(),
                    ));
                }
            }
            let x = <[u8; 32]>::try_from(decoded(required(jwk, "x", what)?, "x", what)?)
                .map_err(|_| ("x", "Jwks OKP [x] field is wrong length.".to_owned()))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|e| ("x", format!("[x] is not an Ed25519 public key: {e}")))?;
            Material::Ed25519(key)
        }
        "oct" => {
            let what = "an HMAC key";
            if alg_name.is_some_and(|a| !a.starts_with("HS")) {
                return Err((
                    "alg",
                    "[alg] does not start with [HS] for an HMAC key".into(),
                ));
            }
            let k = decoded(required(jwk, "k", what)?, "k", what)?;
            if k.is_empty() {
                return Err(("k", "the HMAC key is empty".into()));
            }
            Material::Hmac(k)
        }
        _ => return Err(("kty", "[kty] is not supported in [keys]".into())),
    };
    let alg = match alg_name {
        None => None,
        Some(name) => match algorithm(name) {
            Some(alg) if material.verifies(alg) => Some(alg),
            _ => {
                return Err((
                    "alg",
                    format!("[alg] {name:?} is not supported for this key"),
                ));
            }
        },
    };
    Ok(Key { kid, alg, material })
}
