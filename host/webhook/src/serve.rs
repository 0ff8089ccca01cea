//! The server around [`router`](crate::router): validates the configuration before binding,
//! serves HTTPS (rustls, TLS 1.2+, optional client certificates) or plain HTTP when asked,
//! re-reads certificates and configuration when they change or on SIGHUP, and shuts down
//! gracefully on SIGTERM or Ctrl-C.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use palisade_runtime::Engine;
use palisade_runtime::capabilities::{Capabilities, DataTables, MemoryStore, SystemClock};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::config::{Config, ServerLimits, TlsConfig};
use crate::router::probes_router;
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
    /// policy-server's flags, for a configuration that is its policies.yml.
    pub flags: crate::kubewarden::ServerFlags,
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
    /// The plain-HTTP probes listener, when configured.
    probes: Option<TcpListener>,
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
        let config = Config::load_with(&options.config, &options.flags)?;
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
        let store = Arc::new(config.host_operations.registry.store()?);
        let capabilities = Arc::new(
            Capabilities::new(
                Arc::new(SystemClock),
                Arc::new(MemoryStore::new(config.state.into())),
                config.load_data()?,
            )
            .with_buckets(crate::buckets::from_config(&config.rate_limit))
            .with_dns(config.host_operations.dns)
            .with_registry(Arc::new(crate::registry::StoreRegistry(Arc::clone(&store))))
            .with_supply_chain(Arc::new(
                config.host_operations.registry.supply_chain(store)?,
            )),
        );
        capabilities.replace_cluster(config.load_cluster()?);
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
        let probes = match &config.probes {
            Some(probes) => Some(
                TcpListener::bind(probes.listen)
                    .await
                    .with_context(|| format!("binding probes.listen {}", probes.listen))?,
            ),
            None => None,
        };
        Ok(Self {
            options,
            config,
            state,
            engine,
            tls,
            listener,
            probes,
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

    /// The address of the probes listener, when one is configured.
    ///
    /// # Errors
    /// When the socket cannot tell.
    pub fn probes_addr(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        Ok(match &self.probes {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        })
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
            probes,
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
        let shrink = tokio::spawn(shrink_loop(Arc::clone(&state)));
        // The probes listener stops when the admission listener does.
        let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
        let probes = probes.map(|listener| {
            tracing::info!(address = ?listener.local_addr().ok(), "probes listening (plain HTTP: /healthz, /readyz, /metrics)");
            let app = probes_router(Arc::clone(&state));
            tokio::spawn(accept_loop(listener, Arc::clone(&state), app, None, async move {
                let _ = probes_stopped.await;
            }))
        });
        let app = router(Arc::clone(&state));
        let result = accept_loop(listener, state, app, tls, shutdown).await;
        let _ = stop_probes.send(());
        if let Some(probes) = probes {
            let _ = probes.await;
        }
        reload.abort();
        shrink.abort();
        result
    }
}

/// Drops policy instances idle for longer than `limits.instanceIdleTimeout`, checking a few
/// times per timeout (and at least every 10 s), so that memory taken in a burst goes back.
async fn shrink_loop(state: Arc<AppState>) {
    loop {
        let idle_for = state.limits().instance_idle_timeout;
        tokio::time::sleep(
            (idle_for / 4).clamp(Duration::from_millis(10), Duration::from_secs(10)),
        )
        .await;
        let dropped = state.policies().drop_idle(idle_for);
        if dropped > 0 {
            tracing::debug!(dropped, "idle policy instances dropped");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    app: axum::Router,
    tls: Option<TlsState>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // Connections end gracefully (requests in flight finish) when the server shuts down, and
    // when a reload changes the TLS configuration, so that every client is authenticated as
    // the configuration in force says.
    let (stopping, _) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = AcceptFailures::default();
    let connections = Arc::new(Connections::default());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    failures.reset();
                    pair
                }
                Err(e) => {
                    state.metrics.accept_errors.inc();
                    let pause = failures.record(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        // Limits as they are now: a reload applies to the connections that come after it.
        let limits = state.limits();
        let Some(slot) = connections.open(peer.ip(), &limits) else {
            state.metrics.rejected_connections.inc();
            tracing::debug!(%peer, "connection refused: too many connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Nothing read or written for idleTimeout closes the connection, whatever the protocol
        // and however far it got (a TLS handshake, an HTTP/2 preface cut short, an idle h2).
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_read_timeout(Some(limits.idle_timeout));
        stream.set_write_timeout(Some(limits.idle_timeout));
        let stream = Box::pin(stream);
        let service = TowerToHyperService::new(app.clone());
        let mut ends = vec![stopping.subscribe()];
        let acceptor = tls.as_ref().map(|tls| {
            ends.push(tls.changes());
            tls.acceptor()
        });
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, service, ends, &limits).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, service, ends, &limits).await,
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    stopping.send_replace(());
    tokio::select! {
        () = connections.all_closed() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(25)) => tracing::warn!("connections still open after 25s; exiting"),
    }
    Ok(())
}

/// Open connections, in all and by client address, within `maxConnections` and
/// `maxConnectionsPerClient`.
#[derive(Default)]
struct Connections {
    by_client: std::sync::Mutex<HashMap<IpAddr, usize>>,
    /// Woken when the last connection closes.
    closed: tokio::sync::Notify,
}

/// One open connection, counted until dropped.
struct ConnectionSlot {
    connections: Arc<Connections>,
    client: IpAddr,
}

impl Connections {
    /// Counts a connection from `client`, unless that would pass the limits.
    fn open(self: &Arc<Self>, client: IpAddr, limits: &ServerLimits) -> Option<ConnectionSlot> {
        let mut by_client = self.by_client.lock().ok()?;
        let total: usize = by_client.values().sum();
        let mine = by_client.get(&client).copied().unwrap_or(0);
        if total >= limits.max_connections || mine >= limits.max_connections_per_client {
            return None;
        }
        by_client.insert(client, mine.saturating_add(1));
        Some(ConnectionSlot {
            connections: Arc::clone(self),
            client,
        })
    }
}

impl Connections {
    /// Waits until no connection is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.by_client.lock().map_or(true, |c| c.is_empty()) {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut by_client) = self.connections.by_client.lock() {
            match by_client.get_mut(&self.client) {
                Some(count) if *count > 1 => *count -= 1,
                _ => {
                    by_client.remove(&self.client);
                }
            }
            if by_client.is_empty() {
                self.connections.closed.notify_waiters();
            }
        }
    }
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

/// Serves one connection until it ends; when any of `ends` changes (the server shuts down, the
/// TLS configuration changed) it is shut down gracefully: requests in flight finish, no new
/// ones are taken.
async fn serve_connection<S, T>(
    io: T,
    service: S,
    mut ends: Vec<tokio::sync::watch::Receiver<()>>,
    limits: &ServerLimits,
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
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut ending = false;
    loop {
        let end = futures_util::future::select_all(ends.iter_mut().map(|e| Box::pin(e.changed())));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            (changed, _, _) = end, if !ending => {
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
                // Once asked to end (or with nobody left to ask), only the connection matters.
                ending = true;
            }
        }
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

/// The TLS configuration, swapped whole when a reload changes it (a client CA added, removed or
/// rotated), with a certificate that can be swapped on its own while serving (rotation).
#[derive(Clone)]
struct TlsState {
    current: Arc<ArcSwap<TlsGeneration>>,
    changed: Arc<tokio::sync::watch::Sender<()>>,
}

/// One TLS configuration: its acceptor and the certificate it serves.
struct TlsGeneration {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Resolver>,
    paths: TlsConfig,
    /// The client CA bundle as read, to tell whether a reload changed it.
    client_ca: Option<Vec<u8>>,
}

impl TlsGeneration {
    /// Whether `other` authenticates clients as this one does and serves the same files (a
    /// certificate rotated in place is [`TlsState::reload_certificate`]'s business).
    fn same_as(&self, other: &Self) -> bool {
        self.paths.cert == other.paths.cert
            && self.paths.key == other.paths.key
            && self.paths.client_ca == other.paths.client_ca
            && self.client_ca == other.client_ca
    }
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
        Ok(Self {
            current: Arc::new(ArcSwap::from_pointee(TlsGeneration::load(paths)?)),
            changed: Arc::new(tokio::sync::watch::channel(()).0),
        })
    }

    /// The acceptor for a new connection.
    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current.load().acceptor.clone()
    }

    /// The files of the configuration in force.
    fn paths(&self) -> TlsConfig {
        self.current.load().paths.clone()
    }

    /// Re-reads the certificate and key; keeps the old pair if the new one is unusable.
    fn reload_certificate(&self) {
        let current = self.current.load();
        match certified_key(&current.paths) {
            Ok(key) => {
                current.resolver.current.store(Arc::new(key));
                tracing::info!(cert = %current.paths.cert.display(), "serving certificate reloaded");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "new serving certificate is unusable; keeping the old one"
            ),
        }
    }

    /// Switches new connections to `next` (already built and checked), and asks the open ones
    /// to end gracefully, so their clients reconnect under it.
    fn apply(&self, next: TlsGeneration) {
        self.current.store(Arc::new(next));
        self.changed.send_replace(());
    }

    /// A receiver told whenever the TLS configuration changes.
    fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }
}

