//! Durations as a spec writes them, in Go's `time.Duration` notation
//! (what Kubernetes and Cluster API users type): whole numbers with the
//! units `h`, `m` and `s`, in that order, e.g. `90s`, `5m`, `1h30m`; `0`
//! alone is zero. Fractions and sub-second units are refused: nothing a
//! health check waits for is that fine.
//!
//! [`format_duration`] writes the canonical form (`1m30s` for `90s`), which
//! [`parse_duration`] reads back to the same value.

use std::time::Duration;

/// Longest duration accepted anywhere (a sanity bound against overflow:
/// about 114 years).
const MAX_SECONDS: u64 = 1 << 32;

/// Parses `90s`, `5m`, `1h30m`, `0`. The error says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = || {
        format!(
            "`{}` is not a duration like `90s`, `5m` or `1h30m` (whole numbers with h, m, s)",
            super::bounds::quoted(text)
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(expected());
    }
    let mut seconds: u64 = 0;
    let mut rest = text;
    // Units must come largest first, each at most once.
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 10 {
            return Err(expected());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit = match rest.as_bytes().first() {
            Some(b'h') => 3600,
            Some(b'm') if rest.as_bytes().get(1) != Some(&b's') => 60,
            Some(b's') => 1,
            _ => return Err(expected()),
        };
        rest = &rest[1..];
        if unit >= last_unit {
            return Err(expected());
        }
        last_unit = unit;
        seconds = value
            .checked_mul(unit)
            .and_then(|s| s.checked_add(seconds))
            .filter(|s| *s <= MAX_SECONDS)
            .ok_or_else(expected)?;
    }
    Ok(Duration::from_secs(seconds))
}

/// The canonical form: `0s`, `45s`, `1m30s`, `2h`, `1h0m5s` as Go writes
/// hours with seconds, but without Go's trailing zero units (`5m`, not
/// `5m0s`). Sub-second parts are dropped (a spec never has them).
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return "0s".into();
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 || (hours > 0 && seconds > 0) {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations_parse() {
        for (text, seconds) in [
            ("0", 0),
            ("0s", 0),
            ("90s", 90),
            ("5m", 300),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2h0m5s", 7205),
            ("1m30s", 90),
            (" 10m ", 600),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_saying_what_is_expected() {
        for text in [
            "", "5", "m", "5 m", "-5m", "1.5h", "300ms", "5d", "30m1h", "5m5m", "5M", "1h 30m",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(
                error.contains("is not a duration like `90s`"),
                "{text}: {error}"
            );
        }
        assert!(parse_duration("99999999999h").is_err());
    }

    #[test]
    fn the_canonical_form_reads_back_the_same() {
        for seconds in [0, 1, 59, 60, 90, 300, 3600, 3605, 5400, 86400, 90061] {
            let duration = Duration::from_secs(seconds);
            let text = format_duration(duration);
            assert_eq!(parse_duration(&text), Ok(duration), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(3605)), "1h0m5s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }
}
