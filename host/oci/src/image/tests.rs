use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use serde_json::{Value, json};

use super::*;
use crate::extract::Format;
use crate::layout;

fn module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_context_create") (param i32 i32)))"#,
    )
    .unwrap()
}

fn other_module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "proxy_abi_version_0_2_0")))"#).unwrap()
}

fn roots() -> Vec<String> {
    vec!["palisade".to_owned()]
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The tar entries as (path, header, content).
fn untar(bytes: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let header = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (path, header, content)
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap()
}

fn descriptor_json(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest_of(bytes), "size": bytes.len()})
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn the_same_module_always_gives_the_same_manifest_digest() {
    for variant in Variant::ALL {
        let a = Image::from_module(&module(), variant, &roots()).unwrap();
        let b = Image::from_module(&module(), variant, &roots()).unwrap();
        assert_eq!(a.manifest(), b.manifest(), "{variant}");
        assert_eq!(a.digest(), b.digest(), "{variant}");
        assert_eq!(a.digest(), digest_of(a.manifest()));
        let other = Image::from_module(&other_module(), variant, &roots()).unwrap();
        assert_ne!(a.digest(), other.digest(), "{variant}: another module");
    }
    let compat = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let wasm = Image::from_module(&module(), Variant::Wasm, &roots()).unwrap();
    assert_ne!(compat.digest(), wasm.digest());
}

#[test]
fn compat_layer_has_no_time_owner_or_name_in_it() {
    let image = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let layer = image.blob(&image.parsed().layers[0].digest).unwrap();
    // RFC 1952 2.3: magic, CM=8, FLG (no FNAME/FCOMMENT), MTIME=0, XFL, OS=255 (unknown).
    assert_eq!(
        &layer[..4],
        &[0x1f, 0x8b, 8, 0],
        "gzip magic, deflate, no flags"
    );
    assert_eq!(&layer[4..8], &[0, 0, 0, 0], "gzip mtime");
    assert_eq!(layer[9], 255, "gzip OS byte");
    let entries = untar(&gunzip(layer));
    assert_eq!(entries.len(), 1);
    let (path, header, content) = &entries[0];
    assert_eq!(path, "plugin.wasm");
    assert_eq!(content, &module(), "plugin.wasm round-trips");
    assert_eq!(header.mtime().unwrap(), 0);
    assert_eq!(header.uid().unwrap(), 0);
    assert_eq!(header.gid().unwrap(), 0);
    assert_eq!(header.mode().unwrap(), 0o644);
    assert_eq!(header.username().unwrap(), Some(""));
    assert_eq!(header.entry_type(), tar::EntryType::Regular);
}

#[test]
fn compat_manifest_has_the_oci_config_one_gzip_layer_and_the_variant_annotation() {
    let image = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let manifest = json_of(image.manifest());
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let config = image.blob(config_digest).unwrap();
    let layer = image.blob(layer_digest).unwrap();
    assert_eq!(
        manifest,
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor_json("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor_json("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
            "annotations": {"module.wasm.image/variant": "compat"},
        })
    );
    // image-spec config.md: rootfs.diff_ids are the digests of the uncompressed layers.
    assert_eq!(
        json_of(config),
        json!({
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(&gunzip(layer))]},
        })
    );
    assert_eq!(image.media_type(), media_type::OCI_MANIFEST);
}

#[test]
fn wasm_manifest_has_the_runtime_config_and_the_raw_module_as_its_two_layers() {
    let image = Image::from_module(&module(), Variant::Wasm, &roots()).unwrap();
    let manifest = json_of(image.manifest());
    let config = image
        .blob(manifest["config"]["digest"].as_str().unwrap())
        .unwrap();
    let mut runtime_layer = descriptor_json("application/vnd.module.wasm.config.v1+json", config);
    runtime_layer["annotations"] = json!({"org.opencontainers.image.title": "runtime-config.json"});
    let mut content_layer = descriptor_json(
        "application/vnd.module.wasm.content.layer.v1+wasm",
        &module(),
    );
    content_layer["annotations"] = json!({"org.opencontainers.image.title": "plugin.wasm"});
    assert_eq!(
        manifest,
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor_json("application/vnd.module.wasm.config.v1+json", config),
            "layers": [runtime_layer, content_layer],
        })
    );
    assert_eq!(
        json_of(config),
        json!({"type": "envoy_proxy", "abi_version": "v0.2.1", "config": {"root_ids": ["palisade"]}})
    );
    assert_eq!(image.blob(&digest_of(&module())).unwrap(), module());
}

