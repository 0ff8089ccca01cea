//! The Pod Security Standards version a request is evaluated at: `latest` or `v1.N`, parsed once
//! from the settings exactly as PSA parses `pod-security.kubernetes.io/enforce-version`.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// The newest Kubernetes minor release whose rules this crate encodes: PSA's newest check version
/// (`policy/check_sysctls.go`, v1.37). `latest` and any newer `v1.N` evaluate at this one.
pub const NEWEST_MINOR: u64 = 37;

/// A policy version: the rules as of Kubernetes `v1.N`, or the newest rules (`latest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Version {
    /// `latest`: the newest rules this crate knows.
    #[default]
    Latest,
    /// `v1.N`: the rules as of Kubernetes release 1.N (the minor number).
    Minor(u64),
}

impl Version {
    /// The minor release whose rules apply: a version newer than [`NEWEST_MINOR`] is treated as
    /// the newest, as PSA's registry does (`policy/registry.go`, `EvaluatePod`).
    #[must_use]
    pub fn effective_minor(self) -> u64 {
        match self {
            Self::Latest => NEWEST_MINOR,
            Self::Minor(minor) => minor.min(NEWEST_MINOR),
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    /// Accepts `latest` or `v1.N` where N has no leading zero: PSA's `api.ParseVersion`
    /// (`^v1\.([0-9]|[1-9][0-9]*)$`, N read as a Go `int`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "latest" {
            return Ok(Self::Latest);
        }
        let error = || VersionError {
            value: text.to_owned(),
        };
        let digits = text.strip_prefix("v1.").ok_or_else(error)?;
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'));
        if !well_formed {
            return Err(error());
        }
        // Go's `strconv.Atoi` rejects what does not fit a 64-bit int.
        let minor: i64 = digits.parse().map_err(|_| error())?;
        u64::try_from(minor).map(Self::Minor).map_err(|_| error())
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Version {
    /// `latest` or `v1.N`, as PSA prints a version (`api.Version.String`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Minor(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A version that is neither `latest` nor `v1.N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError {
    /// The text that did not parse.
    pub value: String,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid version {:?}: must be \"latest\" or \"v1.x\"",
            self.value
        )
    }
}

impl std::error::Error for VersionError {}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn parses_latest_and_minor_versions() {
        assert_eq!("latest".parse::<Version>().unwrap(), Version::Latest);
        assert_eq!("v1.0".parse::<Version>().unwrap(), Version::Minor(0));
        assert_eq!("v1.25".parse::<Version>().unwrap(), Version::Minor(25));
        assert_eq!(
            "v1.10000".parse::<Version>().unwrap(),
            Version::Minor(10000)
        );
    }

    #[test]
    fn rejects_what_psa_rejects() {
        for bad in [
            "",
            "Latest",
            "v1",
            "v1.",
            "1.25",
            "v2.0",
            "v1.025",
            "v1.00",
            "v1.-1",
            "v1.2a",
            "v1.2 ",
            " v1.2",
            "v1.2\n",
            "v1.25.0",
            "v1.+3",
            "v1.99999999999999999999",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.value, bad);
        }
    }

    #[test]
    fn error_names_the_value() {
        let err = "v2.0".parse::<Version>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid version "v2.0": must be "latest" or "v1.x""#
        );
    }

    #[test]
    fn future_versions_evaluate_as_the_newest() {
        assert_eq!(Version::Latest.effective_minor(), NEWEST_MINOR);
        assert_eq!(Version::Minor(99).effective_minor(), NEWEST_MINOR);
        assert_eq!(Version::Minor(24).effective_minor(), 24);
    }

    #[test]
    fn prints_as_psa_does() {
        assert_eq!(Version::Latest.to_string(), "latest");
        assert_eq!(Version::Minor(99).to_string(), "v1.99");
    }

    #[test]
    fn deserializes_from_a_string() {
        let v: Version = serde_json::from_str(r#""v1.30""#).unwrap();
        assert_eq!(v, Version::Minor(30));
        assert!(serde_json::from_str::<Version>(r#""v1.x""#).is_err());
    }
}
