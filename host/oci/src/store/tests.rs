use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::*;
use crate::{Format, Image, Registry, RegistryOptions, Variant};

fn policy() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "__guest_call") (result i32) i32.const 1))"#).unwrap()
}

fn filter() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "proxy_abi_version_0_2_1")))"#).unwrap()
}

/// A Kubewarden artefact told apart from the others by an annotation.
fn policy_image(label: &str) -> Image {
    Image::kubewarden(
        &policy(),
        BTreeMap::from([("label".to_owned(), label.to_owned())]),
    )
    .unwrap()
}

/// An architecture other than this machine's.
fn other_architecture() -> &'static str {
    if Platform::host().architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    }
}

/// An OCI image index with one entry per (platform, image).
fn index_of(entries: &[(Json, &Image)]) -> Vec<u8> {
    let manifests = entries
        .iter()
        .map(|(platform, image)| {
            json!({
                "mediaType": image.media_type(),
                "digest": image.digest(),
                "size": image.manifest().len(),
                "platform": platform,
            })
        })
        .collect::<Vec<_>>();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

fn host_platform_json() -> Json {
    let host = Platform::host();
    let mut platform = json!({"os": "linux", "architecture": host.architecture});
    if let Some(variant) = host.variant {
        platform["variant"] = json!(variant);
    }
    platform
}

/// What the test layout holds.
struct Fixture {
    dir: tempfile::TempDir,
    /// `v1`: a Kubewarden artefact.
    policy: Image,
    /// `127.0.0.1:5000/filters/guard:v2`: a compat filter image.
    filter: Image,
    /// `multi`: an index of `other` (another architecture) then `host` (this machine's).
    index: Vec<u8>,
    host: Image,
    /// `elsewhere`: an index with no entry for linux on this architecture.
    elsewhere: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_image("v1");
    let filter = Image::from_module(&filter(), Variant::Compat, &["guard".to_owned()]).unwrap();
    let host = policy_image("host");
    let other = policy_image("other");
    layout::write_dir(
        dir.path(),
        &[
            ("v1", &policy),
            ("127.0.0.1:5000/filters/guard:v2", &filter),
            ("host", &host),
            ("other", &other),
        ],
    )
    .unwrap();
    let index = index_of(&[
        (
            json!({"os": "linux", "architecture": other_architecture()}),
            &other,
        ),
        (host_platform_json(), &host),
    ]);
    let host_arch = Platform::host().architecture;
    let elsewhere = index_of(&[
        (
            json!({"os": "linux", "architecture": other_architecture()}),
            &other,
        ),
        (json!({"os": "windows", "architecture": host_arch}), &host),
    ]);
    add_index(dir.path(), "multi", &index);
    add_index(dir.path(), "elsewhere", &elsewhere);
    Fixture {
        dir,
        policy,
        filter,
        index,
        host,
        elsewhere,
    }
}

/// Writes `index` as a blob and lists it in `index.json` as `name`.
fn add_index(dir: &Path, name: &str, index: &[u8]) {
    let digest = digest_of(index);
    std::fs::write(dir.join(layout::blob_path(&digest).unwrap()), index).unwrap();
    let path = dir.join("index.json");
    let mut top: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": media_type::OCI_INDEX,
        "digest": digest,
        "size": index.len(),
        "annotations": {REF_NAME_ANNOTATION: name},
    }));
    std::fs::write(&path, serde_json::to_vec(&top).unwrap()).unwrap();
}

fn layout_store(dir: &Path) -> ImageStore {
    ImageStore::layout(dir, StoreOptions::default()).unwrap()
}

fn config_digest(image: &Image) -> String {
    image.parsed().config.digest.clone()
}

// --- layout backend -----------------------------------------------------------------------------

#[tokio::test]
async fn layout_serves_a_manifest_by_tag_full_reference_and_digest() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    for reference in [
        "v1",
        "registry.example/any/repo:v1",
        &format!("v1@{}", f.policy.digest()),
        &format!("anything@{}", f.policy.digest()),
        &f.policy.digest(),
    ] {
        let manifest = store.manifest(reference).await.unwrap();
        assert_eq!(manifest.bytes, f.policy.manifest(), "{reference}");
        assert_eq!(manifest.digest, f.policy.digest(), "{reference}");
        assert_eq!(manifest.media_type, media_type::OCI_MANIFEST, "{reference}");
    }
    // The annotation is a full reference.
    let found = store
        .manifest("127.0.0.1:5000/filters/guard:v2")
        .await
        .unwrap();
    assert_eq!(found.bytes, f.filter.manifest());
    let err = store.manifest("v1@sha256:abc").await.unwrap_err();
    assert!(matches!(err, StoreError::Digest { .. }), "{err:?}");
    // An index is served as it is.
    let index = store.manifest("multi").await.unwrap();
    assert_eq!(index.bytes, f.index);
    assert_eq!(index.media_type, media_type::OCI_INDEX);
    assert!(index.is_index());
}

