//! `palisade webhook-config` and `palisade cert`: what it takes to put the webhook in a cluster
//! (or in front of a local API server): webhook configurations and TLS material.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;
use palisade_runtime::capabilities::{Capabilities, MemoryStore, SystemClock};
use palisade_webhook::manifests::{Endpoint, WebhookOptions, webhook_configurations};
use palisade_webhook::{Config, PolicySet};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::{EngineArgs, output};

/// Arguments of `palisade webhook-config`.
#[derive(Debug, Args)]
pub(crate) struct WebhookConfigArgs {
    /// The server's configuration file; each policy's rules come from its module's metadata.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Name of the webhook configuration objects.
    #[arg(long, default_value = "palisade")]
    name: String,
    /// Service of the webhook in the cluster.
    #[arg(long, default_value = "palisade")]
    service_name: String,
    /// Namespace of that Service (also excluded from the webhooks).
    #[arg(long, default_value = "palisade")]
    namespace: String,
    /// Port of that Service.
    #[arg(long, default_value_t = 443)]
    service_port: u16,
    /// Reach the webhook at this URL instead of a Service (`https://host:port`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["service_name", "service_port"])]
    url: Option<String>,
    /// PEM file of the CA that signed the serving certificate (put into caBundle).
    #[arg(long, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Seconds the API server waits for an answer (1-30).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=30))]
    timeout_seconds: u8,
}

pub(crate) fn webhook_config(
    args: &WebhookConfigArgs,
    engine_args: &EngineArgs,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let engine = engine_args.engine()?;
    let capabilities = Arc::new(Capabilities::new(
        Arc::new(SystemClock),
        Arc::new(MemoryStore::new(config.state.into())),
        config.load_data()?,
    ));
    let set = PolicySet::load(&config, &engine, &capabilities);
    if let Some(failed) = set.statuses().into_iter().find(|s| s.status == "error") {
        bail!(
            "policy {} does not load, so its rules are unknown: {}",
            failed.id,
            failed.error.unwrap_or_default()
        );
    }
    let ca_bundle = match &args.ca_bundle {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        None => None,
    };
    let endpoint = match &args.url {
        Some(url) => Endpoint::Url(url.clone()),
        None => Endpoint::Service {
            name: args.service_name.clone(),
            namespace: args.namespace.clone(),
            port: args.service_port,
        },
    };
    let options = WebhookOptions {
        name: args.name.clone(),
        endpoint,
        ca_bundle,
        timeout_seconds: args.timeout_seconds,
        excluded_namespaces: vec![args.namespace.clone(), "kube-system".into()],
    };
    let objects = webhook_configurations(&config, &set, &options)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    for object in objects {
        output::text(format_args!("---\n{}", serde_yaml::to_string(&object)?))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `palisade cert`.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// Directory to write ca.crt, ca.key, tls.crt, tls.key (and client.crt, client.key).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// DNS names of the serving certificate.
    #[arg(long = "dns", value_name = "NAME", default_values_t = ["localhost".to_owned(), "palisade.palisade.svc".to_owned()])]
    dns: Vec<String>,
    /// IP addresses of the serving certificate.
    #[arg(long = "ip", value_name = "ADDRESS", default_values_t = ["127.0.0.1".parse::<IpAddr>().unwrap_or(IpAddr::from([127, 0, 0, 1]))])]
    ip: Vec<IpAddr>,
    /// Also write a client certificate signed by the same CA (for `tls.clientCa` tests).
    #[arg(long)]
    client: bool,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn cert(args: &CertArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let now = time_now();
    let until = now + time::Duration::days(i64::from(args.days));

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "palisade local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now;
    ca_params.not_after = until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut names: Vec<String> = args.dns.clone();
    names.extend(args.ip.iter().map(ToString::to_string));
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(
        DnType::CommonName,
        args.dns.first().map_or("palisade", String::as_str),
    );
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now;
    server.not_after = until;
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let mut files = vec![
        ("ca.crt", ca_cert.pem()),
        ("tls.crt", server_cert.pem()),
        ("tls.key", server_key.serialize_pem()),
    ];
    if args.client {
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.not_before = now;
        client.not_after = until;
        let client_key = KeyPair::generate()?;
        let client_cert = client.signed_by(&client_key, &issuer)?;
        files.push(("client.crt", client_cert.pem()));
        files.push(("client.key", client_key.serialize_pem()));
    }
    for (name, pem) in &files {
        write_new(&args.out.join(name), pem, args.force)?;
    }
    output::note(format_args!(
        "wrote {} to {}",
        files.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        args.out.display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, content: &str, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists (use --force to overwrite)", path.display());
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
