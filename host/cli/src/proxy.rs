//! Proxy scenarios on the command line: reading scenario files and one-line summaries of what
//! happened to each request. The emulation itself is `palisade_proxy`.

use std::path::Path;

use anyhow::Context;
use palisade_proxy::{RequestReport, Scenario};

use crate::input;

/// Reads a scenario from YAML or JSON, naming the file and the field on error.
pub(crate) fn read_scenario(path: &Path) -> anyhow::Result<Scenario> {
    let json = input::read_as_json(path)?;
    let mut deserializer = serde_json::Deserializer::from_str(&json);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))
        .with_context(|| format!("reading the scenario in {}", path.display()))
}

/// `request 1: upstream 200 (via_upstream)`, `request 2: local-reply 403` and the like (Envoy's
/// response code details in parentheses when there are any).
pub(crate) fn summary(request: &RequestReport) -> String {
    let mut line = format!("{}: {}", request.name, request.outcome);
    if let Some(response) = &request.response {
        line.push_str(&format!(" {}", response.status));
        if !response.details.is_empty() {
            line.push_str(&format!(" ({})", response.details));
        }
    }
    line
}
