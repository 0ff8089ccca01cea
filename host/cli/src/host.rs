//! What `palisade run` gives policies of the host: the clock (the system's, or a fixed time for
//! reproducible runs), data tables from files, an in-memory state store, Kubernetes objects from
//! a directory of manifests, DNS when asked for, a recording or replay of the host operations,
//! and the grants saying which of them a policy may use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use palisade_runtime::capabilities::cluster::ManifestDirectory;
use palisade_runtime::capabilities::session::Session;
use palisade_runtime::capabilities::{
    Capabilities, Clock, DataTables, FixedClock, Grants, MemoryStore, OperationGrants,
    ResourceKind, StateLimits, SystemClock,
};

use palisade_suite::input;
use palisade_webhook::registry::{RegistryConfig, StoreRegistry};

use crate::images::ImageSourceArgs;

/// Host capabilities on the command line.
#[derive(Debug, Args)]
pub(crate) struct HostArgs {
    /// Grant a capability to the policy: `clock`, `state`, `rate-limit`, `supply-chain` (images'
    /// signatures and attestations, from the image options below), `data:<table>` or
    /// `data:*`, `host:<pattern>` (host operations as Kubewarden's hostCapabilities name them:
    /// `host:*`, `host:kubernetes/*`, `host:oci/v1/manifest_digest`), `kubernetes:<apiVersion>/<Kind>`
    /// or `kubernetes:*` (the kinds it may list and get) (repeatable; a server configuration's
    /// policies have their own grants).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    capabilities: Vec<String>,
    /// A directory of Kubernetes manifests (YAML or JSON, multi-document, Lists) that the
    /// kubernetes/* host operations answer from, as if it were the cluster.
    #[arg(long, value_name = "DIR")]
    kubernetes_dir: Option<PathBuf>,
    /// Answer net/v1/dns_lookup_host with this machine's resolver (off by default).
    #[arg(long)]
    allow_dns: bool,
    /// Where the oci/v1/* host operations read images.
    #[command(flatten)]
    images: ImageSourceArgs,
    /// The Sigstore trusted_root.json that oci/v1/verify and oci/v2/verify check keyless
    /// signatures against [default: Sigstore's public-good root, as shipped].
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Write every host-operation exchange of the run to FILE (kwctl's session format).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "replay_host_capabilities_interactions"
    )]
    record_host_capabilities_interactions: Option<PathBuf>,
    /// Answer host operations from FILE, recorded by `--record-host-capabilities-interactions`
    /// or by kwctl, in order; a request that differs from the recorded one is an error.
    #[arg(long, value_name = "FILE")]
    replay_host_capabilities_interactions: Option<PathBuf>,
    /// A data table for the `data` capability: `<name>=<file>`, the file a YAML or JSON mapping
    /// of keys to values (repeatable).
    #[arg(long, value_name = "NAME=FILE")]
    data: Vec<String>,
    /// The time the clock reads, RFC 3339 (`2026-01-01T00:00:00Z`) [default: the system clock].
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

impl HostArgs {
    /// The clock: fixed at `--now`, or the system's.
    pub(crate) fn clock(&self) -> anyhow::Result<Arc<dyn Clock>> {
        let Some(now) = &self.now else {
            return Ok(Arc::new(SystemClock));
        };
        let time = time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--now {now:?} is not an RFC 3339 time"))?;
        let nanos = u64::try_from(time.unix_timestamp_nanos())
            .with_context(|| format!("--now {now:?} is before 1970"))?;
        Ok(Arc::new(FixedClock(Duration::from_nanos(nanos))))
    }

    /// The tables of `--data`.
    pub(crate) fn data(&self) -> anyhow::Result<DataTables> {
        let mut tables = BTreeMap::new();
        for spec in &self.data {
            let Some((name, file)) = spec.split_once('=') else {
                bail!("--data {spec:?}: give <name>=<file>");
            };
            let table: BTreeMap<String, serde_json::Value> =
                input::read_document(&PathBuf::from(file))
                    .with_context(|| format!("data table {name:?} must map keys to values"))?;
            tables.insert(name.to_owned(), table);
        }
        Ok(DataTables::new(tables))
    }

