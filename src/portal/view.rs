//! How the portal writes times, durations and expiries. Times are rendered in UTC inside
//! `<time datetime>`; the portal's script shows them in the viewer's own zone (UTC stays in the title).

use crate::clock::{self, Millis};

/// An instant for a `<time>` element: its RFC 3339 value and its UTC text.
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub text: String,
}

pub fn when(ms: Millis) -> When {
    let iso = clock::rfc3339(ms);
    // 2026-11-27T14:03:09Z -> 2026-11-27 14:03 UTC
    let text = match (iso.get(..10), iso.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => iso.clone(),
    };
    When { iso, text }
}

/// A duration in words: `just now`, `12 s`, `4 min`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "none".into(),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

/// How a license's expiry reads: `never`, `2027-01-31`, or `expired 2026-01-31`.
pub fn expiry(expires_at: Option<Millis>, now: Millis) -> String {
    match expires_at {
        None => "never".into(),
        Some(e) if e <= now => format!("expired {}", clock::utc_day(e)),
        Some(e) => clock::utc_day(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration(0), "none");
        assert_eq!(duration(-5), "none");
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(duration(7200), "2 h");
        assert_eq!(duration(7500), "2 h 5 min");
        assert_eq!(duration(90_000), "1 d 1 h");
    }

    #[test]
    fn times_read_in_utc() {
        let w = when(1_795_000_000_000);
        assert_eq!(w.iso, "2026-11-18T11:06:40Z");
        assert_eq!(w.text, "2026-11-18 11:06 UTC");
        assert_eq!(expiry(None, 0), "never");
        assert_eq!(expiry(Some(1_795_000_000_000), 0), "2026-11-18");
        assert_eq!(expiry(Some(1_000), 2_000), "expired 1970-01-01");
    }
}
