//! Whether a certificate is trusted (`crypto/v1/is_certificate_trusted`), decided as
//! policy-evaluator's `callback_handler/crypto.rs` decides it, with the same crate
//! (rustls-webpki): the certificate must chain to the last certificate of the given chain (its
//! root; the others are intermediates), or, without a chain, to Mozilla's roots
//! (webpki-roots); any extended key usage is accepted; validity is checked at the requested
//! time, or now. The reasons are Kubewarden's words. webpki does not check a root's own
//! validity period (intermediates' it does).

use std::time::Duration;

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use webpki::{EndEntityCert, Error};

const USED_AFTER_EXPIRATION: &str = "Certificate is being used after its expiration date";
const USED_BEFORE_VALIDITY: &str = "Certificate is being used before its validity date";
const NOT_TRUSTED_BY_CHAIN: &str = "Certificate is not trusted by the provided cert chain";

/// A certificate, PEM or DER (kubewarden-policy-sdk `crypto::Certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The bytes (a JSON array of numbers on the wire).
    pub data: Vec<u8>,
}

/// A certificate's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// DER.
    Der,
    /// PEM.
    Pem,
}

/// The question (kubewarden-policy-sdk `CertificateVerificationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRequest {
    /// The certificate to check.
    pub cert: Certificate,
    /// Intermediates then, last, the root it must chain to; Mozilla's roots if absent.
    #[serde(default)]
    pub cert_chain: Option<Vec<Certificate>>,
    /// The time at which it must be valid, RFC 3339 (`""` or absent: now).
    #[serde(default)]
    pub not_after: Option<String>,
}

/// The answer (`CertificateVerificationResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateVerdict {
    /// Whether the certificate is trusted.
    pub trusted: bool,
    /// Why not (empty when trusted).
    pub reason: String,
}

impl CertificateVerdict {
    fn not(reason: impl Into<String>) -> Self {
        Self {
            trusted: false,
            reason: reason.into(),
        }
    }
}

fn der(cert: &Certificate) -> Result<CertificateDer<'_>, String> {
    match cert.encoding {
        Encoding::Pem => CertificateDer::from_pem_slice(&cert.data)
            .map_err(|e| format!("Certificate PEM data is not valid: {e}")),
        Encoding::Der => Ok(CertificateDer::from(cert.data.as_slice())),
    }
}

/// Decides `request` at `now` (since the Unix epoch) unless it names its own time.
///
/// # Errors
/// A certificate that does not parse, or a time that is not RFC 3339 (as Kubewarden: an
/// error, not an untrusted answer).
pub fn is_trusted(
    request: &CertificateRequest,
    now: Duration,
) -> Result<CertificateVerdict, String> {
    let cert = der(&request.cert)?;
    let end_entity = EndEntityCert::try_from(&cert)
        .map_err(|e| format!("Certificate is not a valid end-entity certificate: {e}"))?;
    let time = match request.not_after.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => {
            let seconds =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
                    .ok_or_else(|| "Timestamp not_after is not in RFC3339 format".to_owned())?;
            UnixTime::since_unix_epoch(Duration::from_secs(seconds))
        }
        None => UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs())),
    };
    let chain: Vec<CertificateDer<'_>> = match &request.cert_chain {
        Some(chain) => chain.iter().map(der).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let (roots, intermediates): (Vec<TrustAnchor<'_>>, &[CertificateDer<'_>]) =
        match chain.split_last() {
            Some((root, intermediates)) => (
                vec![
                    webpki::anchor_from_trusted_cert(root)
                        .map_err(|e| format!("the root of the chain is not usable: {e}"))?,
                ],
                intermediates,
            ),
            None if request.cert_chain.is_some() => (Vec::new(), &[]),
            None => (webpki_roots::TLS_SERVER_ROOTS.to_vec(), &[]),
        };
    let verified = end_entity.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &roots,
        intermediates,
        time,
        AnyUsage,
        None,
        None,
    );
    Ok(match verified {
        Ok(_) => CertificateVerdict {
            trusted: true,
            reason: String::new(),
        },
        Err(Error::InvalidSignatureForPublicKey | Error::UnknownIssuer) => {
            CertificateVerdict::not(NOT_TRUSTED_BY_CHAIN)
        }
        Err(Error::CertExpired { .. }) => CertificateVerdict::not(USED_AFTER_EXPIRATION),
        Err(Error::CertNotValidYet { .. }) => CertificateVerdict::not(USED_BEFORE_VALIDITY),
        Err(e) => CertificateVerdict::not(format!("Certificate not trusted: {e}")),
    })
}

/// Accepts any extended key usage, as Kubewarden does.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn pem(text: String) -> Certificate {
        Certificate {
            encoding: Encoding::Pem,
            data: text.into_bytes(),
        }
    }

    /// A root CA and a leaf it signed, valid from 2025 to 2027.
    fn pki() -> (Certificate, Certificate, Certificate) {
        let dates = |p: &mut CertificateParams| {
            p.not_before = rcgen::date_time_ymd(2025, 1, 1);
            p.not_after = rcgen::date_time_ymd(2027, 1, 1);
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        dates(&mut ca);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["web.example".to_owned()]).unwrap();
        dates(&mut leaf);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        dates(&mut other);
        let other_cert = other.self_signed(&other_key).unwrap();
        (
            pem(ca_cert.pem()),
            pem(leaf_cert.pem()),
            pem(other_cert.pem()),
        )
    }

    const IN_2026: Duration = Duration::from_secs(1_767_225_600);

    fn ask(
        cert: &Certificate,
        chain: Option<Vec<Certificate>>,
        at: Option<&str>,
    ) -> CertificateVerdict {
        is_trusted(
            &CertificateRequest {
                cert: cert.clone(),
                cert_chain: chain,
                not_after: at.map(str::to_owned),
            },
            IN_2026,
        )
        .unwrap()
    }

    #[test]
    fn a_leaf_signed_by_the_chains_root_is_trusted_while_valid() {
        let (ca, leaf, other) = pki();
        assert!(ask(&leaf, Some(vec![ca.clone()]), None).trusted);
        assert_eq!(
            ask(&leaf, Some(vec![other]), None).reason,
            NOT_TRUSTED_BY_CHAIN
        );
        assert_eq!(
            ask(&leaf, Some(vec![ca.clone()]), Some("2028-01-01T00:00:00Z")).reason,
            USED_AFTER_EXPIRATION
        );
        assert_eq!(
            ask(&leaf, Some(vec![ca]), Some("2024-06-01T00:00:00Z")).reason,
            USED_BEFORE_VALIDITY
        );
        // Without a chain: Mozilla's roots, which did not sign it.
        assert_eq!(ask(&leaf, None, None).reason, NOT_TRUSTED_BY_CHAIN);
    }

    #[test]
    fn unreadable_input_is_an_error_not_an_answer() {
        let (ca, _, _) = pki();
        let garbage = Certificate {
            encoding: Encoding::Pem,
            data: b"not a certificate".to_vec(),
        };
        assert!(
            is_trusted(
                &CertificateRequest {
                    cert: garbage,
                    cert_chain: None,
                    not_after: None
                },
                IN_2026
            )
            .unwrap_err()
            .contains("PEM")
        );
        let error = is_trusted(
            &CertificateRequest {
                cert: ca,
                cert_chain: None,
                not_after: Some("yesterday".to_owned()),
            },
            IN_2026,
        )
        .unwrap_err();
        assert_eq!(error, "Timestamp not_after is not in RFC3339 format");
    }
}
