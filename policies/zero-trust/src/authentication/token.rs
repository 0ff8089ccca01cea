//! One token, read as Envoy's jwt_verify_lib reads it: three base64url sections, a header with
//! a supported `alg` and an optional string `kid`, a JSON payload whose registered claims have
//! the types RFC 7519 gives them, then time and audience checks. Failures carry Envoy's status
//! messages, which are what the client sees in a 401 body.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::jwks::{Algorithm, Jwks, algorithm};

/// Why a token was refused: Envoy's status string, and whether it is Envoy's 403 case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    BadFormat,
    HeaderBadBase64,
    HeaderBadJson,
    HeaderBadAlg,
    HeaderNotImplementedAlg,
    HeaderBadKid,
    PayloadBadBase64,
    PayloadBadJson,
    PayloadNotObject,
    IssNotString,
    SubNotString,
    IatNotInteger,
    NbfNotInteger,
    ExpNotInteger,
    JtiNotString,
    AudNotString,
    SignatureBadBase64,
    UnknownIssuer,
    NotYetValid,
    Expired,
    AudienceNotAllowed,
    KidAlgMismatch,
    VerificationFail,
    JwksFetchFail,
}

impl Failure {
    /// Envoy's status string (`jwt_verify_lib/status.cc`).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            Self::HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            Self::HeaderBadJson => "Jwt header is an invalid JSON",
            Self::HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            Self::HeaderNotImplementedAlg => "Jwt header [alg] is not supported",
            Self::HeaderBadKid => "Jwt header [kid] field is not a string",
            Self::PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            Self::PayloadBadJson | Self::PayloadNotObject => "Jwt payload is an invalid JSON",
            Self::IssNotString => "Jwt payload [iss] field is not a string",
            Self::SubNotString => "Jwt payload [sub] field is not a string",
            Self::IatNotInteger => "Jwt payload [iat] field is not an integer",
            Self::NbfNotInteger => "Jwt payload [nbf] field is not an integer",
            Self::ExpNotInteger => "Jwt payload [exp] field is not an integer",
            Self::JtiNotString => "Jwt payload [jti] field is not a string",
            Self::AudNotString => "Jwt payload [aud] field is not a string or string list",
            Self::SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            Self::UnknownIssuer => "Jwt issuer is not configured",
            Self::NotYetValid => "Jwt not yet valid",
            Self::Expired => "Jwt is expired",
            Self::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Self::KidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            Self::VerificationFail => "Jwt verification fails",
            Self::JwksFetchFail => "Jwks remote fetch is failed",
        }
    }

    /// The response status: 403 for an audience that is not allowed (Envoy's
    /// `JwtAudienceNotAllowed` → Forbidden), 401 for everything else.
    pub(crate) fn status(self) -> u16 {
        if self == Self::AudienceNotAllowed {
            403
        } else {
            401
        }
    }
}

/// A token whose sections and claims parsed.
#[derive(Debug, Clone)]
pub(crate) struct Jwt<'a> {
    /// `header.payload`, what the signature covers.
    pub signed: &'a str,
    /// The signature section, base64url.
    pub signature: Vec<u8>,
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The payload's JSON text, as decoded.
    pub payload_bytes: Vec<u8>,
    pub payload: Map<String, Value>,
    pub iss: String,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub audiences: Vec<String>,
}

fn section(text: &str, failure: Failure) -> Result<Vec<u8>, Failure> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| failure)
}

/// A registered time claim: absent, or a non-negative integer (Envoy also takes a number with
/// no fraction).
fn time_claim(
    payload: &Map<String, Value>,
    name: &str,
    failure: Failure,
) -> Result<Option<u64>, Failure> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(failure),
        Some(_) => Err(failure),
    }
}

fn string_claim(payload: &Map<String, Value>, name: &str, failure: Failure) -> Result<(), Failure> {
    match payload.get(name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(failure),
    }
}

