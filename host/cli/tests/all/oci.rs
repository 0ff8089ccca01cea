//! `palisade package` and `palisade push` as a user runs them: the layout and digests `package`
//! prints, then a round trip through a real registry (Debian's `docker-registry`, started here
//! on 127.0.0.1 with a temp storage dir; skipped, and said so in `make test`'s summary, where it is missing).

use std::io::Write as _;
use std::path::Path;

use assert_cmd::Command;
use palisade_oci::{Format, Image, Registry, RegistryOptions, layout};
use serde_json::{Value, json};

fn module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_context_create") (param i32 i32)))"#,
    )
    .expect("wat")
}

fn palisade(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let output = Command::cargo_bin("palisade")
        .expect("binary")
        .current_dir(dir)
        .env_remove("PALISADE_LOG")
        .env_remove("PALISADE_REGISTRY_USERNAME")
        .env_remove("PALISADE_REGISTRY_PASSWORD")
        .args(args)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let parsed = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
    };
    (output.status.code().unwrap_or(-1), parsed, stderr)
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let (code, out, err) = palisade(dir, args);
    assert_eq!(code, 0, "palisade {args:?} failed: {err}");
    out
}

/// A temp dir with `filter.wasm` in it.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("filter.wasm"), module()).expect("write module");
    dir
}

#[test]
fn package_prints_the_digests_of_the_layout_and_tar_it_writes() {
    let dir = workspace();
    let report = ok(
        dir.path(),
        &[
            "package",
            "filter.wasm",
            "--output",
            "layout",
            "--tar",
            "layout.tar",
            "--root-id",
            "guard",
        ],
    );
    let module = module();
    assert_eq!(
        report["module"],
        json!({
            "path": "filter.wasm",
            "sha256": palisade_oci::sha256_hex(&module),
            "size": module.len(),
            "abi_version": "v0.2.1",
        })
    );

    let from_dir = layout::read_dir(&dir.path().join("layout")).expect("layout reads back");
    let tar = std::fs::read(dir.path().join("layout.tar")).expect("tar written");
    let from_tar = layout::read_tar(&tar).expect("tar reads back");
    assert_eq!(from_dir.len(), 2);
    for (entry, tar_entry) in from_dir.iter().zip(&from_tar) {
        let name = entry.name.as_deref().expect("named entry");
        let printed = &report["variants"][name];
        let image = &entry.image;
        assert_eq!(printed["digest"], image.digest(), "{name}");
        assert_eq!(
            printed["sha256"],
            image.digest().trim_start_matches("sha256:")
        );
        assert_eq!(printed["manifest_size"], image.manifest().len());
        assert_eq!(printed["media_type"], image.media_type());
        let layers = image
            .parsed()
            .layers
            .iter()
            .map(|l| json!({"media_type": l.media_type, "digest": l.digest, "size": l.size}));
        assert_eq!(printed["layers"], Value::Array(layers.collect()));
        assert_eq!(tar_entry.name.as_deref(), Some(name));
        assert_eq!(tar_entry.image.digest(), image.digest());
        let found = image.module().expect("module in the image");
        assert_eq!(found.module, module, "{name}: module round-trips");
    }
    assert_eq!(
        from_dir
            .iter()
            .filter_map(|e| e.name.clone())
            .collect::<Vec<_>>(),
        ["compat", "wasm"]
    );

    // Another run, another directory: the same digests.
    let again = ok(
        dir.path(),
        &[
            "package",
            "filter.wasm",
            "--output",
            "again",
            "--root-id",
            "guard",
        ],
    );
    assert_eq!(again["variants"], report["variants"]);
    let compat_only = ok(
        dir.path(),
        &[
            "package",
            "filter.wasm",
            "--output",
            "compat",
            "--variant",
            "compat",
        ],
    );
    assert_eq!(
        compat_only["variants"]["compat"],
        report["variants"]["compat"]
    );
    assert!(compat_only["variants"].get("wasm").is_none());
}