#[test]
fn refuses_to_package_a_module_without_the_proxy_wasm_abi() {
    let plain = wat::parse_str("(module)").unwrap();
    let err = Image::from_module(&plain, Variant::Compat, &[]).unwrap_err();
    assert!(
        matches!(err, ImageError::Module(crate::ModuleError::NoAbiExport)),
        "{err:?}"
    );
}

#[test]
fn from_parts_refuses_a_missing_or_resized_blob() {
    let image = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let err = Image::from_parts(image.manifest().to_vec(), Vec::new()).unwrap_err();
    assert!(matches!(err, ImageError::MissingBlob { .. }), "{err:?}");
    let mut manifest = json_of(image.manifest());
    manifest["layers"][0]["size"] = json!(1);
    let blobs = image.blobs().map(|(_, b)| b.to_vec()).collect::<Vec<_>>();
    let err = Image::from_parts(serde_json::to_vec(&manifest).unwrap(), blobs).unwrap_err();
    assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err:?}");
}

#[test]
fn variant_names_parse_back() {
    for variant in Variant::ALL {
        assert_eq!(variant.name().parse::<Variant>().unwrap(), variant);
    }
    assert!("oci".parse::<Variant>().is_err());
}

// --- layouts ------------------------------------------------------------------------------------

fn both() -> Vec<(&'static str, Image)> {
    Variant::ALL
        .into_iter()
        .map(|v| {
            (
                v.name(),
                Image::from_module(&module(), v, &roots()).unwrap(),
            )
        })
        .collect()
}

fn named<'a>(images: &'a [(&'static str, Image)]) -> Vec<(&'static str, &'a Image)> {
    images.iter().map(|(n, i)| (*n, i)).collect()
}

#[test]
fn layout_index_points_to_manifests_whose_blobs_are_all_there() {
    let dir = tempfile::tempdir().unwrap();
    let images = both();
    layout::write_dir(dir.path(), &named(&images)).unwrap();

    let marker = json_of(&std::fs::read(dir.path().join("oci-layout")).unwrap());
    assert_eq!(marker, json!({"imageLayoutVersion": "1.0.0"}));
    let index = json_of(&std::fs::read(dir.path().join("index.json")).unwrap());
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);

    // Every file under blobs/sha256 hashes to its name.
    let blob_dir = dir.path().join("blobs/sha256");
    let mut on_disk = BTreeMap::new();
    for file in std::fs::read_dir(&blob_dir).unwrap() {
        let file = file.unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let name = file.file_name().to_string_lossy().into_owned();
        assert_eq!(crate::sha256_hex(&bytes), name, "blob named by its digest");
        on_disk.insert(format!("sha256:{name}"), bytes);
    }

    // index -> manifest -> config and layers: media types, sizes and digests agree.
    for ((name, image), entry) in images.iter().zip(entries) {
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            *name
        );
        assert_eq!(
            entry["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(entry["digest"], image.digest());
        let manifest_bytes = &on_disk[entry["digest"].as_str().unwrap()];
        assert_eq!(entry["size"], manifest_bytes.len());
        assert_eq!(manifest_bytes, image.manifest());
        let manifest = json_of(manifest_bytes);
        let descriptors = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().unwrap())
            .collect::<Vec<_>>();
        for desc in descriptors {
            let blob = &on_disk[desc["digest"].as_str().unwrap()];
            assert_eq!(
                desc["size"],
                blob.len(),
                "{name}: size of {}",
                desc["digest"]
            );
        }
    }
    // Two manifests, compat config + layer, wasm runtime config + module; nothing else.
    assert_eq!(on_disk.len(), 2 + 2 + 2);

    let read = layout::read_dir(dir.path()).unwrap();
    assert_eq!(read.len(), 2);
    for (entry, (name, image)) in read.iter().zip(&images) {
        assert_eq!(entry.name.as_deref(), Some(*name));
        assert_eq!(entry.image.digest(), image.digest());
        assert_eq!(entry.image.module().unwrap().module, module());
    }
}

#[test]
fn layout_tar_is_reproducible_and_reads_back() {
    let images = both();
    let tar = layout::to_tar(&named(&images)).unwrap();
    assert_eq!(tar, layout::to_tar(&named(&images)).unwrap());
    let entries = untar(&tar);
    let paths = entries
        .iter()
        .map(|(p, _, _)| p.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        &paths[..4],
        &["blobs/", "blobs/sha256/", "oci-layout", "index.json"]
    );
    for (path, header, _) in &entries {
        assert_eq!(header.mtime().unwrap(), 0, "{path}");
        assert_eq!(header.uid().unwrap(), 0, "{path}");
    }
    let read = layout::read_tar(&tar).unwrap();
    let digests = read.iter().map(|e| e.image.digest()).collect::<Vec<_>>();
    let expected = images.iter().map(|(_, i)| i.digest()).collect::<Vec<_>>();
    assert_eq!(digests, expected);

    // The compat layer inside the tar still holds plugin.wasm, byte for byte.
    let compat = &read[0].image;
    let layer = compat.blob(&compat.parsed().layers[0].digest).unwrap();
    let files = untar(&gunzip(layer));
    assert_eq!(files[0].0, "plugin.wasm");
    assert_eq!(files[0].2, module());
}

