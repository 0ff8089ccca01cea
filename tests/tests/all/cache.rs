//! The compiled-module cache: the second load of the same policy is served from disk, and a
//! damaged entry is replaced rather than trusted.

use palisade_runtime::CacheStatus;
use palisade_runtime::admission::Prepared;
use palisade_runtime::{Engine, EngineConfig};

fn engine(dir: &std::path::Path) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(dir.to_owned()),
        ..EngineConfig::default()
    })
    .expect("engine")
}

#[test]
fn second_load_is_a_cache_hit_with_the_same_behaviour() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = e2e::read_artefact("hostile").expect("artefact");
    let first = Prepared::new(&engine(dir.path()), &bytes).expect("first load");
    assert_eq!(first.cache_status(), CacheStatus::Miss);
    // A new engine, as a new process would have.
    let second = Prepared::new(&engine(dir.path()), &bytes).expect("second load");
    assert_eq!(second.cache_status(), CacheStatus::Hit);
    assert_eq!(first.metadata(), second.metadata());
    assert_eq!(first.digest(), second.digest());
}

#[test]
fn damaged_entry_is_recompiled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = e2e::read_artefact("hostile").expect("artefact");
    Prepared::new(&engine(dir.path()), &bytes).expect("first load");
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::write(&entries[0], b"not a compiled module").expect("damage");
    let again = Prepared::new(&engine(dir.path()), &bytes).expect("load after damage");
    assert_eq!(again.cache_status(), CacheStatus::Miss);
    let third = Prepared::new(&engine(dir.path()), &bytes).expect("load after repair");
    assert_eq!(third.cache_status(), CacheStatus::Hit);
}