#[tokio::test]
async fn layout_does_not_take_a_tag_from_another_full_reference() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    // `v2` is the tag of a full-reference entry of another repository: not a match.
    let err = store.manifest("example.com/other:v2").await.unwrap_err();
    assert!(matches!(err, StoreError::NotInLayout { .. }), "{err:?}");
}

#[tokio::test]
async fn layout_digest_resolves_a_tag_and_checks_a_pin() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    assert_eq!(store.digest("v1").await.unwrap(), f.policy.digest());
    assert_eq!(
        store
            .digest("127.0.0.1:5000/filters/guard:v2")
            .await
            .unwrap(),
        f.filter.digest()
    );
    assert_eq!(
        store.digest("multi").await.unwrap(),
        digest_of(&f.index),
        "an index's own digest, not its entry's"
    );
    let pinned = format!("x@{}", f.filter.digest());
    assert_eq!(store.digest(&pinned).await.unwrap(), f.filter.digest());
    let absent = format!("x@sha256:{}", "0".repeat(64));
    let err = store.digest(&absent).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingBlob { .. }), "{err:?}");
}

#[tokio::test]
async fn layout_blob_is_served_and_checked_against_its_digest() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    let config = store.blob("v1", &config_digest(&f.policy)).await.unwrap();
    assert_eq!(config, b"{}");
    let module = store.blob("v1", &digest_of(&policy())).await.unwrap();
    assert_eq!(module, policy());

    let err = store
        .blob("v1", "sha256:../../etc/passwd")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Digest { .. }), "{err:?}");
    let absent = format!("sha256:{}", "1".repeat(64));
    let err = store.blob("v1", &absent).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "blob {absent} of v1 is not in the layout {}",
            f.dir.path().display()
        )
    );
}

#[tokio::test]
async fn module_finds_a_kubewarden_or_istio_module_and_names_the_manifest_digest() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    let pulled = store.module("v1").await.unwrap();
    assert_eq!(pulled.digest, f.policy.digest());
    assert_eq!(pulled.extracted.format, Format::Kubewarden);
    assert_eq!(pulled.extracted.module, policy());
    // An index is resolved to this machine's entry first.
    let pulled = store.module("multi").await.unwrap();
    assert_eq!(pulled.digest, f.host.digest());
    // Istio's layouts are read too.
    let pulled = store
        .module("127.0.0.1:5000/filters/guard:v2")
        .await
        .unwrap();
    assert_eq!(pulled.extracted.format, Format::Compat);
    assert_eq!(pulled.extracted.module, filter());
}

#[tokio::test]
async fn layout_image_manifest_resolves_an_index_to_this_platform() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    // The host's entry is the second one: chosen by platform, not by position.
    let chosen = store.image_manifest("multi").await.unwrap();
    assert_eq!(chosen.bytes, f.host.manifest());
    assert_eq!(chosen.digest, f.host.digest());
    assert_eq!(chosen.media_type, media_type::OCI_MANIFEST);
    // An image manifest is its own answer.
    let plain = store.image_manifest("v1").await.unwrap();
    assert_eq!(plain.bytes, f.policy.manifest());
}

#[tokio::test]
async fn layout_image_manifest_names_the_platforms_when_none_fits() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    let err = store.image_manifest("elsewhere").await.unwrap_err();
    let host = Platform::host();
    assert_eq!(
        err.to_string(),
        format!(
            "no {host} entry in the index of elsewhere (it has linux/{}, windows/{})",
            other_architecture(),
            host.architecture
        )
    );
    assert!(
        !f.elsewhere.is_empty(),
        "the index is in the layout: {}",
        digest_of(&f.elsewhere)
    );
}