#[test]
fn reading_a_layout_refuses_a_corrupt_blob() {
    let dir = tempfile::tempdir().unwrap();
    let images = both();
    layout::write_dir(dir.path(), &named(&images)).unwrap();
    let module_blob = dir
        .path()
        .join("blobs/sha256")
        .join(crate::sha256_hex(&module()));
    std::fs::write(&module_blob, b"\0asm tampered").unwrap();
    let err = layout::read_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, layout::LayoutError::Corrupt { .. }),
        "{err:?}"
    );
}

#[test]
fn reading_a_layout_never_follows_a_digest_out_of_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("layout");
    layout::write_dir(&layout_dir, &named(&both())).unwrap();
    // A manifest "blob" two levels above blobs/sha256, outside the layout.
    let outside = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    std::fs::write(dir.path().join("outside"), outside).unwrap();
    let index_path = layout_dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["digest"] = json!("sha256:../../../outside");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let err = layout::read_dir(&layout_dir).unwrap_err();
    assert!(
        matches!(&err, layout::LayoutError::Digest { digest } if digest == "sha256:../../../outside"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "digest \"sha256:../../../outside\" is not sha256: followed by 64 lower-case hex digits"
    );
}

// --- Istio's three layouts ----------------------------------------------------------------------

/// A Docker image as `docker build` of `FROM scratch` + `COPY plugin.wasm ./` would push it,
/// with an earlier unrelated layer so that "last layer" matters.
fn docker_image(last_layer_media_type: &str) -> Image {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let first = gzip(&tar_of(&[("etc/motd", b"hello")]));
    let last = gzip(&tar_of(&[
        ("./runtime-config.json", b"{}"),
        ("./plugin.wasm", &module()),
    ]));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor_json("application/vnd.docker.container.image.v1+json", config),
        "layers": [
            descriptor_json("application/vnd.docker.image.rootfs.diff.tar.gzip", &first),
            descriptor_json(last_layer_media_type, &last),
        ],
    });
    Image::from_parts(
        serde_json::to_vec(&manifest).unwrap(),
        [config.to_vec(), first, last],
    )
    .unwrap()
}

#[test]
fn finds_the_module_in_a_docker_image_last_layer() {
    let found = docker_image(media_type::DOCKER_LAYER_GZIP)
        .module()
        .unwrap();
    assert_eq!(found.format, Format::Docker);
    assert_eq!(found.module, module());
}

#[test]
fn reads_a_docker_manifest_only_as_docker() {
    // An OCI layer type under a Docker manifest: Istio does not fall back to compat.
    let err = docker_image(media_type::OCI_LAYER_GZIP)
        .module()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::LayerMediaType {
                format: Format::Docker,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn finds_the_module_in_the_compat_variant() {
    let image = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let found = image.module().unwrap();
    assert_eq!(found.format, Format::Compat);
    assert_eq!(found.layer_digest, image.parsed().layers[0].digest);
    assert_eq!(found.module, module());
}

#[test]
fn finds_the_module_in_the_wasm_variant() {
    let image = Image::from_module(&module(), Variant::Wasm, &roots()).unwrap();
    let found = image.module().unwrap();
    assert_eq!(found.format, Format::Wasm);
    assert_eq!(found.layer_digest, digest_of(&module()));
    assert_eq!(found.module, module());
}

#[test]
fn falls_back_to_the_wasm_variant_when_the_compat_layer_has_no_plugin() {
    // Two layers: the raw module first, then a tar.gz without plugin.wasm as the last layer.
    let config = b"{}".to_vec();
    let other = gzip(&tar_of(&[("README", b"no module here")]));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor_json(media_type::WASM_CONFIG, &config),
        "layers": [
            descriptor_json(media_type::WASM_CONTENT, &module()),
            descriptor_json(media_type::OCI_LAYER_GZIP, &other),
        ],
    });
    let image = Image::from_parts(
        serde_json::to_vec(&manifest).unwrap(),
        [config, module(), other],
    )
    .unwrap();
    let found = image.module().unwrap();
    assert_eq!(found.format, Format::Wasm);
    assert_eq!(found.module, module());
}

