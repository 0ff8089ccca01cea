//! Which of Envoy's two rate limit filters a plugin configuration is: the local one
//! (`LocalRateLimit`) or the global one (`RateLimit`, calling a rate limit service), by its
//! `@type`, else by the presence of `domain` (only the global filter has one).

use palisade_sdk::{PolicySettings, SettingsError};
use serde::de;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{Prepared, Settings, global, settings};

/// The plugin configuration: either filter's `typed_config`.
#[derive(Debug, Clone)]
pub enum Config {
    /// `envoy.filters.http.local_ratelimit`.
    Local(Box<Settings>),
    /// `envoy.filters.http.ratelimit`.
    Global(Box<global::Settings>),
}

impl Default for Config {
    /// No configuration is the local filter's (which then lacks its `stat_prefix`).
    fn default() -> Self {
        Self::Local(Box::default())
    }
}

/// The fields that choose the filter; everything else is the chosen filter's to read.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "@type")]
    type_url: Option<String>,
    domain: Option<de::IgnoredAny>,
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The document is read twice, from its own text, so that the chosen filter's errors
        // name the field and the place in the text as they did before there were two filters.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let probe: Probe = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        let global = match probe.type_url.as_deref() {
            Some(settings::TYPE_URL) => false,
            Some(global::settings::TYPE_URL) => true,
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "@type: is {other:?}, neither {:?} nor {:?}",
                    settings::TYPE_URL,
                    global::settings::TYPE_URL
                )));
            }
            None => probe.domain.is_some(),
        };
        let mut text = serde_json::Deserializer::from_str(raw.get());
        let chosen = if global {
            serde_path_to_error::deserialize(&mut text).map(|s| Self::Global(Box::new(s)))
        } else {
            serde_path_to_error::deserialize(&mut text).map(|s| Self::Local(Box::new(s)))
        };
        chosen.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                de::Error::custom(inner)
            } else {
                de::Error::custom(format!("{path}: {inner}"))
            }
        })
    }
}

impl PolicySettings for Config {
    fn validate(&self) -> Result<(), SettingsError> {
        Filter::new(self).map(|_| ())
    }
}

/// The chosen filter, compiled once per VM.
#[derive(Debug, Clone)]
pub enum Filter {
    /// The local filter.
    Local(Box<Prepared>),
    /// The global filter.
    Global(Box<global::Prepared>),
}

impl Filter {
    /// Checks and compiles the configuration.
    ///
    /// # Errors
    /// [`SettingsError`] naming the field, as Envoy would refuse it, or that a filter cannot
    /// honour.
    pub fn new(config: &Config) -> Result<Self, SettingsError> {
        Ok(match config {
            Config::Local(settings) => Self::Local(Box::new(Prepared::new(settings)?)),
            Config::Global(settings) => Self::Global(Box::new(global::Prepared::new(settings)?)),
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use palisade_sdk::parse_settings;

    #[test]
    fn the_type_url_or_a_domain_chooses_the_filter() {
        let chosen = |json: &str| match parse_settings::<Config>(json) {
            Ok(Config::Local(_)) => "local".to_owned(),
            Ok(Config::Global(_)) => "global".to_owned(),
            Err(e) => e.to_string(),
        };
        let service =
            r#""rate_limit_service": {"grpc_service": {"envoy_grpc": {"cluster_name": "rls"}}}"#;
        assert_eq!(chosen(r#"{"stat_prefix": "a"}"#), "local");
        assert_eq!(
            chosen(&format!(r#"{{"domain": "d", {service}}}"#)),
            "global"
        );
        assert_eq!(
            chosen(&format!(
                r#"{{"@type": "{}", "domain": "d", {service}}}"#,
                global::settings::TYPE_URL
            )),
            "global"
        );
        // The local type with a domain: the local filter has no such field.
        assert!(
            chosen(&format!(
                r#"{{"@type": "{}", "stat_prefix": "a", "domain": "d"}}"#,
                settings::TYPE_URL
            ))
            .starts_with("domain: unknown field `domain`"),
        );
        assert_eq!(
            chosen(&format!(r#"{{"@type": "{}"}}"#, global::settings::TYPE_URL)),
            "domain: is required"
        );
        assert!(chosen(r#"{"@type": "x"}"#).starts_with("@type: is \"x\", neither"));
    }

    #[test]
    fn errors_keep_their_path_and_place() {
        let err = parse_settings::<Config>(r#"{"domain": "d", "timeout": "20ms"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timeout: \"20ms\" is not a duration (seconds with an `s`: \"1s\", \"0.5s\") at line 1 column 34"
        );
    }
}