#[tokio::test]
async fn layout_refuses_bytes_that_do_not_match_their_digest() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    // Another manifest written under the policy manifest's name.
    let path = f
        .dir
        .path()
        .join(layout::blob_path(&f.policy.digest()).unwrap());
    std::fs::write(&path, f.filter.manifest()).unwrap();
    let err = store.manifest("v1").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest of v1 has digest {}, not the {} asked for",
            f.filter.digest(),
            f.policy.digest()
        )
    );
    let pinned = format!("v1@{}", f.policy.digest());
    let err = store.manifest(&pinned).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err:?}");
    let config = config_digest(&f.filter);
    std::fs::write(
        f.dir.path().join(layout::blob_path(&config).unwrap()),
        b"{\"tampered\":true}",
    )
    .unwrap();
    let err = store.blob("v1", &config).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DigestMismatch { expected, .. } if *expected == config),
        "{err:?}"
    );
}

#[tokio::test]
async fn layout_refuses_manifests_and_blobs_over_the_limits() {
    let f = fixture();
    let limits = StoreLimits {
        manifest_bytes: 10,
        blob_bytes: 1,
    };
    let store = ImageStore::layout(
        f.dir.path(),
        StoreOptions {
            limits,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let size = f.policy.manifest().len();
    let err = store
        .manifest(&format!("v1@{}", f.policy.digest()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest of v1@{} is {size} bytes, more than the 10-byte limit",
            f.policy.digest()
        )
    );
    let err = store
        .blob("v1", &config_digest(&f.policy))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "blob {} of v1 is 2 bytes, more than the 1-byte limit",
            config_digest(&f.policy)
        )
    );
    // By tag, the index entry's size is checked before the manifest is read (index.json itself
    // is read under the blob limit, here raised so that it fits).
    let store = ImageStore::layout(
        f.dir.path(),
        StoreOptions {
            limits: StoreLimits {
                manifest_bytes: 10,
                blob_bytes: 1 << 20,
            },
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let err = store.manifest("v1").await.unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { size: s, limit: 10, .. } if s == size as u64),
        "{err:?}"
    );
}

#[tokio::test]
async fn layout_names_what_it_has_for_an_unknown_reference() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    let err = store.manifest("v9").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "v9 is not in the layout {} (it has v1, 127.0.0.1:5000/filters/guard:v2, host, other, multi, elsewhere)",
            f.dir.path().display()
        )
    );
    let err = store.digest("v9").await.unwrap_err();
    assert!(matches!(err, StoreError::NotInLayout { .. }), "{err:?}");
}

#[test]
fn layout_store_needs_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageStore::layout(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Layout { .. }), "{err:?}");
}