#[test]
fn names_both_reasons_when_no_layout_fits() {
    let config = b"{}".to_vec();
    let layer = b"not a module".to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor_json(media_type::OCI_CONFIG, &config),
        "layers": [descriptor_json("application/octet-stream", &layer)],
    });
    let image = Image::from_parts(serde_json::to_vec(&manifest).unwrap(), [config, layer]).unwrap();
    let err = image.module().unwrap_err();
    let ExtractError::NoLayout { compat, wasm } = &err else {
        panic!("expected NoLayout, got {err:?}");
    };
    assert!(
        matches!(**compat, ExtractError::LayerMediaType { .. }),
        "{compat}"
    );
    assert!(matches!(**wasm, ExtractError::LayerCount(1)), "{wasm}");
    let text = err.to_string();
    assert!(
        text.contains("compat: ") && text.contains("wasm: "),
        "{text}"
    );
}

#[test]
fn refuses_a_wasm_layer_that_is_not_wasm() {
    let config = b"{}".to_vec();
    let content = b"#!/bin/sh".to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor_json(media_type::WASM_CONFIG, &config),
        "layers": [
            descriptor_json(media_type::WASM_CONFIG, &config),
            descriptor_json(media_type::WASM_CONTENT, &content),
        ],
    });
    let image =
        Image::from_parts(serde_json::to_vec(&manifest).unwrap(), [config, content]).unwrap();
    let err = image.module().unwrap_err();
    let ExtractError::NoLayout { wasm, .. } = &err else {
        panic!("expected NoLayout, got {err:?}");
    };
    assert!(
        matches!(**wasm, ExtractError::NotWasm(Format::Wasm)),
        "{wasm}"
    );
}

// --- Kubewarden policy artefacts ----------------------------------------------------------------

/// A Kubewarden policy need not be a proxy-wasm module: any core module will do.
fn policy() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "__guest_call") (result i32) i32.const 1))"#).unwrap()
}

fn policy_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "io.kubewarden.policy.title".to_owned(),
            "pod-security".to_owned(),
        ),
        (
            "io.kubewarden.policy.source".to_owned(),
            "https://github.com/example/pod-security".to_owned(),
        ),
    ])
}

#[test]
fn kubewarden_manifest_has_the_empty_config_the_module_layer_and_the_annotations() {
    let image = Image::kubewarden(&policy(), policy_annotations()).unwrap();
    assert_eq!(
        json_of(image.manifest()),
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.wasm.config.v1+json",
                "digest": digest_of(b"{}"),
                "size": 2,
            },
            "layers": [{
                "mediaType": "application/vnd.wasm.content.layer.v1+wasm",
                "digest": digest_of(&policy()),
                "size": policy().len(),
            }],
            "annotations": {
                "io.kubewarden.policy.title": "pod-security",
                "io.kubewarden.policy.source": "https://github.com/example/pod-security",
                // kwctl's rule: the policy's source is also the image's.
                "org.opencontainers.image.source": "https://github.com/example/pod-security",
            },
        })
    );
    assert_eq!(image.blob(&digest_of(b"{}")).unwrap(), b"{}");
    assert_eq!(image.blob(&digest_of(&policy())).unwrap(), policy());
    assert_eq!(image.media_type(), media_type::OCI_MANIFEST);
}

#[test]
fn kubewarden_manifest_digest_depends_only_on_the_module_and_annotations() {
    let a = Image::kubewarden(&policy(), policy_annotations()).unwrap();
    let b = Image::kubewarden(&policy(), policy_annotations()).unwrap();
    assert_eq!(a.manifest(), b.manifest());
    assert_eq!(a.digest(), digest_of(a.manifest()));
    let other_module = Image::kubewarden(&module(), policy_annotations()).unwrap();
    assert_ne!(a.digest(), other_module.digest());
    let no_annotations = Image::kubewarden(&policy(), BTreeMap::new()).unwrap();
    assert_ne!(a.digest(), no_annotations.digest());
    assert!(
        json_of(no_annotations.manifest())
            .get("annotations")
            .is_none()
    );
}

#[test]
fn kubewarden_keeps_an_image_source_the_caller_gave() {
    let mut annotations = policy_annotations();
    annotations.insert(
        "org.opencontainers.image.source".to_owned(),
        "https://example.com/mirror".to_owned(),
    );
    let image = Image::kubewarden(&policy(), annotations).unwrap();
    assert_eq!(
        json_of(image.manifest())["annotations"]["org.opencontainers.image.source"],
        "https://example.com/mirror"
    );
}

