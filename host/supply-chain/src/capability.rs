//! The runtime's [`SupplyChain`] capability over an [`ImageVerifier`]: what the webhook, the
//! CLI and the test suites give policies. Signers arrive as the runtime describes them and are
//! turned into keys and compiled identities once, then kept; results come from the verifier's
//! cache, so a second admission of the same image touches neither the registry nor the crypto.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use palisade_runtime::capabilities::registry::RegistryFuture;
use palisade_runtime::capabilities::supply_chain::{
    self as runtime, Attestation, Pattern, Refusal, Signature, SignedBy, SupplyChain, Verification,
};

use crate::bundle::{Certificate, Identity, Signer};
use crate::image::{
    AttestationRequirement, Failure, Found, ImageVerifier, Resolved, SignatureRequirement,
};
use crate::keys::PublicKey;

/// Signers kept compiled at most; past this the table starts again (settings rarely name more).
const MAX_SIGNERS: usize = 1024;

/// [`SupplyChain`] over an [`ImageVerifier`].
#[derive(Debug)]
pub struct VerifierCapability {
    verifier: ImageVerifier,
    signers: Mutex<HashMap<runtime::Signer, Signer>>,
}

impl VerifierCapability {
    /// The capability answered by `verifier`.
    #[must_use]
    pub fn new(verifier: ImageVerifier) -> Self {
        Self {
            verifier,
            signers: Mutex::new(HashMap::new()),
        }
    }

    /// The verifier it asks.
    #[must_use]
    pub fn verifier(&self) -> &ImageVerifier {
        &self.verifier
    }

    /// `wanted` as a key or compiled identity, from the table or made now.
    fn signer(&self, wanted: &runtime::Signer) -> Result<Signer, Refusal> {
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signer) = signers.get(wanted) {
            return Ok(signer.clone());
        }
        let signer = signer(wanted).map_err(Refusal::Invalid)?;
        if signers.len() >= MAX_SIGNERS {
            signers.clear();
        }
        signers.insert(wanted.clone(), signer.clone());
        Ok(signer)
    }

    async fn resolved(&self, image: &str) -> Result<Resolved, Refusal> {
        self.verifier.resolve(image).await.map_err(refusal)
    }
}

/// The refusal the runtime gives for the verifier's failure.
fn refusal(failure: Failure) -> Refusal {
    match failure {
        Failure::Missing(why) => Refusal::Missing(why),
        Failure::Unverified(why) => Refusal::Unverified(why),
        Failure::Store(why) => Refusal::Unavailable(why),
    }
}

fn signed_by(found: &Found, certificate: Option<&Certificate>) -> SignedBy {
    SignedBy {
        source: found.to_string(),
        subject: certificate.map(|c| c.subject.clone()),
        issuer: certificate.map(|c| c.issuer.clone()),
    }
}

/// A field's match as an exact value or a regular expression.
fn matcher(wanted: &Pattern) -> Result<(Option<String>, Option<regex::Regex>), String> {
    Ok(match wanted {
        Pattern::Exact(value) => (Some(value.clone()), None),
        Pattern::Prefix(prefix) => (
            None,
            Some(
                regex::Regex::new(&format!("^{}", regex::escape(prefix)))
                    .map_err(|e| e.to_string())?,
            ),
        ),
        Pattern::Regexp(pattern) => (
            None,
            Some(regex::Regex::new(pattern).map_err(|e| format!("regexp {pattern:?}: {e}"))?),
        ),
    })
}

/// The verifier's signer for the runtime's.
///
/// # Errors
/// A key that does not parse, a regular expression that does not compile, an unknown claim.
pub fn signer(signer: &runtime::Signer) -> Result<Signer, String> {
    match signer {
        runtime::Signer::Key(pem) => PublicKey::from_pem(pem)
            .map(Signer::Key)
            .map_err(|e| format!("a public key: {e}")),
        runtime::Signer::Keyless(wanted) => {
            let (subject, subject_regexp) = matcher(&wanted.subject)?;
            let (issuer, issuer_regexp) = matcher(&wanted.issuer)?;
            let mut identity = Identity {
                subject,
                subject_regexp,
                issuer,
                issuer_regexp,
                ..Identity::default()
            };
            for (name, claim) in &wanted.claims {
                match matcher(claim).map_err(|e| format!("claim {name}: {e}"))? {
                    (Some(exact), _) => {
                        identity.claims.insert(name.clone(), exact);
                    }
                    (None, Some(regexp)) => {
                        identity.claim_regexps.insert(name.clone(), regexp);
                    }
                    (None, None) => {}
                }
            }
            identity.check()?;
            Ok(Signer::Keyless(vec![identity]))
        }
    }
}

