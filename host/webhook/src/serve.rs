//! The server around [`router`](crate::router): validates the configuration before binding,
//! serves HTTPS (rustls, TLS 1.2+, optional client certificates) or plain HTTP when asked,
//! re-reads certificates and configuration when they change or on SIGHUP, and shuts down
//! gracefully on SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use palisade_runtime::Engine;
use palisade_runtime::capabilities::{Capabilities, DataTables, MemoryStore, SystemClock};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::config::{Config, TlsConfig};
use crate::{AppState, PolicySet, router};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The configuration file.
    pub config: PathBuf,
    /// Serve plain HTTP (local use only); the configuration's `tls` is then ignored.
    pub insecure_http: bool,
    /// `/readyz` answers 503 unless every policy loaded.
    pub strict_ready: bool,
    /// How often files are checked for changes.
    pub watch_interval: Duration,
}

/// Runs the webhook until SIGTERM or Ctrl-C.
///
/// # Errors
/// An invalid configuration or TLS material, or an address that cannot be bound; all are
/// checked before the server starts listening.
pub async fn serve(options: ServeOptions, engine: Engine) -> anyhow::Result<()> {
    Server::bind(options, engine)
        .await?
        .run_until(shutdown_signal())
        .await
}

/// A bound, not yet running webhook server.
pub struct Server {
    options: ServeOptions,
    config: Config,
    state: Arc<AppState>,
    engine: Arc<Engine>,
    tls: Option<TlsState>,
    listener: TcpListener,
    watcher: Watcher,
}

impl Server {
    /// Validates the configuration and TLS material, loads the policies, then binds.
    ///
    /// # Errors
    /// As [`serve`].
    pub async fn bind(options: ServeOptions, engine: Engine) -> anyhow::Result<Self> {
        // File times are taken before each file is read, so a change made while the server
        // starts is seen as a change, never taken as the baseline.
        let config_seen = modified(&options.config);
        let config = Config::load(&options.config)?;
        let mut watcher = Watcher::new(&options.config, &config);
        watcher.seen.insert(options.config.clone(), config_seen);
        let tls = match (&config.tls, options.insecure_http) {
            (_, true) => None,
            (Some(tls), false) => Some(TlsState::load(tls)?),
            (None, false) => bail!(
                "{}: tls is required (cert and key files); use --insecure-http only for local testing",
                options.config.display()
            ),
        };
        let engine = Arc::new(engine);
        let capabilities = Arc::new(Capabilities::new(
            Arc::new(SystemClock),
            Arc::new(MemoryStore::new(config.state.into())),
            config.load_data()?,
        ));
        let set = {
            let (config, engine, capabilities) = (
                config.clone(),
                Arc::clone(&engine),
                Arc::clone(&capabilities),
            );
            tokio::task::spawn_blocking(move || PolicySet::load(&config, &engine, &capabilities))
                .await?
        };
        let state = Arc::new(AppState::new(
            set,
            capabilities,
            config.limits.clone(),
            options.strict_ready,
        ));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            options,
            config,
            state,
            engine,
            tls,
            listener,
            watcher,
        })
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// When the socket cannot tell.
    pub fn local_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The state the handlers share (policy set, metrics).
    #[must_use]
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self {
            options,
            config,
            state,
            engine,
            tls,
            listener,
            watcher,
        } = self;
        tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), policies = config.policies.len(), "palisade webhook listening");
        let reload = tokio::spawn(reload_loop(
            options.clone(),
            config.clone(),
            Arc::clone(&state),
            engine,
            tls.clone(),
            watcher,
        ));
        let result = accept_loop(listener, &config, state, tls, shutdown).await;
        reload.abort();
        result
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: &Config,
    state: Arc<AppState>,
    tls: Option<TlsState>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let limits = &config.limits;
    let metrics = Arc::clone(&state);
    let metrics = &metrics.metrics;
    let app = router(state).layer(
        ServiceBuilder::new()
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                limits.request_timeout,
            ))
            .layer(tower::limit::ConcurrencyLimitLayer::new(
                limits.max_concurrency,
            )),
    );
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let header_timeout = limits.header_timeout;
    let mut failures = AcceptFailures::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    failures.reset();
                    pair
                }
                Err(e) => {
                    metrics.accept_errors.inc();
                    let pause = failures.record(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, service, watcher, header_timeout).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, service, watcher, header_timeout).await,
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(25)) => tracing::warn!("connections still open after 25s; exiting"),
    }
    Ok(())
}

/// Accept errors in a row: each one pauses the loop a little longer (out of descriptors,
/// accepting again at once would only fail again, with a core busy), and they are logged at
/// most once per interval, with how many there were.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<std::time::Instant>,
}

impl AcceptFailures {
    /// The first pause after a failure; it doubles up to [`Self::MAX_PAUSE`].
    const FIRST_PAUSE: Duration = Duration::from_millis(5);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    const LOG_INTERVAL: Duration = Duration::from_secs(10);

    /// Notes a failure; returns how long to pause before accepting again.
    fn record(&mut self, error: &std::io::Error) -> Duration {
        self.unlogged = self.unlogged.saturating_add(1);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_INTERVAL);
        if due {
            tracing::warn!(error = %error, failures = self.unlogged, "accepting connections fails; pausing between attempts");
            self.unlogged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
        let pause = Self::FIRST_PAUSE
            .saturating_mul(1 << self.in_a_row.min(8))
            .min(Self::MAX_PAUSE);
        self.in_a_row = self.in_a_row.saturating_add(1);
        pause
    }

