//! The `x-ratelimit-*` headers (draft-polli-ratelimit-headers-03) made from the service's
//! descriptor statuses, as Envoy's `XRateLimitHeaderUtils::populateHeaders` makes them
//! (envoyproxy/envoy `source/extensions/filters/http/ratelimit/ratelimit_headers.cc`).

use std::fmt::Write;

use super::rls::{DescriptorStatus, Unit};

/// A `RateLimit.x_ratelimit_option`: whether one descriptor's status may make the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XRateLimitOption {
    /// The filter's `enable_x_ratelimit_headers` decides.
    Unspecified,
    /// Never.
    Off,
    /// Always.
    DraftVersion03,
}

/// The headers for `statuses` (one per descriptor sent, whose options are `options`), when the
/// filter's `enable_x_ratelimit_headers` is `enabled`:
/// - the status with a `current_limit` and the smallest `limit_remaining` (the first of equals)
///   is the one reported; none, or one whose descriptor turned the headers off: no headers;
/// - `x-ratelimit-limit`: its `requests_per_unit`, then for each status with a limit (and
///   headers on) whose unit has a window, `, <requests_per_unit>;w=<seconds>` and
///   `;name="<name>"` when named;
/// - `x-ratelimit-remaining`: its `limit_remaining`;
/// - `x-ratelimit-reset`: the whole seconds of its `duration_until_reset`.
#[must_use]
pub fn x_ratelimit(
    statuses: &[DescriptorStatus],
    options: &[XRateLimitOption],
    enabled: bool,
) -> Vec<(String, String)> {
    // Statuses beyond the descriptors sent fall back to the filter's setting, as Envoy's do.
    let on = |i: usize| match options.get(i) {
        None | Some(XRateLimitOption::Unspecified) => enabled,
        Some(option) => *option == XRateLimitOption::DraftVersion03,
    };
    let mut least: Option<(usize, &DescriptorStatus)> = None;
    for (i, status) in statuses.iter().enumerate() {
        if status.current_limit.is_none() {
            continue;
        }
        if least.is_none_or(|(_, l)| status.limit_remaining < l.limit_remaining) {
            least = Some((i, status));
        }
    }
    let Some((at, status)) = least else {
        return Vec::new();
    };
    let Some(limit) = status.current_limit.as_ref().filter(|_| on(at)) else {
        return Vec::new();
    };
    let mut value = limit.requests_per_unit.to_string();
    for (i, other) in statuses.iter().enumerate() {
        let Some(other_limit) = other.current_limit.as_ref().filter(|_| on(i)) else {
            continue;
        };
        let window = Unit::window_seconds(other_limit.unit);
        if window == 0 {
            continue;
        }
        let _ = write!(value, ", {};w={window}", other_limit.requests_per_unit);
        if !other_limit.name.is_empty() {
            let _ = write!(value, ";name=\"{}\"", other_limit.name);
        }
    }
    let reset = status.duration_until_reset.map_or(0, |d| d.seconds);
    vec![
        ("x-ratelimit-limit".to_owned(), value),
        (
            "x-ratelimit-remaining".to_owned(),
            status.limit_remaining.to_string(),
        ),
        ("x-ratelimit-reset".to_owned(), reset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::rls::{Code, Duration, RateLimit};
    use super::*;

    fn status(rpu: u32, unit: Unit, name: &str, remaining: u32, reset: i64) -> DescriptorStatus {
        DescriptorStatus {
            code: Code::Ok as i32,
            current_limit: Some(RateLimit {
                name: name.into(),
                requests_per_unit: rpu,
                unit: unit as i32,
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(Duration {
                seconds: reset,
                nanos: 500_000_000,
            }),
        }
    }

    fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn the_least_remaining_limit_is_reported_with_every_window() {
        let statuses = [
            status(10, Unit::Second, "per-ip", 4, 1),
            DescriptorStatus::default(),
            status(1000, Unit::Hour, "", 2, 1800),
            status(5, Unit::Minute, "", 2, 30),
        ];
        let headers = x_ratelimit(&statuses, &[], true);
        assert_eq!(
            pairs(&headers),
            [
                (
                    "x-ratelimit-limit",
                    "1000, 10;w=1;name=\"per-ip\", 1000;w=3600, 5;w=60"
                ),
                ("x-ratelimit-remaining", "2"),
                // Whole seconds: the nanos are dropped.
                ("x-ratelimit-reset", "1800"),
            ],
            "the first of two equally low statuses wins; a status without a limit is skipped"
        );
        assert!(x_ratelimit(&statuses, &[], false).is_empty());
    }

    #[test]
    fn no_limit_no_headers() {
        assert!(x_ratelimit(&[DescriptorStatus::default()], &[], true).is_empty());
        assert!(x_ratelimit(&[], &[], true).is_empty());
    }

    #[test]
    fn a_unit_without_a_window_is_left_out_of_the_policy() {
        let headers = x_ratelimit(&[status(7, Unit::Unknown, "x", 3, 9)], &[], true);
        assert_eq!(
            pairs(&headers),
            [
                ("x-ratelimit-limit", "7"),
                ("x-ratelimit-remaining", "3"),
                ("x-ratelimit-reset", "9")
            ]
        );
    }

    #[test]
    fn descriptor_options_override_the_filter() {
        use XRateLimitOption::{DraftVersion03, Off, Unspecified};
        let statuses = [
            status(10, Unit::Second, "a", 5, 1),
            status(20, Unit::Minute, "b", 1, 2),
        ];
        // The reported status's descriptor turned them off: none at all.
        assert!(x_ratelimit(&statuses, &[Unspecified, Off], true).is_empty());
        // On for the second only, though the filter's are off.
        assert_eq!(
            pairs(&x_ratelimit(&statuses, &[Off, DraftVersion03], false)),
            [
                ("x-ratelimit-limit", "20, 20;w=60;name=\"b\""),
                ("x-ratelimit-remaining", "1"),
                ("x-ratelimit-reset", "2")
            ]
        );
    }
}