impl SupplyChain for VerifierCapability {
    fn resolve<'a>(&'a self, image: &'a str) -> RegistryFuture<'a, String> {
        Box::pin(async move {
            self.verifier
                .resolve(image)
                .await
                .map(|resolved| resolved.digest.to_string())
                .map_err(|e| e.to_string())
        })
    }

    fn signatures<'a>(
        &'a self,
        image: &'a str,
        signer: &'a runtime::Signer,
        annotations: &'a [(String, String)],
    ) -> Verification<'a, Vec<Signature>> {
        Box::pin(async move {
            let requirement = SignatureRequirement {
                signer: self.signer(signer)?,
                annotations: annotations.iter().cloned().collect(),
            };
            let image = self.resolved(image).await?;
            let verified = self
                .verifier
                .signatures(&image, &requirement)
                .await
                .map_err(refusal)?;
            Ok(verified
                .iter()
                .map(|v| Signature {
                    signed_by: signed_by(&v.found, v.certificate.as_ref()),
                    annotations: v
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
                .collect())
        })
    }

    fn attestations<'a>(
        &'a self,
        image: &'a str,
        signer: &'a runtime::Signer,
        predicate_type: &'a str,
    ) -> Verification<'a, Vec<Attestation>> {
        Box::pin(async move {
            let requirement = AttestationRequirement {
                signer: self.signer(signer)?,
                predicate_type: predicate_type.to_owned(),
            };
            let image = self.resolved(image).await?;
            let verified = self
                .verifier
                .attestations(&image, &requirement)
                .await
                .map_err(refusal)?;
            verified
                .iter()
                .map(|v| {
                    Ok(Attestation {
                        signed_by: signed_by(&v.found, v.certificate.as_ref()),
                        statement: serde_json::to_string(&v.statement).map_err(|e| {
                            Refusal::Unavailable(format!("re-serializing a statement: {e}"))
                        })?,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use palisade_runtime::capabilities::supply_chain::{Identity as Wanted, Pattern, Signer};

    use super::signer;
    use crate::bundle;

    #[test]
    fn the_runtimes_signers_become_identities_with_prefixes_as_anchored_patterns() {
        let prefix = signer(&Signer::Keyless(Wanted {
            subject: Pattern::Prefix("https://github.com/acme/".to_owned()),
            issuer: Pattern::Exact("https://issuer.example".to_owned()),
            claims: vec![(
                "githubWorkflowRepository".to_owned(),
                Pattern::Prefix("acme/".to_owned()),
            )],
        }))
        .unwrap();
        let bundle::Signer::Keyless(identities) = prefix else {
            panic!("a keyless signer");
        };
        let subject = identities[0].subject_regexp.as_ref().unwrap();
        assert!(subject.is_match("https://github.com/acme/app/.github/workflows/a.yml@main"));
        assert!(!subject.is_match("https://evil.example/https://github.com/acme/"));
        assert!(identities[0].claim_regexps["githubWorkflowRepository"].is_match("acme/app"));
        let bad = signer(&Signer::Key("not a key".to_owned())).unwrap_err();
        assert!(bad.contains("a public key"), "{bad}");
        let regexp = signer(&Signer::Keyless(Wanted {
            subject: Pattern::Regexp("(".to_owned()),
            issuer: Pattern::Exact("https://issuer.example".to_owned()),
            claims: Vec::new(),
        }))
        .unwrap_err();
        assert!(regexp.contains("regexp \"(\""), "{regexp}");
    }
}
