//! `image-fixtures <out-dir>`: writes the fixed set of signed images of
//! `palisade_supply_chain::testing::images` as an OCI layout, for policies' examples and tests:
//! - `<out-dir>/registry/`: the layout (a previous one is removed first);
//! - `<out-dir>/trusted_root.json`: the local Sigstore's trusted root;
//! - `<out-dir>/keys/<name>.pub`: the public keys (PEM), `alpha`, `beta`, `gamma`, `mallory`;
//! - `<out-dir>/images.json`: each image's reference and manifest digest, sorted.
//!
//! Keys are new on every run; the images (and so their digests) and the signing time
//! (2026-12-01T00:00:00Z) are not.

use std::path::Path;
use std::process::ExitCode;

use palisade_supply_chain::attach::Destination;
use palisade_supply_chain::testing::images::{FixtureOptions, write_images};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: image-fixtures <out-dir>");
        return ExitCode::from(2);
    };
    match run(Path::new(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &Path) -> Result<(), String> {
    let layout = out.join("registry");
    if layout.exists() {
        std::fs::remove_dir_all(&layout)
            .map_err(|e| format!("removing {}: {e}", layout.display()))?;
    }
    let keys = out.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| format!("creating {}: {e}", keys.display()))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    let fixtures = runtime.block_on(write_images(
        Destination::Layout(&layout),
        &FixtureOptions::default(),
    ))?;

    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    let root: serde_json::Value =
        serde_json::from_str(&fixtures.trusted_root_json).map_err(|e| e.to_string())?;
    let root = serde_json::to_string_pretty(&root).map_err(|e| e.to_string())?;
    write(&out.join("trusted_root.json"), &format!("{root}\n"))?;
    for (name, pem) in &fixtures.public_keys {
        write(&keys.join(format!("{name}.pub")), pem)?;
    }
    let images = serde_json::to_string_pretty(&fixtures.images).map_err(|e| e.to_string())?;
    write(&out.join("images.json"), &format!("{images}\n"))?;

    println!(
        "wrote {} images, {} keys and the trusted root to {}",
        fixtures.images.len(),
        fixtures.public_keys.len(),
        out.display()
    );
    Ok(())
}
