//! `palisade push`: a filter (or one image of a layout `package` wrote) to a registry over the
//! OCI distribution API; prints the reference and the manifest digest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use palisade_oci::{Credentials, Image, Registry, RegistryOptions, Variant, layout};
use serde_json::json;

use crate::package::{build, read_filter};

/// How to reach a registry; shared by `push` and `istio`.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Speak plain HTTP to the registry (a local registry on 127.0.0.1), not HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Registry user name (anonymous when unset).
    #[arg(long, env = "PALISADE_REGISTRY_USERNAME", value_name = "USER")]
    username: Option<String>,
    /// Registry password or token; prefer the environment variable to the flag.
    #[arg(
        long,
        env = "PALISADE_REGISTRY_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    password: Option<Secret>,
}

/// A password that `{:?}` of the parsed arguments does not print.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl RegistryArgs {
    pub(crate) fn registry(&self) -> anyhow::Result<Registry> {
        let credentials = self.username.as_ref().map(|username| Credentials {
            username: username.clone(),
            password: self
                .password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default(),
        });
        Registry::new(RegistryOptions {
            plain_http: self.plain_http,
            credentials,
        })
        .context("setting up the registry client")
    }
}

/// A runtime for the registry client's async calls; the CLI is otherwise synchronous.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Which variant to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PushVariant {
    /// OCI media types, one tar.gz layer holding plugin.wasm.
    Compat,
    /// Wasm Artifact Image: runtime-config and raw module layers.
    Wasm,
    /// A Kubewarden policy artefact (one wasm layer, its metadata's annotations).
    Kubewarden,
}

impl PushVariant {
    /// The name of the image in a layout written by `palisade package`.
    fn name(self) -> &'static str {
        match self {
            PushVariant::Compat => Variant::Compat.name(),
            PushVariant::Wasm => Variant::Wasm.name(),
            PushVariant::Kubewarden => crate::package::KUBEWARDEN,
        }
    }
}

/// Arguments of `palisade push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// A proxy-wasm module (.wasm), a Kubewarden policy (with `--variant kubewarden`), or a
    /// layout directory written by `palisade package`.
    #[arg(value_name = "MODULE|LAYOUT")]
    source: PathBuf,
    /// Where to push: `registry/repository:tag`.
    #[arg(value_name = "REFERENCE")]
    reference: String,
    /// The variant to push (built from a module, or the layout's image of that name).
    #[arg(long, value_enum, default_value_t = PushVariant::Compat)]
    variant: PushVariant,
    /// Root context id for the wasm variant's runtime config (when pushing a module).
    #[arg(long = "root-id", value_name = "ID")]
    root_ids: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn image(args: &PushArgs) -> anyhow::Result<Image> {
    let name = args.variant.name();
    if !args.source.is_dir() {
        let variant = match args.variant {
            PushVariant::Compat => Variant::Compat,
            PushVariant::Wasm => Variant::Wasm,
            PushVariant::Kubewarden => {
                let bytes = std::fs::read(&args.source)
                    .with_context(|| format!("reading {}", args.source.display()))?;
                return crate::package::kubewarden_image(&bytes, &args.source);
            }
        };
        let (bytes, _) = read_filter(&args.source)?;
        return build(&bytes, variant, &args.root_ids);
    }
    if !args.root_ids.is_empty() {
        bail!("--root-id applies to a module; a layout's images are already built");
    }
    let entries = layout::read_dir(&args.source)
        .with_context(|| format!("reading the layout {}", args.source.display()))?;
    let names = entries
        .iter()
        .map(|e| e.name.clone().unwrap_or_else(|| "<unnamed>".to_owned()))
        .collect::<Vec<_>>();
    entries
        .into_iter()
        .find(|e| e.name.as_deref() == Some(name))
        .map(|e| e.image)
        .with_context(|| {
            format!(
                "the layout {} has no image named {name} (it has: {})",
                args.source.display(),
                names.join(", ")
            )
        })
}

pub(crate) fn push(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let image = image(args)?;
    let registry = args.registry.registry()?;
    let pushed = runtime()?
        .block_on(registry.push(&image, &args.reference))
        .with_context(|| format!("pushing to {}", args.reference))?;
    let report = json!({
        "reference": pushed.reference,
        "variant": args.variant.name(),
        "digest": pushed.digest,
        "sha256": pushed.digest.trim_start_matches("sha256:"),
    });
    crate::output::line(serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}
