//! `palisade package`: a proxy-wasm filter as OCI images (compat and/or wasm variant), or a
//! Kubewarden policy as the artefact Kubewarden pulls, in an OCI image layout directory,
//! optionally also as a tar, with the digests a WasmPlugin or a policy needs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use palisade_oci::{Image, ProxyWasmModule, Variant, layout};
use serde_json::{Value, json};

/// Which variants to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum VariantChoice {
    /// OCI media types, one tar.gz layer holding plugin.wasm (any registry accepts it).
    Compat,
    /// Wasm Artifact Image: runtime-config and raw module layers (custom media types).
    Wasm,
    /// Both, in one layout, named `compat` and `wasm`.
    Both,
}

impl VariantChoice {
    pub(crate) fn variants(self) -> Vec<Variant> {
        match self {
            VariantChoice::Compat => vec![Variant::Compat],
            VariantChoice::Wasm => vec![Variant::Wasm],
            VariantChoice::Both => Variant::ALL.to_vec(),
        }
    }
}

/// Arguments of `palisade package`.
#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    /// The proxy-wasm filter module (.wasm).
    #[arg(value_name = "FILTER")]
    filter: PathBuf,
    /// Directory of the OCI image layout to write (created if needed; index.json is replaced).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Variants to build; each is named by its variant in the layout's index.json.
    #[arg(long, value_enum, default_value_t = VariantChoice::Both)]
    variant: VariantChoice,
    /// Also write the layout as an uncompressed tar (for `skopeo copy oci-archive:..`).
    #[arg(long, value_name = "FILE")]
    tar: Option<PathBuf>,
    /// Root context id the module registers (the wasm variant's runtime config lists them).
    #[arg(long = "root-id", value_name = "ID")]
    root_ids: Vec<String>,
    /// Package a Kubewarden policy instead (waPC or WASI, its metadata embedded): the artefact
    /// Kubewarden pulls (one wasm layer, config `{}`, the metadata's annotations), named
    /// `kubewarden` in the layout.
    #[arg(long, conflicts_with_all = ["variant", "root_ids"])]
    kubewarden: bool,
}

/// The name of the Kubewarden artefact in a layout.
pub(crate) const KUBEWARDEN: &str = "kubewarden";

/// The Kubewarden artefact of a policy module, as `kwctl push` builds it: the metadata's
/// single-line annotations on the manifest. A module without Kubewarden metadata is refused,
/// as Kubewarden would not know how to run it.
pub(crate) fn kubewarden_image(bytes: &[u8], path: &Path) -> anyhow::Result<Image> {
    let metadata = palisade_runtime::kubewarden::Metadata::read(bytes)
        .with_context(|| format!("the Kubewarden metadata of {}", path.display()))?
        .with_context(|| {
            format!(
                "{} has no Kubewarden metadata (io.kubewarden.metadata); Kubewarden needs it to run the module (kwctl annotate, or the SDK's export_kubewarden!)",
                path.display()
            )
        })?;
    let annotations = metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, value)| !value.contains('\n'))
        .collect();
    Image::kubewarden(bytes, annotations)
        .with_context(|| format!("building the Kubewarden artefact of {}", path.display()))
}

/// Reads `path` and checks it is a proxy-wasm module.
pub(crate) fn read_filter(path: &Path) -> anyhow::Result<(Vec<u8>, ProxyWasmModule)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let module = ProxyWasmModule::parse(&bytes)
        .with_context(|| format!("{} is not a proxy-wasm module", path.display()))?;
    Ok((bytes, module))
}

/// The image of `variant` built from a checked module.
pub(crate) fn build(bytes: &[u8], variant: Variant, root_ids: &[String]) -> anyhow::Result<Image> {
    Image::from_module(bytes, variant, root_ids)
        .with_context(|| format!("building the {variant} image"))
}

/// What `package` prints for one image.
fn describe(name: &str, image: &Image) -> Value {
    let parsed = image.parsed();
    let blobs: u64 = image.blobs().map(|(_, b)| b.len() as u64).sum();
    json!({
        "ref_name": name,
        "media_type": image.media_type(),
        "digest": image.digest(),
        // The WasmPlugin `sha256` of an oci:// url is the manifest digest without its prefix.
        "sha256": image.digest().trim_start_matches("sha256:"),
        "manifest_size": image.manifest().len(),
        "total_size": image.manifest().len() as u64 + blobs,
        "config": {"media_type": parsed.config.media_type, "digest": parsed.config.digest, "size": parsed.config.size},
        "layers": parsed.layers.iter().map(|l| json!({
            "media_type": l.media_type, "digest": l.digest, "size": l.size,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn package(args: &PackageArgs) -> anyhow::Result<ExitCode> {
    if args.kubewarden {
        return package_kubewarden(args);
    }
    let (bytes, module) = read_filter(&args.filter)?;
    let images = args
        .variant
        .variants()
        .into_iter()
        .map(|variant| Ok((variant, build(&bytes, variant, &args.root_ids)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let named = images
        .iter()
        .map(|(variant, image)| (variant.name(), image))
        .collect::<Vec<_>>();
    write(args, &named)?;
    let variants = images
        .iter()
        .map(|(variant, image)| (variant.name().to_owned(), describe(variant.name(), image)))
        .collect::<serde_json::Map<_, _>>();
    let report = json!({
        "module": {
            "path": args.filter,
            "sha256": module.sha256,
            "size": module.size,
            "abi_version": module.abi_version(),
        },
        "layout": args.output,
        "tar": args.tar,
        "variants": variants,
    });
    crate::output::line(serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `images` (name, image) as the layout (and tar) `args` asks for.
fn write(args: &PackageArgs, images: &[(&str, &Image)]) -> anyhow::Result<()> {
    layout::write_dir(&args.output, images)
        .with_context(|| format!("writing the layout {}", args.output.display()))?;
    if let Some(tar) = &args.tar {
        layout::write_tar(tar, images)
            .with_context(|| format!("writing the layout tar {}", tar.display()))?;
    }
    Ok(())
}

fn package_kubewarden(args: &PackageArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.filter)
        .with_context(|| format!("reading {}", args.filter.display()))?;
    let image = kubewarden_image(&bytes, &args.filter)?;
    write(args, &[(KUBEWARDEN, &image)])?;
    let report = json!({
        "module": {
            "path": args.filter,
            "sha256": palisade_oci::sha256_hex(&bytes),
            "size": bytes.len(),
        },
        "layout": args.output,
        "tar": args.tar,
        "kubewarden": describe(KUBEWARDEN, &image),
    });
    crate::output::line(serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}
