//! Image-signature verification, offline: Sigstore bundles from the local instance
//! (`testing::Instance`) verified with `bundle::verify`, cold (the trusted root parsed each time)
//! and with the root parsed once; and images of the fixture set (`testing::images`), written
//! into an OCI layout in a tempdir, verified through `VerifierCapability` as the host's policies
//! ask it: a first verification (a fresh store and verifier, so nothing cached) and later ones
//! served from the verifier's result cache.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
#![expect(clippy::unwrap_used, reason = "benchmark")]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use palisade_oci::{ImageStore, StoreOptions};
use palisade_runtime::capabilities::supply_chain::{self as runtime, Pattern, SupplyChain as _};
use palisade_supply_chain::attach::Destination;
use palisade_supply_chain::bundle::{self, Artifact, Identity, Signer, TrustRoot};
use palisade_supply_chain::capability::VerifierCapability;
use palisade_supply_chain::image::ImageVerifier;
use palisade_supply_chain::keys::SigningKey;
use palisade_supply_chain::testing::images::{
    ATTESTED, FixtureOptions, ISSUER, KEYLESS, KEYLESS_REPOSITORY, KEYLESS_SUBJECT, SIGNED,
    SLSA_PROVENANCE_V1, write_images,
};
use palisade_supply_chain::testing::{CertificateRequest, Credential, Instance, Options, Version};

/// What the bundles sign.
const ARTEFACT: &[u8] = b"a release artefact, signed for the benchmark";
/// The keyless bundles' signer.
const EMAIL: &str = "release@example.com";
/// Long enough that no cache entry expires during a run.
const HOUR: Duration = Duration::from_secs(3600);

/// A group that keeps the whole bench well under a minute.
fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

fn bundles(c: &mut Criterion) {
    let sigstore = Instance::new().unwrap();
    let leaf = sigstore
        .issue(&CertificateRequest::email(EMAIL, ISSUER))
        .unwrap();
    let v0_3 = Options::new(Version::V0_3);
    let keyless_bundle = sigstore
        .sign_blob(Credential::Keyless(&leaf), ARTEFACT, &v0_3)
        .unwrap();
    let key = SigningKey::generate_p256();
    let key_bundle = sigstore
        .sign_blob(Credential::Key(&key), ARTEFACT, &v0_3)
        .unwrap();
    let root_json = sigstore.trusted_root_json();
    let root = TrustRoot::from_json(&root_json, "bench").unwrap();
    let keyless = Signer::Keyless(vec![Identity {
        subject: Some(EMAIL.to_owned()),
        issuer: Some(ISSUER.to_owned()),
        ..Identity::default()
    }]);
    let keyed = Signer::Key(key.public_key());

    // What is measured verifies.
    let verified = bundle::verify(&root, &keyless_bundle, Artifact::Bytes(ARTEFACT), &keyless);
    assert_eq!(verified.unwrap().certificate.unwrap().subject, EMAIL);
    let verified = bundle::verify(&root, &key_bundle, Artifact::Bytes(ARTEFACT), &keyed);
    assert!(verified.unwrap().certificate.is_none());

    let mut group = quick(c, "bundle");
    group.bench_function("keyless-v0.3 first", |b| {
        b.iter(|| {
            let root = TrustRoot::from_json(black_box(&root_json), "bench").unwrap();
            bundle::verify(
                &root,
                black_box(&keyless_bundle),
                Artifact::Bytes(ARTEFACT),
                &keyless,
            )
            .unwrap()
        });
    });
    group.bench_function("keyless-v0.3", |b| {
        b.iter(|| {
            bundle::verify(
                &root,
                black_box(&keyless_bundle),
                Artifact::Bytes(ARTEFACT),
                &keyless,
            )
            .unwrap()
        });
    });
    group.bench_function("key", |b| {
        b.iter(|| {
            bundle::verify(
                &root,
                black_box(&key_bundle),
                Artifact::Bytes(ARTEFACT),
                &keyed,
            )
            .unwrap()
        });
    });
    group.finish();
}

/// A capability over a store of the layout `dir` of its own (empty caches).
fn capability(dir: &Path, root: &TrustRoot) -> VerifierCapability {
    let options = StoreOptions {
        cache_ttl: HOUR,
        ..StoreOptions::default()
    };
    let store = ImageStore::layout(dir, options).unwrap();
    VerifierCapability::new(ImageVerifier::new(
        Arc::new(store),
        Some(root.clone()),
        HOUR,
    ))
}

fn images(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = runtime
        .block_on(write_images(
            Destination::Layout(dir.path()),
            &FixtureOptions::default(),
        ))
        .unwrap();
    let root = TrustRoot::from_json(&fixtures.trusted_root_json, "fixtures").unwrap();
    let alpha = runtime::Signer::Key(fixtures.public_keys["alpha"].clone());
    let keyless = runtime::Signer::Keyless(runtime::Identity {
        subject: Pattern::Exact(KEYLESS_SUBJECT.to_owned()),
        issuer: Pattern::Exact(ISSUER.to_owned()),
        claims: vec![(
            "githubWorkflowRepository".to_owned(),
            Pattern::Exact(KEYLESS_REPOSITORY.to_owned()),
        )],
    });
    let any: &[(String, String)] = &[];

    // What is measured verifies, and the shared capability's caches are warm.
    let warm = capability(dir.path(), &root);
    let signed = runtime
        .block_on(warm.signatures(SIGNED, &alpha, any))
        .unwrap();
    assert_eq!(signed.len(), 1);
    let by_identity = runtime
        .block_on(warm.signatures(KEYLESS, &keyless, any))
        .unwrap();
    assert_eq!(
        by_identity[0].signed_by.subject.as_deref(),
        Some(KEYLESS_SUBJECT)
    );
    let attested = runtime
        .block_on(warm.attestations(ATTESTED, &alpha, SLSA_PROVENANCE_V1))
        .unwrap();
    assert_eq!(attested.len(), 1);

    let mut group = quick(c, "image");
    // A fresh store and verifier per iteration, made outside the timing and dropped after it.
    group.bench_function("key first", |b| {
        b.iter_batched_ref(
            || capability(dir.path(), &root),
            |fresh| {
                runtime
                    .block_on(fresh.signatures(black_box(SIGNED), &alpha, any))
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("keyless first", |b| {
        b.iter_batched_ref(
            || capability(dir.path(), &root),
            |fresh| {
                runtime
                    .block_on(fresh.signatures(black_box(KEYLESS), &keyless, any))
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("cached", |b| {
        b.iter(|| {
            runtime
                .block_on(warm.signatures(black_box(SIGNED), &alpha, any))
                .unwrap()
        });
    });
    group.bench_function("attestations cached", |b| {
        b.iter(|| {
            runtime
                .block_on(warm.attestations(black_box(ATTESTED), &alpha, SLSA_PROVENANCE_V1))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bundles, images);
criterion_main!(benches);