// --- cache --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_cache_hit_does_not_read_the_layout_again() {
    let f = fixture();
    let store = layout_store(f.dir.path());
    let config = config_digest(&f.policy);
    let manifest = store.manifest("v1").await.unwrap();
    let chosen = store.image_manifest("multi").await.unwrap();
    let blob = store.blob("v1", &config).await.unwrap();
    let misses = store.fetches();
    assert_eq!(misses, 4, "v1, multi, multi's host entry, the config blob");

    // Gone from disk: only the cache can answer now.
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(store.manifest("v1").await.unwrap(), manifest);
    assert_eq!(store.digest("v1").await.unwrap(), manifest.digest);
    let pinned = format!("v1@{}", manifest.digest);
    assert_eq!(store.manifest(&pinned).await.unwrap(), manifest);
    assert_eq!(store.image_manifest("multi").await.unwrap(), chosen);
    assert_eq!(store.blob("v1", &config).await.unwrap(), blob);
    assert_eq!(store.fetches(), misses, "every answer came from the cache");
    let err = store.manifest("host").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Read { .. } | StoreError::MissingBlob { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn answers_by_tag_expire_after_the_ttl_and_answers_by_digest_do_not() {
    let f = fixture();
    let store = ImageStore::layout(
        f.dir.path(),
        StoreOptions {
            cache_ttl: Duration::from_millis(1),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let pinned = format!("v1@{}", f.policy.digest());
    store.manifest("v1").await.unwrap();
    store.manifest(&pinned).await.unwrap();
    let after_first = store.fetches();
    assert_eq!(
        after_first, 1,
        "the pinned manifest was cached by the tag's fetch"
    );
    // Sleeping past the TTL can only make the entry older: its expiry is certain, not timed.
    std::thread::sleep(Duration::from_millis(5));
    store.manifest("v1").await.unwrap();
    assert_eq!(store.fetches(), after_first + 1, "expired: fetched again");
    store.manifest(&pinned).await.unwrap();
    assert_eq!(store.fetches(), after_first + 1, "by digest: still cached");
}

#[tokio::test]
async fn a_zero_ttl_disables_the_cache_by_tag() {
    let f = fixture();
    let store = ImageStore::layout(
        f.dir.path(),
        StoreOptions {
            cache_ttl: Duration::ZERO,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.manifest("v1").await.unwrap();
    store.manifest("v1").await.unwrap();
    store.digest("v1").await.unwrap();
    assert_eq!(store.fetches(), 3);
}

#[test]
fn the_cache_drops_its_oldest_entries_past_its_byte_bound() {
    let cache = Cache::new(Duration::from_secs(60), 100);
    let key = |n: u8| Key::Content(format!("{n}"));
    cache.put(key(1), Value::Blob(vec![1; 40]), false);
    cache.put(key(2), Value::Blob(vec![2; 40]), false);
    cache.put(key(3), Value::Blob(vec![3; 40]), false);
    assert!(cache.get(&key(1)).is_none(), "oldest dropped");
    assert!(cache.get(&key(2)).is_some());
    assert!(cache.get(&key(3)).is_some());
    // Stored again, 2 is the newest: 3 goes first now.
    cache.put(key(2), Value::Blob(vec![2; 40]), false);
    cache.put(key(4), Value::Blob(vec![4; 40]), false);
    assert!(cache.get(&key(3)).is_none());
    assert!(cache.get(&key(2)).is_some());
    // Larger than the whole cache: never stored, nothing dropped for it.
    cache.put(key(5), Value::Blob(vec![5; 200]), false);
    assert!(cache.get(&key(5)).is_none());
    assert!(cache.get(&key(4)).is_some());
    let state = cache.lock();
    assert!(state.bytes <= 100);
    assert_eq!(state.entries.len(), 2);
}

#[test]
fn many_replacements_keep_the_order_queue_small() {
    let cache = Cache::new(Duration::from_secs(60), 1 << 20);
    for _ in 0..1000 {
        cache.put(
            Key::Digest("a".to_owned()),
            Value::Digest("d".to_owned()),
            true,
        );
    }
    assert!(cache.lock().order.len() <= 18);
}

#[test]
fn the_store_can_be_shared_between_tasks() {
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>(_: &T) {}
    shared::<ImageStore>();
    let f = fixture();
    let store = layout_store(f.dir.path());
    sent(&store.manifest("v1"));
    sent(&store.image_manifest("v1"));
    sent(&store.digest("v1"));
    sent(&store.blob("v1", "sha256:x"));
}

// --- platforms ----------------------------------------------------------------------------------

#[test]
fn this_machine_is_named_as_image_indexes_name_it() {
    let host = Platform::host();
    assert_eq!(host.os, "linux");
    let expected = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    if matches!(std::env::consts::ARCH, "x86_64" | "aarch64") {
        assert_eq!(host.architecture, expected);
    }
    assert_ne!(host.architecture, "x86_64");
    assert_ne!(host.architecture, "aarch64");
}

fn entry(digest: &str, platform: &Json) -> IndexEntry {
    serde_json::from_value(json!({"digest": digest, "size": 1, "platform": platform})).unwrap()
}

#[test]
fn an_entry_with_the_same_variant_is_preferred_to_one_without() {
    let arm64 = Platform {
        os: "linux".to_owned(),
        architecture: "arm64".to_owned(),
        variant: Some("v8".to_owned()),
    };
    let entries = [
        entry("a", &json!({"os": "linux", "architecture": "amd64"})),
        entry("b", &json!({"os": "linux", "architecture": "arm64"})),
        entry(
            "c",
            &json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ),
    ];
    assert_eq!(arm64.select(&entries).unwrap().digest, "c");
    assert_eq!(
        arm64.select(&entries[..2]).unwrap().digest,
        "b",
        "no variant fits"
    );
    let v9 = [entry(
        "d",
        &json!({"os": "linux", "architecture": "arm64", "variant": "v9"}),
    )];
    assert!(arm64.select(&v9).is_none(), "another variant does not");
    let amd64 = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: None,
    };
    let v3 = [entry(
        "e",
        &json!({"os": "linux", "architecture": "amd64", "variant": "v3"}),
    )];
    assert_eq!(amd64.select(&v3).unwrap().digest, "e", "no variant wanted");
    assert_eq!(arm64.to_string(), "linux/arm64/v8");
}

// --- Docker config ------------------------------------------------------------------------------

fn credentials(json: &str) -> Result<BTreeMap<String, Credentials>, StoreError> {
    docker_credentials(Path::new("/home/u/.docker/config.json"), json.as_bytes())
}

#[test]
fn docker_config_gives_credentials_from_auth_or_username_and_password() {
    // base64("alice:s3cr:et") and base64("bob:pw")
    let found = credentials(
        r#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
                "127.0.0.1:5000": {"username": "carol", "password": "pw2"},
                "https://ghcr.io": {"auth": "Ym9iOnB3"},
                "quay.io": {},
                "registry.example": {"auth": ""}
            },
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud"}
        }"#,
    )
    .unwrap();
    let pairs = found
        .iter()
        .map(|(host, c)| (host.as_str(), c.username.as_str(), c.password.as_str()))
        .collect::<Vec<_>>();
    assert_eq!(
        pairs,
        [
            ("127.0.0.1:5000", "carol", "pw2"),
            ("docker.io", "alice", "s3cr:et"),
            ("ghcr.io", "bob", "pw"),
        ]
    );
}

#[test]
fn docker_hub_credentials_apply_to_short_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"auths": {"https://index.docker.io/v1/": {"auth": "YWxpY2U6cHc="}}}"#,
    )
    .unwrap();
    let store = ImageStore::registry(StoreOptions {
        docker_config: Some(path),
        ..StoreOptions::default()
    })
    .unwrap();
    let Source::Registry(registry) = &store.source else {
        panic!("a registry store");
    };
    for reference in [
        "nginx:1",
        "docker.io/library/nginx",
        "index.docker.io/x/y:2",
    ] {
        let parsed: Reference = reference.parse().unwrap();
        assert!(
            matches!(registry.auth(&parsed), RegistryAuth::Basic(u, p) if u == "alice" && p == "pw"),
            "{reference}"
        );
    }
    let elsewhere: Reference = "ghcr.io/x/y:1".parse().unwrap();
    assert!(matches!(registry.auth(&elsewhere), RegistryAuth::Anonymous));
}