#[test]
fn kubewarden_refuses_bytes_without_the_wasm_magic() {
    let err = Image::kubewarden(b"#!/bin/sh\n", BTreeMap::new()).unwrap_err();
    assert!(
        matches!(err, ImageError::Module(crate::ModuleError::NotWasm)),
        "{err:?}"
    );
}

#[test]
fn finds_the_module_in_a_kubewarden_artefact() {
    let image = Image::kubewarden(&policy(), policy_annotations()).unwrap();
    let found = image.module().unwrap();
    assert_eq!(found.format, Format::Kubewarden);
    assert_eq!(found.format.to_string(), "kubewarden");
    assert_eq!(found.layer_digest, digest_of(&policy()));
    assert_eq!(found.module, policy());
}

#[test]
fn kubewarden_artefact_round_trips_through_a_layout_dir_and_a_tar() {
    let image = Image::kubewarden(&policy(), policy_annotations()).unwrap();
    let compat = Image::from_module(&module(), Variant::Compat, &roots()).unwrap();
    let images = [("policy", &image), ("filter", &compat)];
    let dir = tempfile::tempdir().unwrap();
    layout::write_dir(dir.path(), &images).unwrap();
    let tar = layout::to_tar(&images).unwrap();
    for read in [
        layout::read_dir(dir.path()).unwrap(),
        layout::read_tar(&tar).unwrap(),
    ] {
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].name.as_deref(), Some("policy"));
        assert_eq!(read[0].image.manifest(), image.manifest());
        let found = read[0].image.module().unwrap();
        assert_eq!((found.format, found.module), (Format::Kubewarden, policy()));
        let found = read[1].image.module().unwrap();
        assert_eq!((found.format, found.module), (Format::Compat, module()));
    }
}

/// A manifest with the given config media type and layers (media type, bytes), its blobs present.
fn image_with(config_type: &str, layers: &[(&str, Vec<u8>)]) -> Image {
    let config = b"{}".to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor_json(config_type, &config),
        "layers": layers.iter().map(|(t, b)| descriptor_json(t, b)).collect::<Vec<_>>(),
    });
    let blobs = std::iter::once(config).chain(layers.iter().map(|(_, b)| b.clone()));
    Image::from_parts(serde_json::to_vec(&manifest).unwrap(), blobs).unwrap()
}

#[test]
fn a_single_kubewarden_layer_makes_a_kubewarden_artefact_whatever_the_config() {
    let image = image_with(
        media_type::OCI_CONFIG,
        &[(media_type::KUBEWARDEN_LAYER, policy())],
    );
    let found = image.module().unwrap();
    assert_eq!((found.format, found.module), (Format::Kubewarden, policy()));
}

#[test]
fn refuses_a_kubewarden_artefact_with_a_layer_of_another_type() {
    let layer = gzip(&tar_of(&[("plugin.wasm", &policy())]));
    // The Kubewarden config, but a compat layer: read as Kubewarden only, and refused.
    let image = image_with(
        media_type::KUBEWARDEN_CONFIG,
        &[(media_type::OCI_LAYER_GZIP, layer)],
    );
    let err = image.module().unwrap_err();
    assert!(
        matches!(&err, ExtractError::KubewardenLayer { index: 0, found } if found == media_type::OCI_LAYER_GZIP),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "kubewarden: layer 0 has media type application/vnd.oci.image.layer.v1.tar+gzip, \
         expected application/vnd.wasm.content.layer.v1+wasm"
    );
    // A second layer of another type is refused too, as policy-fetcher's pull refuses it.
    let image = image_with(
        media_type::KUBEWARDEN_CONFIG,
        &[
            (media_type::KUBEWARDEN_LAYER, policy()),
            ("application/octet-stream", b"x".to_vec()),
        ],
    );
    let err = image.module().unwrap_err();
    assert!(
        matches!(err, ExtractError::KubewardenLayer { index: 1, .. }),
        "{err:?}"
    );
    // No layers at all.
    let err = image_with(media_type::KUBEWARDEN_CONFIG, &[])
        .module()
        .unwrap_err();
    assert!(matches!(err, ExtractError::NoLayers), "{err:?}");
}

#[test]
fn refuses_a_kubewarden_layer_that_is_not_wasm() {
    let image = image_with(
        media_type::KUBEWARDEN_CONFIG,
        &[(media_type::KUBEWARDEN_LAYER, b"#!/bin/sh".to_vec())],
    );
    let err = image.module().unwrap_err();
    assert!(
        matches!(err, ExtractError::NotWasm(Format::Kubewarden)),
        "{err:?}"
    );
}