    /// A connection was accepted: the next failure starts with a short pause again.
    fn reset(&mut self) {
        self.in_a_row = 0;
    }
}

async fn serve_connection<S, T>(
    io: T,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The TLS configuration with a certificate that can be swapped while serving.
#[derive(Clone)]
struct TlsState {
    server_config: Arc<rustls::ServerConfig>,
    resolver: Arc<Resolver>,
    paths: TlsConfig,
}

#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl TlsState {
    fn load(paths: &TlsConfig) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(paths)?;
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(key),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("choosing TLS versions")?;
        let builder = match &paths.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("reading {}", ca.display()))?
                {
                    roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .with_context(|| format!("client CA bundle {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server_config =
            builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            server_config: Arc::new(server_config),
            resolver,
            paths: paths.clone(),
        })
    }

    /// Re-reads the certificate and key; keeps the old pair if the new one is unusable.
    fn reload(&self) {
        match certified_key(&self.paths) {
            Ok(key) => {
                self.resolver.current.store(Arc::new(key));
                tracing::info!(cert = %self.paths.cert.display(), "serving certificate reloaded");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "new serving certificate is unusable; keeping the old one"
            ),
        }
    }
}

fn certified_key(paths: &TlsConfig) -> anyhow::Result<CertifiedKey> {
    let certs = CertificateDer::pem_file_iter(&paths.cert)
        .with_context(|| format!("reading certificate {}", paths.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", paths.cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", paths.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key)
        .with_context(|| format!("reading private key {}", paths.key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .with_context(|| format!("private key {}", paths.key.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().with_context(|| {
        format!(
            "{} and {} do not belong together",
            paths.cert.display(),
            paths.key.display()
        )
    })?;
    Ok(certified)
}

/// Modification times of the files the server depends on.
struct Watcher {
    config: PathBuf,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
}

impl Watcher {
    fn new(config_path: &Path, config: &Config) -> Self {
        let mut watcher = Self {
            config: config_path.to_owned(),
            seen: BTreeMap::new(),
        };
        watcher.track(config);
        watcher
    }

    fn track(&mut self, config: &Config) {
        let mut files = vec![self.config.clone()];
        files.extend(config.policies.iter().map(|p| p.module.clone()));
        files.extend(config.data.values().cloned());
        if let Some(tls) = &config.tls {
            files.extend([tls.cert.clone(), tls.key.clone()]);
        }
        self.seen = files
            .into_iter()
            .map(|f| {
                let time = modified(&f);
                (f, time)
            })
            .collect();
    }

    /// The files whose modification time changed since the last look.
    fn changed(&mut self) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for (file, seen) in &mut self.seen {
            let now = modified(file);
            if now != *seen {
                *seen = now;
                changed.push(file.clone());
            }
        }
        changed
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn reload_loop(
    options: ServeOptions,
    mut config: Config,
    state: Arc<AppState>,
    engine: Arc<Engine>,
    tls: Option<TlsState>,
    mut watcher: Watcher,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = match &mut hangup {
            Some(signal) => tokio::select! {
                _ = signal.recv() => true,
                () = tokio::time::sleep(options.watch_interval) => false,
            },
            None => {
                tokio::time::sleep(options.watch_interval).await;
                false
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(options.watch_interval).await;
            false
        };
        let changed = watcher.changed();
        if !forced && changed.is_empty() {
            continue;
        }
        if let Some(tls) = &tls
            && (forced
                || changed
                    .iter()
                    .any(|f| *f == tls.paths.cert || *f == tls.paths.key))
        {
            tls.reload();
        }
        let policies_changed = changed.iter().any(|f| {
            !tls.as_ref()
                .is_some_and(|t| *f == t.paths.cert || *f == t.paths.key)
        });
        if !forced && !policies_changed {
            continue;
        }
        tracing::info!(forced, files = ?changed, "reloading configuration");
        match reload(&options.config, &config, &engine, &state.capabilities).await {
            Ok((new_config, set, data)) => {
                if new_config.listen != config.listen {
                    tracing::warn!("listen address changed; it takes effect on restart");
                }
                state.capabilities.replace_data(data);
                state.replace(set);
                watcher.track(&new_config);
                config = new_config;
                tracing::info!(policies = config.policies.len(), "configuration reloaded");
            }
            Err(e) => {
                state.metrics.reload_failures.inc();
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload failed; keeping the previous configuration"
                );
            }
        }
    }
}

/// Loads a new configuration, its data tables and policy set; any failure (invalid file, a
/// data table that does not read, a policy that does not load, a change that needs a restart)
/// rejects the whole reload.
async fn reload(
    path: &Path,
    current: &Config,
    engine: &Arc<Engine>,
    capabilities: &Arc<Capabilities>,
) -> anyhow::Result<(Config, PolicySet, DataTables)> {
    let config = Config::load(path)?;
    if config.state != current.state {
        bail!(
            "{}: state (the shared state's bounds) changed; it takes effect on restart",
            path.display()
        );
    }
    let data = config.load_data()?;
    let set = {
        let (config, engine, capabilities) =
            (config.clone(), Arc::clone(engine), Arc::clone(capabilities));
        tokio::task::spawn_blocking(move || PolicySet::load(&config, &engine, &capabilities))
            .await?
    };
    if let Some(failed) = set.statuses().into_iter().find(|s| s.status == "error") {
        bail!(
            "policy {} does not load: {}",
            failed.id,
            failed.error.unwrap_or_default()
        );
    }
    Ok((config, set, data))
}
