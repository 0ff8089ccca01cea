//! Times as policies read them from documents (RFC 3339).

use std::time::Duration;

/// Parses an RFC 3339 time, `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or an offset
/// (`+02:00`), into the time since the Unix epoch; `None` when it is not one, or before 1970.
///
/// ```
/// use palisade_sdk::time::parse_rfc3339;
/// use std::time::Duration;
/// assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Some(Duration::from_secs(1_767_225_600)));
/// assert_eq!(parse_rfc3339("2026-01-01T02:00:00+02:00"), Some(Duration::from_secs(1_767_225_600)));
/// assert_eq!(parse_rfc3339("2025-12-31T23:00:00.5-01:00"), Some(Duration::new(1_767_225_600, 500_000_000)));
/// assert_eq!(parse_rfc3339("2026-01-01 00:00:00"), None);
/// ```
#[must_use]
#[expect(
    clippy::arithmetic_side_effects,
    reason = "month, day, hour, minute and second are range-checked first; the year's arithmetic is checked"
)]
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let (date, time) = text.split_once(['T', 't'])?;
    let (time, offset) = match time.strip_suffix(['Z', 'z']) {
        Some(time) => (time, 0_i64),
        None => {
            let at = time.rfind(['+', '-'])?;
            let (time, offset) = time.split_at(at);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = offset.get(1..)?.split_once(':')?;
            let (hours, minutes) = (hours.parse::<u8>().ok()?, minutes.parse::<u8>().ok()?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            (
                time,
                sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60),
            )
        }
    };
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut time = time.splitn(3, ':').map(str::parse::<u64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month.checked_add(9)?).rem_euclid(12);
    let doy = (153_i64.checked_mul(mp)?.checked_add(2)?) / 5 + day.checked_sub(1)?;
    let doe = yoe.checked_mul(365)? + yoe / 4 - yoe / 100 + doy;
    let days = era
        .checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)?;
    let seconds = days
        .checked_mul(86_400)?
        .checked_add(i64::try_from(hour * 3600 + minute * 60 + second).ok()?)?
        .checked_sub(offset)?;
    let seconds = u64::try_from(seconds).ok()?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        digits.parse::<u32>().ok()?
    };
    Some(Duration::new(seconds, nanos))
}
