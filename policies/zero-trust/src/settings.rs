//! The filter's settings (the plugin configuration): parsed, validated and compiled once, when
//! the proxy configures the filter; a request never sees an invalid setting.

use palisade_sdk::{PolicySettings, SettingsError};
use serde::Deserialize;
use serde_json::Value;

use crate::authentication::{self, Authenticator};
use crate::authorization::{Authorizer, ConfigError, Options};

/// Settings of the `zero-trust` policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// AuthorizationPolicy objects (or their `spec`s), as in the cluster. None by default.
    pub policies: Value,
    /// MeshConfig's `extensionProviders` (the list, as in the mesh config): the external
    /// authorizers CUSTOM policies name (`envoyExtAuthzHttp`; proxy home only). None by default.
    pub extension_providers: Value,
    /// RequestAuthentication objects (or their `spec`s), as in the cluster: the JWT rules
    /// (proxy home only). None by default: every request is anonymous.
    pub authentication: Value,
    /// How tokens are checked beyond what RequestAuthentication says.
    pub jwt: Jwt,
    /// Device trust (ours): one `jwtRules` entry for a device attestation token, whose claims
    /// are `device.claims[..]` in conditions. None by default.
    pub device: Value,
    /// The zone of `time.hour` and `time.weekday`: `UTC` (the default) or a fixed offset such
    /// as `+02:00` (no daylight-saving rules).
    pub time_zone: String,
    /// Data sensitivity (ours): labelled routes and what each label requires.
    pub sensitivity: crate::sensitivity::Settings,
    /// What happens when no ALLOW policy exists at all: `ALLOW` (Istio) or `DENY` (strict
    /// zero trust). `ALLOW` by default.
    pub default_action: DefaultAction,
    /// The status of a denial (400..=599); 403 by default, as Envoy's RBAC filter.
    pub deny_status: u16,
    /// The body of a denial; `RBAC: access denied` by default, as Envoy's RBAC filter.
    pub deny_body: String,
    /// The audit trail: one JSON log line per decision.
    pub audit: Audit,
}

/// `defaultAction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DefaultAction {
    /// Istio's behaviour: no ALLOW policy lets everything through.
    #[default]
    Allow,
    /// Nothing passes without an ALLOW match.
    Deny,
}

/// `jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Jwt {
    /// Allowed clock difference for `exp` and `nbf` (`60s`, Envoy's default).
    pub clock_skew: String,
    /// Verified tokens remembered per VM, so a repeated token costs no signature check (100,
    /// Envoy's default; 0 turns the cache off).
    pub cache_size: usize,
}

impl Default for Jwt {
    fn default() -> Self {
        Self {
            clock_skew: "60s".to_owned(),
            cache_size: authentication::DEFAULT_CACHE_SIZE,
        }
    }
}

/// `audit`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Audit {
    /// Whether decisions are logged at all; true by default.
    pub enabled: bool,
    /// The share of allowed requests that are logged, 0.0 to 1.0 (denials always are);
    /// 1.0 by default. Chosen from the request's nonce, so a request is logged or not
    /// whatever the proxy's worker.
    pub allow_sampling: f64,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_sampling: 1.0,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policies: Value::Array(Vec::new()),
            extension_providers: Value::Array(Vec::new()),
            authentication: Value::Array(Vec::new()),
            jwt: Jwt::default(),
            device: Value::Null,
            time_zone: "UTC".to_owned(),
            sensitivity: crate::sensitivity::Settings::default(),
            default_action: DefaultAction::Allow,
            deny_status: 403,
            deny_body: "RBAC: access denied".to_owned(),
            audit: Audit::default(),
        }
    }
}

impl Settings {
    /// The compiled policies.
    ///
    /// # Errors
    /// [`SettingsError`] at `policies<path>` for the first policy that cannot be used.
    pub fn authorizer(&self) -> Result<Authorizer, SettingsError> {
        let options = Options {
            default_deny: self.default_action == DefaultAction::Deny,
        };
        Authorizer::new(&self.policies, options).map_err(|ConfigError { path, message }| {
            SettingsError::new(below("policies", &path), message)
        })
    }