#[test]
fn a_bare_host_key_wins_over_its_url_form() {
    let found = credentials(
        r#"{"auths": {
            "docker.io": {"username": "bare", "password": "1"},
            "https://index.docker.io/v1/": {"username": "url", "password": "2"}
        }}"#,
    )
    .unwrap();
    assert_eq!(found["docker.io"].username, "bare");
}

#[test]
fn docker_config_errors_name_the_file_and_the_registry() {
    let err = credentials(r#"{"auths": {"ghcr.io": {"auth": "not base64!"}}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "auths.\"ghcr.io\".auth in /home/u/.docker/config.json is not base64 of user:password"
    );
    // base64("nocolon")
    let err = credentials(r#"{"auths": {"ghcr.io": {"auth": "bm9jb2xvbg=="}}}"#).unwrap_err();
    assert!(matches!(err, StoreError::DockerAuth { .. }), "{err:?}");
    let err = credentials(r#"{"auths": ["ghcr.io"]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/home/u/.docker/config.json is not a Docker config file"
    );
    assert!(credentials("{}").unwrap().is_empty());
    let err = ImageStore::registry(StoreOptions {
        docker_config: Some(PathBuf::from("/nonexistent/config.json")),
        ..StoreOptions::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading the Docker config /nonexistent/config.json"
    );
}

#[test]
fn registry_references_are_checked_before_any_request() {
    let store = ImageStore::registry(StoreOptions::default()).unwrap();
    let sha512 = format!("ghcr.io/x/y@sha512:{}", "a".repeat(128));
    let target = store.target(&sha512).unwrap_err();
    assert_eq!(
        target.to_string(),
        format!("unusable digest in the request for {sha512}")
    );
    let target = store.target("Not A Reference").unwrap_err();
    assert!(matches!(target, StoreError::Reference { .. }), "{target:?}");
    let target = store.target("nginx").unwrap();
    assert_eq!(target.name, "docker.io/library/nginx:latest");
    assert_eq!(target.scope, "docker.io/library/nginx");
}

// --- a real registry ----------------------------------------------------------------------------

#[tokio::test]
async fn serves_a_registry_image_and_answers_from_the_cache_once_the_registry_is_gone() {
    let mut registry = match e2e::registry::LocalRegistry::start() {
        Ok(registry) => registry,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let repo = format!("{}/palisade/policy", registry.address);
    let pusher = Registry::new(RegistryOptions {
        plain_http: true,
        credentials: None,
    })
    .unwrap();
    let image = policy_image("v1");
    let host = policy_image("host");
    let other = policy_image("other");
    let v1 = format!("{repo}:v1");
    assert_eq!(
        pusher.push(&image, &v1).await.unwrap().digest,
        image.digest()
    );
    pusher.push(&host, &format!("{repo}:host")).await.unwrap();
    pusher.push(&other, &format!("{repo}:other")).await.unwrap();
    // An index of the two, pushed as is (Registry pushes image manifests only).
    let index = index_of(&[
        (
            json!({"os": "linux", "architecture": other_architecture()}),
            &other,
        ),
        (host_platform_json(), &host),
    ]);
    let multi = format!("{repo}:multi");
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    client
        .push_manifest_raw(
            &multi.parse().unwrap(),
            index.clone(),
            http::HeaderValue::from_static(media_type::OCI_INDEX),
        )
        .await
        .unwrap();

    // Kubewarden's pull path finds the module; the blob is checked against its digest.
    let pulled = pusher.pull(&v1).await.unwrap();
    assert_eq!(pulled.extracted.format, Format::Kubewarden);
    assert_eq!(pulled.extracted.module, policy());

    let store = ImageStore::registry(StoreOptions {
        insecure_registries: vec![registry.address.clone()],
        ..StoreOptions::default()
    })
    .unwrap();
    let config = config_digest(&image);
    let layer = digest_of(&policy());
    let manifest = store.manifest(&v1).await.unwrap();
    assert_eq!(manifest.bytes, image.manifest());
    assert_eq!(manifest.digest, image.digest());
    assert_eq!(manifest.media_type, media_type::OCI_MANIFEST);
    assert_eq!(store.digest(&v1).await.unwrap(), image.digest());
    assert_eq!(store.blob(&v1, &config).await.unwrap(), b"{}");
    assert_eq!(store.blob(&v1, &layer).await.unwrap(), policy());
    let top = store.manifest(&multi).await.unwrap();
    assert_eq!(
        (top.bytes.as_slice(), top.is_index()),
        (index.as_slice(), true)
    );
    let chosen = store.image_manifest(&multi).await.unwrap();
    assert_eq!(chosen.bytes, host.manifest());
    let digest_of_multi = store.digest(&format!("{repo}:multi")).await.unwrap();
    assert_eq!(digest_of_multi, digest_of(&index));
    let pinned = format!("{repo}@{}", image.digest());
    assert_eq!(store.manifest(&pinned).await.unwrap(), manifest);
    // An unknown tag: the error names the reference and the step.
    let err = store
        .manifest(&format!("{repo}:missing"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("pulling the manifest of {repo}:missing")
    );

    // Limits: the layer's Content-Length is refused before its body is read.
    let small = ImageStore::registry(StoreOptions {
        insecure_registries: vec![registry.address.clone()],
        limits: StoreLimits {
            manifest_bytes: 10,
            blob_bytes: 8,
        },
        ..StoreOptions::default()
    })
    .unwrap();
    let err = small.blob(&v1, &layer).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "blob {layer} of {v1} is {} bytes, more than the 8-byte limit",
            policy().len()
        )
    );
    let err = small.manifest(&v1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest of {v1} is {} bytes, more than the 10-byte limit",
            image.manifest().len()
        )
    );

    // The registry is gone: every answer above comes from the cache, without a request.
    let misses = store.fetches();
    registry.stop();
    assert!(!registry.answers(), "the registry is stopped");
    assert_eq!(store.manifest(&v1).await.unwrap(), manifest);
    assert_eq!(store.digest(&v1).await.unwrap(), image.digest());
    assert_eq!(store.blob(&v1, &config).await.unwrap(), b"{}");
    assert_eq!(store.blob(&v1, &layer).await.unwrap(), policy());
    assert_eq!(store.image_manifest(&multi).await.unwrap(), chosen);
    assert_eq!(store.manifest(&pinned).await.unwrap(), manifest);
    assert_eq!(store.fetches(), misses);
    // And what was never asked for fails, naming the step.
    let err = store.digest(&format!("{repo}:other")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("resolving the digest of {repo}:other")
    );
}