    /// The grants of `--capability`.
    pub(crate) fn grants(&self) -> anyhow::Result<Grants> {
        let mut grants = Grants::default();
        for capability in &self.capabilities {
            match capability.as_str() {
                "clock" => grants.clock = true,
                "state" => grants.state = true,
                "rate-limit" => grants.rate_limit = true,
                "supply-chain" => grants.supply_chain = true,
                other => match other.split_once(':') {
                    Some(("data", table)) if !table.is_empty() => {
                        grants.data.insert(table.to_owned());
                    }
                    Some(("host", pattern)) => {
                        let patterns = grants
                            .operations
                            .patterns()
                            .map(str::to_owned)
                            .chain([pattern.to_owned()]);
                        grants.operations = OperationGrants::new(patterns)
                            .map_err(|e| anyhow::anyhow!("--capability {other:?}: {e}"))?;
                    }
                    Some(("kubernetes", "*")) => {
                        grants.kubernetes.insert(ResourceKind::any());
                    }
                    Some(("kubernetes", resource)) => {
                        let Some((api_version, kind)) = resource.rsplit_once('/') else {
                            bail!(
                                "--capability {other:?}: give kubernetes:<apiVersion>/<Kind> (kubernetes:v1/Namespace, kubernetes:apps/v1/Deployment) or kubernetes:*"
                            );
                        };
                        grants.kubernetes.insert(ResourceKind {
                            api_version: api_version.to_owned(),
                            kind: kind.to_owned(),
                        });
                    }
                    _ => bail!(
                        "--capability {other:?}: expected clock, state, rate-limit, supply-chain, data:<table>, data:*, host:<pattern>, kubernetes:<apiVersion>/<Kind> or kubernetes:*"
                    ),
                },
            }
        }
        Ok(grants)
    }

    /// The recording or replay session of the run, if one is asked for.
    pub(crate) fn session(&self) -> anyhow::Result<Option<Arc<Session>>> {
        if self.record_host_capabilities_interactions.is_some() {
            return Ok(Some(Arc::new(Session::record())));
        }
        let Some(path) = &self.replay_host_capabilities_interactions else {
            return Ok(None);
        };
        let text = input::read_text(path)?;
        let session =
            Session::replay(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Some(Arc::new(session)))
    }

    /// Writes what `session` recorded, if the run records; warns about exchanges a replay left.
    pub(crate) fn finish(&self, session: Option<&Session>) -> anyhow::Result<()> {
        let Some(session) = session else {
            return Ok(());
        };
        if let Some(path) = &self.record_host_capabilities_interactions {
            std::fs::write(path, session.recorded())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let left = session.left_over();
        if left > 0 {
            crate::output::note(format_args!(
                "warning: {left} recorded host-capability exchange(s) were not replayed"
            ));
        }
        Ok(())
    }

    /// Capabilities of the clock, `data`, the Kubernetes directory, DNS, images and the
    /// session, with a fresh in-memory state store.
    pub(crate) fn capabilities(
        &self,
        data: DataTables,
        state: StateLimits,
        session: Option<Arc<Session>>,
    ) -> anyhow::Result<Arc<Capabilities>> {
        let store = Arc::new(self.images.store()?);
        let supply_chain = RegistryConfig {
            trusted_root: self.trusted_root.clone(),
            ..self.images.config()
        }
        .supply_chain(Arc::clone(&store))
        .context("--trusted-root")?;
        let mut capabilities =
            Capabilities::new(self.clock()?, Arc::new(MemoryStore::new(state)), data)
                .with_dns(self.allow_dns)
                .with_registry(Arc::new(StoreRegistry(store)))
                .with_supply_chain(Arc::new(supply_chain));
        if let Some(dir) = &self.kubernetes_dir {
            let cluster = ManifestDirectory::load(dir)
                .with_context(|| format!("--kubernetes-dir {}", dir.display()))?;
            capabilities = capabilities.with_cluster(Arc::new(cluster));
        }
        if let Some(session) = session {
            capabilities = capabilities.with_session(session);
        }
        Ok(Arc::new(capabilities))
    }
}
