//! Time in the forms this tool shows and takes: seconds since the epoch, UTC dates, and the
//! durations people type (`30s`, `10m`, `1h`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `--keep-unlocked` and `keep-unlocked` accept: a day. Longer is no longer
/// "keep it unlocked for this session", and it keeps `now + duration` far from overflow.
pub const MAX_KEEP_UNLOCKED: Duration = Duration::from_secs(24 * 3600);

/// Seconds since the epoch now (0 if the clock is before 1970).
pub fn now() -> u64 {
    to_secs(SystemTime::now())
}

/// Seconds since the epoch of `t` (0 before 1970).
pub fn to_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time `secs` after the epoch.
pub fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn utc_minute(secs: u64) -> String {
    let full = humantime::format_rfc3339_seconds(from_secs(secs)).to_string();
    // 2023-11-14T22:13:20Z
    format!("{} {} UTC", &full[..10], &full[11..16])
}

/// `YYYY-MM-DD` (UTC).
pub fn utc_date(secs: u64) -> String {
    humantime::format_rfc3339_seconds(from_secs(secs)).to_string()[..10].to_string()
}

/// A duration as typed: a number with a unit (`90s`, `10m`, `1h30m`; a bare number is
/// seconds; `off` is zero), at most [`MAX_KEEP_UNLOCKED`]. No spaces: the value also comes
/// from a config line and an environment variable, where a space is more likely a mistake.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(Duration::ZERO);
    }
    if text.contains(char::is_whitespace) {
        return Err(format!("{text:?} is not a duration like 30s, 10m or 1h"));
    }
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write it like 30s, 10m or 1h"))?,
    };
    if parsed > MAX_KEEP_UNLOCKED {
        return Err(format!(
            "{text} is longer than the longest allowed, {}",
            humantime::format_duration(MAX_KEEP_UNLOCKED)
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10000000000000000h").is_err());
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("off"), Ok(Duration::ZERO));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }
}
