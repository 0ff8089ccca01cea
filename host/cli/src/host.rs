//! What `palisade run` and `palisade test` give policies of the host: the clock (the system's,
//! or a fixed time for reproducible runs), data tables from files, an in-memory state store, and
//! the grants saying which of them a policy may use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use palisade_runtime::capabilities::{
    Capabilities, Clock, DataTables, FixedClock, Grants, MemoryStore, StateLimits, SystemClock,
};

use palisade_suite::input;

/// Host capabilities on the command line.
#[derive(Debug, Args)]
pub(crate) struct HostArgs {
    /// Grant a capability to the policy: `clock`, `state`, `rate-limit`, `data:<table>` or `data:*`
    /// (repeatable; a server configuration's policies have their own grants).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    capabilities: Vec<String>,
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
                other => match other.strip_prefix("data:") {
                    Some(table) if !table.is_empty() => {
                        grants.data.insert(table.to_owned());
                    }
                    _ => bail!(
                        "--capability {other:?}: expected clock, state, rate-limit, data:<table> or data:*"
                    ),
                },
            }
        }
        Ok(grants)
    }

    /// Capabilities of the clock and `data`, with a fresh in-memory state store.
    pub(crate) fn capabilities(
        &self,
        data: DataTables,
        state: StateLimits,
    ) -> anyhow::Result<Arc<Capabilities>> {
        Ok(Arc::new(Capabilities::new(
            self.clock()?,
            Arc::new(MemoryStore::new(state)),
            data,
        )))
    }
}
