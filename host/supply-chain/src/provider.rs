//! The cryptography under sigstore-verify: RustCrypto (the crates [`crate::keys`] uses), installed
//! as its process-wide provider, so the tree builds no C library (sigstore-verify's own provider
//! is aws-lc). Verification only.

use sha2::Digest as _;
use sigstore_verify::crypto::{CryptoProvider, Error, HashContext, Result, SigningScheme};
use sigstore_verify::types::HashAlgorithm;

/// RustCrypto as sigstore-verify's provider.
#[derive(Debug)]
pub(crate) struct RustCrypto;

static PROVIDER: RustCrypto = RustCrypto;

/// Installs [`RustCrypto`] as sigstore-verify's provider, once per process (another installed
/// first is left in place).
pub(crate) fn install() {
    let _already = sigstore_verify::crypto::install_default_provider(&PROVIDER);
}

struct Hasher<D: sha2::Digest + Send>(D);

impl<D: sha2::Digest + Send> HashContext for Hasher<D> {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

fn invalid(scheme: SigningScheme) -> Error {
    Error::Verification(format!("{} signature invalid", scheme.name()))
}

fn digest(algorithm: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>> {
    Ok(match algorithm {
        HashAlgorithm::Sha2256 => sha2::Sha256::digest(data).to_vec(),
        HashAlgorithm::Sha2384 => sha2::Sha384::digest(data).to_vec(),
        HashAlgorithm::Sha2512 => sha2::Sha512::digest(data).to_vec(),
        other => return Err(Error::UnsupportedAlgorithm(format!("{other:?}"))),
    })
}

/// RSA keys arrive as PKCS#1 `RSAPublicKey` (sigstore-crypto's raw key form); 2048 to 8192 bits,
/// as Go's and webpki's verifiers allow.
fn verify_rsa(scheme: SigningScheme, key: &[u8], digest: &[u8], signature: &[u8]) -> Result<()> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_pkcs1_der(key)
        .map_err(|e| Error::InvalidKeyFormat(e.to_string()))?;
    if !(2048..=8192).contains(&key.n().bits()) {
        return Err(invalid(scheme));
    }
    let checked = match scheme {
        SigningScheme::RsaPkcs1Sha256 => {
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
        }
        SigningScheme::RsaPkcs1Sha384 => {
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
        }
        SigningScheme::RsaPkcs1Sha512 => {
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
        }
        SigningScheme::RsaPssSha256 => {
            key.verify(rsa::Pss::new::<sha2::Sha256>(), digest, signature)
        }
        SigningScheme::RsaPssSha384 => {
            key.verify(rsa::Pss::new::<sha2::Sha384>(), digest, signature)
        }
        SigningScheme::RsaPssSha512 => {
            key.verify(rsa::Pss::new::<sha2::Sha512>(), digest, signature)
        }
        _ => return Err(invalid(scheme)),
    };
    checked.map_err(|_| invalid(scheme))
}

/// EC keys arrive as SEC 1 points, signatures as DER.
fn verify_prehashed(
    scheme: SigningScheme,
    key: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Result<()> {
    use ecdsa::signature::hazmat::PrehashVerifier;
    match scheme {
        SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
            let key =
                p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|_| invalid(scheme))?;
            let signature =
                p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
            key.verify_prehash(digest, &signature)
                .map_err(|_| invalid(scheme))
        }
        SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
            let key =
                p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|_| invalid(scheme))?;
            let signature =
                p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
            key.verify_prehash(digest, &signature)
                .map_err(|_| invalid(scheme))
        }
        _ => verify_rsa(scheme, key, digest, signature),
    }
}

impl CryptoProvider for RustCrypto {
    fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>> {
        Ok(match algorithm {
            HashAlgorithm::Sha2256 => Box::new(Hasher(sha2::Sha256::new())),
            HashAlgorithm::Sha2384 => Box::new(Hasher(sha2::Sha384::new())),
            HashAlgorithm::Sha2512 => Box::new(Hasher(sha2::Sha512::new())),
            other => return Err(Error::UnsupportedAlgorithm(format!("{other:?}"))),
        })
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        if scheme == SigningScheme::Ed25519 {
            let key: [u8; 32] = key.try_into().map_err(|_| invalid(scheme))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| invalid(scheme))?;
            let signature =
                ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid(scheme))?;
            return key
                .verify_strict(data, &signature)
                .map_err(|_| invalid(scheme));
        }
        match scheme.hash_algorithm() {
            Some(algorithm) => verify_prehashed(scheme, key, &digest(algorithm, data)?, signature),
            None => Err(Error::UnsupportedAlgorithm(scheme.name().into())),
        }
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        verify_prehashed(scheme, key, digest, signature)
    }
}
