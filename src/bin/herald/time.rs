//! RFC 3339 timestamps in UTC with milliseconds, the precision of Apple's 410 timestamps.
//!
//! Printed as `2025-10-09T08:53:20.123Z`; read as that, with or without fractional seconds or
//! with a `+hh:mm` offset, or as milliseconds since the UNIX epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `2025-10-09T08:53:20.123Z` (times before 1970 print as the epoch: APNs has none).
pub(crate) fn format_millis(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Reads an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, `...00.250Z`, `...00+02:00`) or a
/// number of milliseconds since the UNIX epoch (`1767225600000`).
pub(crate) fn parse(s: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "{s:?} is not a time: give RFC 3339 in UTC or with an offset \
             (2026-01-01T00:00:00Z, 2026-01-01T00:00:00.250Z) or milliseconds since 1970"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|_| bad())?;
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    // Every valid form is ASCII; from here on the text is read as bytes, and a byte offset is
    // never a position inside a character.
    if !s.is_ascii() {
        return Err(bad());
    }
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = b.get(r).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = i64::from(y);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return Err(bad());
    }
    // Fraction: any number of digits, kept to the millisecond.
    let mut i = 19;
    let mut millis = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_secs: i64 = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let v = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -v } else { v }
        }
        _ => return Err(bad()),
    };
    let secs =
        days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(format_millis(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_millis(at(1_760_000_000_123)),
            "2025-10-09T08:53:20.123Z"
        );
        assert_eq!(
            format_millis(at(951_782_400_007)),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            format_millis(at(4_102_444_799_999)),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_what_it_prints_and_millis() {
        for ms in [
            0,
            1_760_000_000_123,
            951_782_400_007,
            4_102_444_799_999,
            1_767_225_600_000,
        ] {
            assert_eq!(parse(&format_millis(at(ms))), Ok(at(ms)));
            assert_eq!(parse(&ms.to_string()), Ok(at(ms)));
        }
        assert_eq!(parse("2026-01-01T00:00:00Z"), Ok(at(1_767_225_600_000)));
        assert_eq!(parse("2026-01-01T00:00:00.5Z"), Ok(at(1_767_225_600_500)));
        assert_eq!(
            parse("2026-01-01T00:00:00.123456Z"),
            Ok(at(1_767_225_600_123))
        );
        assert_eq!(
            parse("2026-01-01T02:00:00+02:00"),
            Ok(at(1_767_225_600_000))
        );
        assert_eq!(
            parse("2025-12-31T23:30:00-00:30"),
            Ok(at(1_767_225_600_000))
        );
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for s in [
            "",
            "yesterday",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+2:00",
            "1969-12-31T23:59:59Z",
            "-5",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn non_ascii_anywhere_is_not_a_time_and_never_a_panic() {
        let good = "2026-01-01T00:00:00.250+02:00";
        // Each byte in turn replaced by a two- or three-byte character, so that every fixed
        // byte offset the parser reads falls inside one somewhere.
        for c in ["é", "€", "٣"] {
            for at in 0..good.len() {
                let s = format!("{}{c}{}", &good[..at], &good[at + 1..]);
                assert!(parse(&s).unwrap_err().contains("not a time"), "{s:?}");
            }
        }
        for s in [
            "2026-01-01T00:00:00é0:00",
            "2026-01-01T00:00:00.5é0:00",
            "１７６７２２５６００００",
        ] {
            assert!(parse(s).unwrap_err().contains("not a time"), "{s:?}");
        }
    }
}
