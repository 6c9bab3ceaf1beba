//! Times and durations as the status surfaces say them.

use std::time::{Duration, SystemTime};

/// RFC 3339 time for status output.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one format.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// A duration in the words an operator reads at a glance, never more precise than that:
/// "840 ms", "2.3 s", "42 s", "4 min 12 s", "1 h 5 min". The pages' script says them the same way.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 9950 {
        let tenths = (ms + 50) / 100;
        return match tenths % 10 {
            0 => format!("{} s", tenths / 10),
            t => format!("{}.{t} s", tenths / 10),
        };
    }
    let s = (ms + 500) / 1000;
    if s < 60 {
        return format!("{s} s");
    }
    if s < 3600 {
        return match s % 60 {
            0 => format!("{} min", s / 60),
            r => format!("{} min {r} s", s / 60),
        };
    }
    let m = (s + 30) / 60;
    match m % 60 {
        0 => format!("{} h", m / 60),
        r => format!("{} h {r} min", m / 60),
    }
}

/// RFC 3339 time from milliseconds since the epoch (ledger timestamps).
pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_683_200)), "2025-11-21T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn durations_read_at_a_glance() {
        let said: Vec<String> =
            [0, 999, 1000, 1049, 2340, 9949, 9950, 59_499, 59_500, 252_000, 3_599_500, 3_900_000, 90_000_000]
                .into_iter()
                .map(human_ms)
                .collect();
        assert_eq!(
            said,
            [
                "0 ms",
                "999 ms",
                "1 s",
                "1 s",
                "2.3 s",
                "9.9 s",
                "10 s",
                "59 s",
                "1 min",
                "4 min 12 s",
                "1 h",
                "1 h 5 min",
                "25 h"
            ]
        );
    }
}
