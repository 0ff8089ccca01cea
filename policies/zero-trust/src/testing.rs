//! Keys and tokens made at test time, so no fixture, example or benchmark holds a secret: one
//! key of every supported type, generated from a fixed seed (the same keys, tokens and
//! expected outcomes on every run) and never written anywhere.
//!
//! Fixture documents name what they need and [`expand`] writes it in:
//! - `{$jwks: [rsa, es256]}` becomes the public key set of those keys as JSON text (all keys
//!   when the list is empty);
//! - `{$token: {alg: RS256, kid: rsa, claims: {...}, tamper: signature}}` becomes a token
//!   signed with that key (`kid` defaults to the algorithm's key; `header` adds header fields;
//!   `tamper: signature | payload` breaks it after signing; `key: other` signs with a key that
//!   is in no set; `prefix` is written before the token, as in `Bearer `).

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

/// The test keys.
pub struct Keys {
    rsa: rsa::RsaPrivateKey,
    other_rsa: rsa::RsaPrivateKey,
    p256: p256::SecretKey,
    p384: p384::SecretKey,
    ed25519: ed25519_dalek::SigningKey,
    hmac: [u8; 32],
}

/// The keys, generated once per process from a fixed seed.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(2026);
        #[expect(
            clippy::expect_used,
            reason = "test keys: a failure here is a broken test setup"
        )]
        let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generating the RSA test key");
        #[expect(clippy::expect_used, reason = "as above")]
        let other_rsa =
            rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generating the RSA test key");
        let p256 = p256::SecretKey::random(&mut rng);
        let p384 = p384::SecretKey::random(&mut rng);
        let ed25519 = ed25519_dalek::SigningKey::generate(&mut rng);
        let mut hmac = [0u8; 32];
        rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut hmac);
        Keys {
            rsa,
            other_rsa,
            p256,
            p384,
            ed25519,
            hmac,
        }
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key ids of the set, and the key each algorithm signs with by default.
pub const KIDS: [&str; 5] = ["rsa", "es256", "es384", "ed25519", "hmac"];

fn default_kid(alg: &str) -> &'static str {
    match alg {
        "ES256" => "es256",
        "ES384" => "es384",
        "EdDSA" => "ed25519",
        a if a.starts_with("HS") => "hmac",
        _ => "rsa",
    }
}

impl Keys {
    /// The public JWK of the key `kid`.
    ///
    /// # Panics
    /// For a kid that is not one of [`KIDS`].
    #[must_use]
    pub fn jwk(&self, kid: &str) -> Value {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        match kid {
            "rsa" => {
                let public = self.rsa.to_public_key();
                json!({"kty": "RSA", "kid": kid, "use": "sig",
                       "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())})
            }
            "es256" => {
                let point = self.p256.public_key().to_encoded_point(false);
                json!({"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
                       "x": b64(point.x().map(|x| x.as_slice()).unwrap_or_default()),
                       "y": b64(point.y().map(|y| y.as_slice()).unwrap_or_default())})
            }
            "es384" => {
                let point = self.p384.public_key().to_encoded_point(false);
                json!({"kty": "EC", "kid": kid, "crv": "P-384",
                       "x": b64(point.x().map(|x| x.as_slice()).unwrap_or_default()),
                       "y": b64(point.y().map(|y| y.as_slice()).unwrap_or_default())})
            }
            "ed25519" => json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA",
                                "x": b64(self.ed25519.verifying_key().as_bytes())}),
            "hmac" => json!({"kty": "oct", "kid": kid, "k": b64(&self.hmac)}),
            #[expect(clippy::panic, reason = "test helper: an unknown kid is a broken test")]
            other => panic!("no test key {other:?}; there are {KIDS:?}"),
        }
    }

    /// The public key set of `kids` (all when empty), as JSON text.
    #[must_use]
    pub fn jwks(&self, kids: &[&str]) -> String {
        let kids = if kids.is_empty() { &KIDS[..] } else { kids };
        json!({"keys": kids.iter().map(|k| self.jwk(k)).collect::<Vec<_>>()}).to_string()
    }

