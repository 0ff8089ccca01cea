//! The `palisade` command: parses arguments, sets up logging and the engine, and delegates to
//! one module per subcommand. Exit codes: 0 success/allowed, 1 denied/failed tests, 2 error.

mod deploy;
mod host;
mod images;
mod istio;
mod output;
mod package;
mod proxy;
mod push;
mod rego;
mod run;
mod serve;
mod suite;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use palisade_runtime::{Engine, EngineConfig, Limits};

/// Palisade: security policies compiled to WebAssembly, run offline.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an admission policy on one request and print the AdmissionReview response.
    Run(run::RunArgs),
    /// Run data-driven test suites of policies.
    Test(suite::TestArgs),
    /// Serve the configured policies as a Kubernetes admission webhook.
    Serve(serve::ServeArgs),
    /// Print the Validating/MutatingWebhookConfiguration for a server configuration.
    WebhookConfig(deploy::WebhookConfigArgs),
    /// Create a CA and a serving certificate (and optionally a client certificate) for local use.
    Cert(deploy::CertArgs),
    /// Package a proxy-wasm filter as OCI images (compat and wasm variants) in an image layout.
    Package(package::PackageArgs),
    /// Push a proxy-wasm filter (or an image of a layout) to a registry.
    Push(push::PushArgs),
    /// Print the Istio WasmPlugin (or EnvoyFilter) that loads a proxy-wasm filter.
    Istio(istio::IstioArgs),
    /// Evaluate Rego queries and run Rego unit tests (as `opa eval` and `opa test` do) with regorus.
    Rego(rego::RegoArgs),
    /// Verify a blob's signature (with a key) or Sigstore bundle (with a key or a keyless
    /// identity, against a trusted root), as `cosign verify-blob` does; exit 0 only when valid.
    VerifyBlob(verify::VerifyBlobArgs),
    /// Sign a blob with a private key, as `cosign sign-blob --key` does (a base64 signature).
    SignBlob(verify::SignBlobArgs),
    /// Make a key pair for signing (PKCS#8 private key, SubjectPublicKeyInfo public key).
    GenerateKeyPair(verify::GenerateKeyPairArgs),
    /// Sign an image with a key, as `cosign sign --key` does: a signature appended to its
    /// `sha256-<hex>.sig` tag, in a registry or an OCI layout.
    Sign(images::SignArgs),
    /// Attest an image with a key, as `cosign attest --key` does: an in-toto statement in a
    /// DSSE envelope appended to its `sha256-<hex>.att` tag.
    Attest(images::AttestArgs),
    /// Verify an image's signatures (or, with --type, attestations) as `cosign verify` does:
    /// cosign's tags and Sigstore bundles attached as referrers; exit 0 only when one verifies.
    VerifyImage(images::VerifyImageArgs),
    /// Print this command's reference in Markdown (the README's CLI section is generated from it).
    #[command(hide = true)]
    Reference,
}

/// Options of the wasm engine, shared by every subcommand.
#[derive(Debug, Args)]
struct EngineArgs {
    /// Directory of the compiled-module cache [default: $XDG_CACHE_HOME/palisade or ~/.cache/palisade].
    #[arg(long, global = true, env = "PALISADE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile policies every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Deadline of one evaluation, in milliseconds.
    #[arg(long, global = true, default_value_t = 1000, value_name = "MS")]
    timeout_ms: u64,
    /// Cap on a policy's memory, in MiB.
    #[arg(long, global = true, default_value_t = 64, value_name = "MIB")]
    memory_mib: usize,
    /// Describe compiled guest code to an outside profiler (`perfmap`: Linux perf).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PALISADE_WASM_PROFILER",
        value_name = "PROFILER"
    )]
    wasm_profiler: Option<WasmProfiler>,
    /// Log format: JSON lines (the default for `serve`) or text (the default otherwise).
    #[arg(long, global = true, value_enum, env = "PALISADE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Largest file read as input (request, settings, suite, scenario, data table, module), in
    /// bytes; a larger one is an error naming the file.
    #[arg(long, global = true, default_value_t = palisade_suite::input::DEFAULT_INPUT_LIMIT, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    max_input_bytes: u64,
}

/// Outside profilers guest code can be described to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WasmProfiler {
    /// Linux perf, through /tmp/perf-<pid>.map.
    Perfmap,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

impl EngineArgs {
    fn engine(&self) -> anyhow::Result<Engine> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        let limits = Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory: self.memory_mib << 20,
        };
        Engine::new(EngineConfig {
            cache_dir,
            limits,
            profiler: match self.wasm_profiler {
                Some(WasmProfiler::Perfmap) => palisade_runtime::Profiler::PerfMap,
                None => palisade_runtime::Profiler::None,
            },
            ..EngineConfig::default()
        })
        .context("starting the wasm engine")
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("palisade"))
}

/// The Markdown reference of every visible command, from the same definitions clap parses with.
fn reference() -> String {
    use clap::CommandFactory;
    // Environment values would make the text depend on who runs it.
    let mut root = Cli::command()
        .term_width(100)
        .mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(|c| c.mut_args(|a| a.hide_env_values(true)));
    let mut out = format!(
        "### `palisade`\n\n```text\n{}\n```\n",
        root.render_long_help().to_string().trim_end()
    );
    for sub in root.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_owned();
        let help = sub
            .clone()
            .bin_name(format!("palisade {name}"))
            .render_long_help()
            .to_string();
        out.push_str(&format!(
            "\n### `palisade {name}`\n\n```text\n{}\n```\n",
            help.trim_end()
        ));
        // Commands of a command (`palisade rego eval`), but not its generated `help`.
        for nested in sub
            .get_subcommands()
            .filter(|n| !n.is_hide_set() && n.get_name() != "help")
        {
            let nested_name = format!("{name} {}", nested.get_name());
            let help = nested
                .clone()
                .bin_name(format!("palisade {nested_name}"))
                .render_long_help()
                .to_string();
            out.push_str(&format!(
                "\n### `palisade {nested_name}`\n\n```text\n{}\n```\n",
                help.trim_end()
            ));
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
    });
    let format = cli.engine.log_format.unwrap_or(if serving {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
    palisade_suite::input::set_input_limit(cli.engine.max_input_bytes);
    let result = match &cli.command {
        Command::Run(args) => run::run(args, &cli.engine),
        Command::Test(args) => suite::test(args, &cli.engine),
        Command::Serve(args) => serve::serve(args, &cli.engine),
        Command::WebhookConfig(args) => deploy::webhook_config(args, &cli.engine),
        Command::Cert(args) => deploy::cert(args),
        Command::Package(args) => package::package(args),
        Command::Push(args) => push::push(args),
        Command::Istio(args) => istio::istio(args),
        Command::Rego(args) => rego::rego(args, &cli.engine),
        Command::VerifyBlob(args) => verify::verify_blob(args),
        Command::SignBlob(args) => verify::sign_blob(args),
        Command::GenerateKeyPair(args) => verify::generate_key_pair(args),
        Command::Sign(args) => images::sign(args),
        Command::Attest(args) => images::attest(args),
        Command::VerifyImage(args) => images::verify_image(args),
        Command::Reference => output::text(reference())
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): end quietly, as a process killed by SIGPIPE would
        // be seen (128 + 13).
        Err(e)
            if e.downcast_ref::<output::StdoutError>()
                .is_some_and(output::StdoutError::is_closed_pipe) =>
        {
            ExitCode::from(141)
        }
        Err(e) => {
            output::note(format_args!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}