#[test]
fn package_refuses_a_file_that_is_not_a_proxy_wasm_module() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("plain.wasm"),
        wat::parse_str("(module)").expect("wat"),
    )
    .expect("write");
    let (code, out, err) = palisade(dir.path(), &["package", "plain.wasm", "--output", "out"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, Value::Null);
    assert!(err.contains("no proxy-wasm ABI version export"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing written");
}

// --- a real registry ----------------------------------------------------------------------------

fn pull(reference: &str) -> palisade_oci::Pulled {
    let registry = Registry::new(RegistryOptions {
        plain_http: true,
        credentials: None,
    })
    .expect("client");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(registry.pull(reference))
        .unwrap_or_else(|e| panic!("pulling {reference}: {e:?}"))
}

fn gzip_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, *bytes)
            .expect("tar entry");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner().expect("tar")).expect("gzip");
    gz.finish().expect("gzip")
}

/// What `docker build` of `FROM scratch` + `COPY plugin.wasm ./` pushes (Istio's first layout).
fn docker_image() -> Image {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = gzip_tar(&[("plugin.wasm", &module())]);
    let descriptor = |media_type: &str, bytes: &[u8]| {
        json!({
            "mediaType": media_type,
            "digest": format!("sha256:{}", palisade_oci::sha256_hex(bytes)),
            "size": bytes.len(),
        })
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)],
    });
    Image::from_parts(
        serde_json::to_vec(&manifest).expect("json"),
        [config.to_vec(), layer],
    )
    .expect("docker image")
}

#[test]
fn pushes_both_variants_to_a_local_registry_and_pulls_the_same_module_back() {
    let registry = match e2e::registry::LocalRegistry::start() {
        Ok(registry) => registry,
        Err(reason) => {
            e2e::skip(&reason);
            return;
        }
    };
    let dir = workspace();
    let packaged = ok(
        dir.path(),
        &[
            "package",
            "filter.wasm",
            "--output",
            "layout",
            "--root-id",
            "guard",
        ],
    );
    let repo = format!("{}/palisade/guard", registry.address);

    // compat from the layout, wasm straight from the module: both must give package's digests.
    let compat_ref = format!("{repo}:compat");
    let pushed = ok(
        dir.path(),
        &[
            "push",
            "layout",
            &compat_ref,
            "--variant",
            "compat",
            "--plain-http",
        ],
    );
    assert_eq!(pushed["reference"], compat_ref.as_str());
    assert_eq!(pushed["digest"], packaged["variants"]["compat"]["digest"]);
    let wasm_ref = format!("{repo}:wasm");
    let pushed = ok(
        dir.path(),
        &[
            "push",
            "filter.wasm",
            &wasm_ref,
            "--variant",
            "wasm",
            "--root-id",
            "guard",
            "--plain-http",
        ],
    );
    assert_eq!(pushed["digest"], packaged["variants"]["wasm"]["digest"]);

    for (reference, variant, format) in [
        (&compat_ref, "compat", Format::Compat),
        (&wasm_ref, "wasm", Format::Wasm),
    ] {
        let digest = packaged["variants"][variant]["digest"]
            .as_str()
            .expect("digest");
        let pulled = pull(reference);
        assert_eq!(pulled.digest, digest, "{variant}: manifest digest");
        assert_eq!(pulled.extracted.format, format);
        assert_eq!(pulled.extracted.module, module(), "{variant}: module bytes");
        // By digest too, as a WasmPlugin url pinned with @sha256 would.
        let by_digest = pull(&format!("{repo}@{digest}"));
        assert_eq!(by_digest.extracted.module, module());
    }

    // `palisade istio` resolves an unpinned oci reference to the manifest digest.
    std::fs::write(dir.path().join("config.json"), r#"{"mode":"enforce"}"#).expect("write");
    let output = Command::cargo_bin("palisade")
        .expect("binary")
        .current_dir(dir.path())
        .args([
            "istio",
            &format!("oci://{compat_ref}"),
            "--config",
            "config.json",
            "--plain-http",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plugin: Value = serde_yaml::from_slice(&output.stdout).expect("YAML");
    assert_eq!(
        plugin["spec"]["sha256"],
        packaged["variants"]["compat"]["sha256"]
    );

    // Istio's first layout, a Docker image, through the same registry.
    let docker = docker_image();
    let docker_ref = format!("{repo}:docker");
    let client = Registry::new(RegistryOptions {
        plain_http: true,
        credentials: None,
    })
    .expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pushed = runtime
        .block_on(client.push(&docker, &docker_ref))
        .expect("push docker image");
    assert_eq!(pushed.digest, docker.digest());
    let pulled = pull(&docker_ref);
    assert_eq!(pulled.extracted.format, Format::Docker);
    assert_eq!(pulled.extracted.module, module());
    drop(registry);
}