impl TlsGeneration {
    fn load(paths: &TlsConfig) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(paths)?;
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(key),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("choosing TLS versions")?;
        let client_ca = match &paths.client_ca {
            Some(ca) => {
                Some(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?)
            }
            None => None,
        };
        let builder = match (&paths.client_ca, &client_ca) {
            (Some(ca), Some(pem)) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .with_context(|| format!("client CA bundle {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut server_config =
            builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server_config)),
            resolver,
            paths: paths.clone(),
            client_ca,
        })
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
        files.extend(
            config
                .policies
                .iter()
                .flat_map(|p| p.settings_files.iter().cloned()),
        );
        files.extend(config.data.values().cloned());
        // Files added to or removed from the manifest directory change its time.
        files.extend(config.host_operations.kubernetes_directory.clone());
        if let Some(tls) = &config.tls {
            files.extend([tls.cert.clone(), tls.key.clone()]);
            files.extend(tls.client_ca.clone());
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
        let paths = tls.as_ref().map(TlsState::paths);
        let is_pair = |f: &PathBuf| paths.as_ref().is_some_and(|p| *f == p.cert || *f == p.key);
        if let Some(tls) = &tls
            && (forced || changed.iter().any(is_pair))
        {
            tls.reload_certificate();
        }
        if !forced && changed.iter().all(is_pair) {
            continue;
        }
        tracing::info!(forced, files = ?changed, "reloading configuration");
        let tls_now = tls.as_ref().map(|t| (t, t.paths()));
        match reload(&options, &config, tls_now, &engine, &state.capabilities).await {
            Ok(reloaded) => {
                if let (Some(tls), Some(next)) = (&tls, reloaded.tls) {
                    tls.apply(next);
                    tracing::info!("TLS configuration reloaded");
                }
                state.replace_limits(reloaded.config.limits.clone());
                state.capabilities.replace_data(reloaded.data);
                state.capabilities.replace_cluster(reloaded.cluster);
                state.replace(reloaded.set);
                watcher.track(&reloaded.config);
                config = reloaded.config;
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

/// What a reload applies, all of it checked before any of it is.
struct Reloaded {
    config: Config,
    set: PolicySet,
    data: DataTables,
    cluster: Option<Arc<dyn palisade_runtime::capabilities::cluster::Cluster>>,
    /// A new TLS configuration, when its files or their content changed.
    tls: Option<TlsGeneration>,
}

/// Loads a new configuration, its TLS material, data tables and policy set. An invalid file,
/// TLS material or data table that does not read, or a change that only a restart can apply
/// (`listen`, `state`, adding or removing `tls`) rejects the whole reload, naming the field; a
/// policy that does not load does not: it answers by its failurePolicy, as at start, and the
/// rest of the configuration applies.
async fn reload(
    options: &ServeOptions,
    current: &Config,
    tls: Option<(&TlsState, TlsConfig)>,
    engine: &Arc<Engine>,
    capabilities: &Arc<Capabilities>,
) -> anyhow::Result<Reloaded> {
    let path = &options.config;
    let config = Config::load_with(path, &options.flags)?;
    let restart = |field: &str| {
        anyhow::anyhow!(
            "{}: {field} changed, which takes effect only on restart; nothing was applied",
            path.display()
        )
    };
    if config.listen != current.listen {
        return Err(restart("listen"));
    }
    if config.state != current.state {
        return Err(restart("state (the shared state's bounds)"));
    }
    if config.rate_limit != current.rate_limit {
        return Err(restart("rateLimit (the token buckets' store)"));
    }
    if config.probes != current.probes {
        return Err(restart("probes"));
    }
    let tls = match (tls, &config.tls, options.insecure_http) {
        (_, _, true) | (None, None, false) => None,
        (Some(_), None, false) | (None, Some(_), false) => return Err(restart("tls")),
        // Built again to compare: the client CA bundle's content may have changed, not its
        // path. Unchanged, the connections in force stay open.
        (Some((state, _)), Some(next), false) => {
            let next = TlsGeneration::load(next)?;
            (!state.current.load().same_as(&next)).then_some(next)
        }
    };
    let data = config.load_data()?;
    let cluster = config.load_cluster()?;
    let set = {
        let (config, engine, capabilities) =
            (config.clone(), Arc::clone(engine), Arc::clone(capabilities));
        tokio::task::spawn_blocking(move || PolicySet::load(&config, &engine, &capabilities))
            .await?
    };
    for failed in set.statuses().into_iter().filter(|s| s.status == "error") {
        tracing::error!(
            policy = %failed.id,
            error = failed.error.unwrap_or_default(),
            "policy does not load; it answers by its failurePolicy"
        );
    }
    Ok(Reloaded {
        config,
        set,
        data,
        cluster,
        tls,
    })
}