impl<'a> Jwt<'a> {
    /// Parses the token's sections and claims (no signature check).
    pub(crate) fn parse(token: &'a str) -> Result<Self, Failure> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::BadFormat);
        };
        let signed = token
            .get(..header.len().saturating_add(1).saturating_add(payload.len()))
            .ok_or(Failure::BadFormat)?;
        let header: Value = serde_json::from_slice(&section(header, Failure::HeaderBadBase64)?)
            .map_err(|_| Failure::HeaderBadJson)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Failure::HeaderBadAlg)?;
        let alg = algorithm(alg).ok_or(Failure::HeaderNotImplementedAlg)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Failure::HeaderBadKid),
        };
        let payload_bytes = section(payload, Failure::PayloadBadBase64)?;
        let payload: Value =
            serde_json::from_slice(&payload_bytes).map_err(|_| Failure::PayloadBadJson)?;
        let Value::Object(payload) = payload else {
            return Err(Failure::PayloadNotObject);
        };
        string_claim(&payload, "iss", Failure::IssNotString)?;
        string_claim(&payload, "sub", Failure::SubNotString)?;
        string_claim(&payload, "jti", Failure::JtiNotString)?;
        time_claim(&payload, "iat", Failure::IatNotInteger)?;
        let nbf = time_claim(&payload, "nbf", Failure::NbfNotInteger)?;
        let exp = time_claim(&payload, "exp", Failure::ExpNotInteger)?;
        let audiences = match payload.get("aud") {
            None => Vec::new(),
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(Failure::AudNotString)?,
            Some(_) => return Err(Failure::AudNotString),
        };
        let signature = section(signature, Failure::SignatureBadBase64)?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            signed,
            signature,
            alg,
            kid,
            payload_bytes,
            payload,
            iss,
            exp,
            nbf,
            audiences,
        })
    }
}

/// Envoy's time check: not before `nbf - skew`, not after `exp + skew` (no `exp`: no limit).
pub(crate) fn check_time(
    nbf: Option<u64>,
    exp: Option<u64>,
    now: u64,
    skew: u64,
) -> Result<(), Failure> {
    if nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
        return Err(Failure::NotYetValid);
    }
    if exp.is_some_and(|exp| exp != 0 && now > exp.saturating_add(skew)) {
        return Err(Failure::Expired);
    }
    Ok(())
}

/// An audience without its `http://` or `https://` scheme and trailing `/`, as jwt_verify_lib
/// compares them.
fn bare(audience: &str) -> &str {
    let rest = audience
        .strip_prefix("https://")
        .or_else(|| audience.strip_prefix("http://"))
        .unwrap_or(audience);
    rest.strip_suffix('/').unwrap_or(rest)
}

/// Whether one of the token's audiences is allowed (no configured audiences: any token).
pub(crate) fn audience_allowed(allowed: &[String], token: &[String]) -> bool {
    allowed.is_empty()
        || token
            .iter()
            .any(|t| allowed.iter().any(|a| bare(a) == bare(t)))
}

/// Checks the signature with the key set, choosing keys as jwt_verify_lib does: a key whose
/// `kid` differs from the token's (both present) or whose `alg` differs is skipped; a key of the
/// right type is tried; one success is enough.
pub(crate) fn verify_signature(jwt: &Jwt<'_>, jwks: &Jwks) -> Result<(), Failure> {
    let mut candidate = false;
    for key in &jwks.keys {
        if jwt.kid.is_some() && key.kid.is_some() && jwt.kid != key.kid {
            continue;
        }
        if key.alg.is_some_and(|alg| alg != jwt.alg) || !key.material.verifies(jwt.alg) {
            continue;
        }
        candidate = true;
        if key
            .material
            .check(jwt.alg, jwt.signed.as_bytes(), &jwt.signature)
        {
            return Ok(());
        }
    }
    Err(if candidate {
        Failure::VerificationFail
    } else {
        Failure::KidAlgMismatch
    })
}
