//! The Pod Security Standards levels (PSA `api.Level`): `privileged`, `baseline`, `restricted`.

use serde::Deserialize;
use std::fmt;

/// A Pod Security Standards level; each is cumulative over the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Unrestricted: every pod is allowed.
    Privileged,
    /// Prevents known privilege escalations; allows the default pod configuration.
    Baseline,
    /// Baseline plus current pod-hardening best practices.
    #[default]
    Restricted,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        })
    }
}