    fn jwt_options(&self) -> Result<authentication::Options, SettingsError> {
        let clock_skew = authentication::duration(&self.jwt.clock_skew)
            .map_err(|e| SettingsError::new("jwt.clockSkew", e))?;
        Ok(authentication::Options {
            clock_skew,
            cache_size: self.jwt.cache_size,
        })
    }

    /// The compiled RequestAuthentications.
    ///
    /// # Errors
    /// [`SettingsError`] at `authentication<path>` or `jwt.<field>` for the first value that
    /// cannot be used.
    pub fn authenticator(&self) -> Result<Authenticator, SettingsError> {
        Authenticator::new(&self.authentication, self.jwt_options()?).map_err(
            |authentication::ConfigError { path, message }| {
                SettingsError::new(format!("authentication{path}"), message)
            },
        )
    }

    /// The compiled device rule.
    ///
    /// # Errors
    /// [`SettingsError`] at `device<path>` or `jwt.<field>`.
    pub fn device_authenticator(&self) -> Result<Authenticator, SettingsError> {
        Authenticator::device(&self.device, self.jwt_options()?).map_err(
            |authentication::ConfigError { path, message }| {
                SettingsError::new(format!("device{path}"), message)
            },
        )
    }

    /// The compiled sensitivity labels.
    ///
    /// # Errors
    /// [`SettingsError`] at `sensitivity<path>`.
    pub fn sensitivity(&self) -> Result<crate::sensitivity::Sensitivity, SettingsError> {
        crate::sensitivity::Sensitivity::new(&self.sensitivity).map_err(
            |ConfigError { path, message }| {
                SettingsError::new(format!("sensitivity{path}"), message)
            },
        )
    }

    /// `timeZone` as seconds east of UTC.
    ///
    /// # Errors
    /// [`SettingsError`] at `timeZone` for anything but `UTC`, `Z` or `±HH:MM` within ±18:00.
    pub fn utc_offset(&self) -> Result<i32, SettingsError> {
        let zone = self.time_zone.trim();
        if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
            return Ok(0);
        }
        let bad = || {
            SettingsError::new(
                "timeZone",
                format!("{zone:?} is not UTC or an offset such as +02:00 or -05:30"),
            )
        };
        let (sign, rest) = match zone.split_at_checked(1) {
            Some(("+", rest)) => (1, rest),
            Some(("-", rest)) => (-1, rest),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h = h.parse::<i32>().map_err(|_| bad())?;
        let m = m.parse::<i32>().map_err(|_| bad())?;
        if !(0..=18).contains(&h) || !(0..60).contains(&m) || (h == 18 && m > 0) {
            return Err(bad());
        }
        Ok(h.saturating_mul(3_600)
            .saturating_add(m.saturating_mul(60))
            .saturating_mul(sign))
    }
}

/// Settings compiled once per instance, in either home.
#[derive(Debug)]
pub struct Compiled {
    /// The settings as given.
    pub settings: Settings,
    /// Their policies, compiled.
    pub authorizer: Authorizer,
    /// Their JWT rules, compiled (none at admission).
    pub authenticator: Authenticator,
    /// The device rule, compiled (none at admission).
    pub device: Authenticator,
    /// `timeZone`, seconds east of UTC.
    pub utc_offset: i32,
    /// The sensitivity labels, compiled.
    pub sensitivity: crate::sensitivity::Sensitivity,
    /// The provider CUSTOM policies call, if there are any (one per workload, as in Istio).
    pub custom: Option<crate::ext_authz::Provider>,
}