    /// A token of `claims` signed with `alg` by the key `kid` (the algorithm's default key when
    /// `None`), or by a key in no set when `kid` is `other`; `header` fields are added to the
    /// JOSE header.
    ///
    /// # Errors
    /// When the algorithm is unknown or signing fails.
    pub fn sign(
        &self,
        alg: &str,
        kid: Option<&str>,
        header: &Map<String, Value>,
        claims: &Value,
    ) -> Result<String, String> {
        let algorithm: jsonwebtoken::Algorithm = alg
            .parse()
            .map_err(|_| format!("unknown algorithm {alg:?}"))?;
        let kid = kid.unwrap_or_else(|| default_kid(alg));
        let key = match (kid, default_kid(alg)) {
            ("other", _) => EncodingKey::from_rsa_der(
                self.other_rsa
                    .to_pkcs1_der()
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            ),
            (_, "rsa") => EncodingKey::from_rsa_der(
                self.rsa
                    .to_pkcs1_der()
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            ),
            (_, "es256") => {
                use p256::pkcs8::EncodePrivateKey as _;
                EncodingKey::from_ec_der(
                    self.p256
                        .to_pkcs8_der()
                        .map_err(|e| e.to_string())?
                        .as_bytes(),
                )
            }
            (_, "es384") => {
                use p384::pkcs8::EncodePrivateKey as _;
                EncodingKey::from_ec_der(
                    self.p384
                        .to_pkcs8_der()
                        .map_err(|e| e.to_string())?
                        .as_bytes(),
                )
            }
            (_, "ed25519") => {
                use ed25519_dalek::pkcs8::EncodePrivateKey as _;
                EncodingKey::from_ed_der(
                    self.ed25519
                        .to_pkcs8_der()
                        .map_err(|e| e.to_string())?
                        .as_bytes(),
                )
            }
            _ => EncodingKey::from_secret(&self.hmac),
        };
        let mut jose = Header::new(algorithm);
        jose.kid = (kid != "none").then(|| kid.to_owned());
        let mut header_value = serde_json::to_value(&jose).map_err(|e| e.to_string())?;
        if let Value::Object(h) = &mut header_value {
            h.retain(|_, v| !v.is_null());
            for (k, v) in header {
                h.insert(k.clone(), v.clone());
            }
        }
        let signed = format!(
            "{}.{}",
            b64(header_value.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, algorithm)
            .map_err(|e| e.to_string())?;
        Ok(format!("{signed}.{signature}"))
    }
}

/// Replaces `{$jwks: [...]}` and `{$token: {...}}` anywhere in a fixture document (see the
/// module documentation).
///
/// # Errors
/// A malformed placeholder, naming it.
pub fn expand(document: Value) -> anyhow::Result<Value> {
    Ok(match document {
        Value::Object(map) if map.len() == 1 && map.contains_key("$jwks") => {
            let kids: Vec<String> =
                serde_json::from_value(map.get("$jwks").cloned().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("$jwks takes a list of key ids: {e}"))?;
            let kids: Vec<&str> = kids.iter().map(String::as_str).collect();
            Value::String(keys().jwks(&kids))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("$token") => {
            Value::String(token(map.get("$token").cloned().unwrap_or_default())?)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| expand(v).map(|v| (k, v)))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(expand)
                .collect::<anyhow::Result<_>>()?,
        ),
        other => other,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    header: Map<String, Value>,
    #[serde(default)]
    claims: Value,
    #[serde(default)]
    tamper: Option<String>,
    /// Text written before the token (`Bearer `, `/orders?access_token=`).
    #[serde(default)]
    prefix: String,
}

fn token(spec: Value) -> anyhow::Result<String> {
    let spec: TokenSpec =
        serde_json::from_value(spec).map_err(|e| anyhow::anyhow!("$token: {e}"))?;
    let token = keys()
        .sign(&spec.alg, spec.kid.as_deref(), &spec.header, &spec.claims)
        .map_err(|e| anyhow::anyhow!("$token: {e}"))?;
    let token = match spec.tamper.as_deref() {
        None => token,
        Some("signature") => {
            // Flip one bit of the signature's first byte: still base64url, no longer valid.
            let (signed, signature) = token.rsplit_once('.').unwrap_or_default();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature)?;
            if let Some(first) = bytes.first_mut() {
                *first ^= 1;
            }
            format!("{signed}.{}", b64(&bytes))
        }
        Some("payload") => {
            // The same signature over a payload with one more claim.
            let mut parts = token.split('.');
            let (header, _, signature) = (
                parts.next().unwrap_or_default(),
                parts.next(),
                parts.next().unwrap_or_default(),
            );
            let mut claims = spec.claims.clone();
            if let Value::Object(c) = &mut claims {
                c.insert("admin".into(), Value::Bool(true));
            }
            format!(
                "{header}.{}.{signature}",
                b64(claims.to_string().as_bytes())
            )
        }
        Some(other) => anyhow::bail!("$token: tamper is signature or payload, not {other:?}"),
    };
    Ok(format!("{}{token}", spec.prefix))
}