impl Settings {
    /// Compiles the settings for a home that can call external authorizers: the provider of
    /// the CUSTOM policies must be among `extensionProviders`, of kind `envoyExtAuthzHttp`.
    ///
    /// # Errors
    /// [`SettingsError`] for a policy or provider that cannot be used.
    pub fn compile(self) -> Result<Compiled, SettingsError> {
        let providers = crate::ext_authz::Providers::new(&self.extension_providers)
            .map_err(|e| SettingsError::new(format!("extensionProviders{}", e.path), e.message))?;
        let authorizer = self.authorizer()?;
        let custom = match authorizer.custom_policy() {
            Some(custom) => Some(
                providers
                    .get(&custom.provider)
                    .map_err(|message| {
                        SettingsError::new(below("policies", &custom.provider_at), message)
                    })?
                    .clone(),
            ),
            None => None,
        };
        self.compile_with(authorizer, custom)
    }

    /// Compiles the settings for a home that cannot ask an external authorizer: CUSTOM
    /// policies are refused with `why` (the home and what it lacks).
    ///
    /// # Errors
    /// [`SettingsError`] for a policy that cannot be used, or a CUSTOM one.
    pub fn compile_without_custom(self, why: &str) -> Result<Compiled, SettingsError> {
        let authorizer = self.authorizer()?;
        if let Some(custom) = authorizer.custom_policy() {
            return Err(SettingsError::new(format!("policies{}", custom.at), why));
        }
        self.compile_with(authorizer, None)
    }

    fn compile_with(
        self,
        authorizer: Authorizer,
        custom: Option<crate::ext_authz::Provider>,
    ) -> Result<Compiled, SettingsError> {
        let authenticator = self.authenticator()?;
        let device = self.device_authenticator()?;
        let utc_offset = self.utc_offset()?;
        let sensitivity = self.sensitivity()?;
        Ok(Compiled {
            settings: self,
            authorizer,
            authenticator,
            device,
            utc_offset,
            sensitivity,
            custom,
        })
    }
}

/// `path` (as a [`ConfigError`] gives it: `[i].spec.x`, `spec.x` or empty) below `field`.
fn below(field: &str, path: &str) -> String {
    if path.is_empty() || path.starts_with('[') {
        format!("{field}{path}")
    } else {
        format!("{field}.{path}")
    }
}

impl PolicySettings for Settings {
    /// Checks the status and sampling ranges.
    fn validate(&self) -> Result<(), SettingsError> {
        if !(400..=599).contains(&self.deny_status) {
            return Err(SettingsError::new(
                "denyStatus",
                format!("{} is not an HTTP error status (400-599)", self.deny_status),
            ));
        }
        if !(0.0..=1.0).contains(&self.audit.allow_sampling) {
            return Err(SettingsError::new(
                "audit.allowSampling",
                // Not the number itself: formatting a float links its printer (~20 KB).
                "is not between 0.0 and 1.0",
            ));
        }
        // What compiles (policies, key sets, zone, labels) is checked by `prepare`, which every
        // host runs after this (a settings check included): compiling here too would do it
        // twice at start-up.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn custom_policies_need_a_provider_and_a_home_that_calls_it() {
        let settings: Settings = palisade_sdk::parse_settings(
            r#"{"policies": [{"rules": [{}]},
                {"action": "CUSTOM", "provider": {"name": "ext-authz"}, "rules": [{}]}]}"#,
        )
        .unwrap();
        for (result, path, why) in [
            (
                crate::http::prepare(settings.clone()).map(|_| ()),
                "policies[1].provider.name",
                "not among extensionProviders",
            ),
            (
                crate::admission::prepare(settings.clone()).map(|_| ()),
                "policies[1]",
                "not supported at admission",
            ),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.path, path);
            assert!(err.message.contains(why), "{err}");
        }
        // Compiling is `prepare`'s (which every host runs after parsing), not `validate`'s.
        let bad = palisade_sdk::parse_settings::<Settings>(
            r#"{"policies": [{"rules": [{"to": [{"operation": {"ports": ["x"]}}]}]}]}"#,
        )
        .and_then(crate::http::prepare);
        assert_eq!(
            bad.unwrap_err().path,
            "policies[0].rules[0].to[0].operation.ports[0]"
        );
    }
}
