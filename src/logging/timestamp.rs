//! `ts` as etcd 3.6 writes it: `2026-12-07T23:10:01.123456Z` (RFC 3339, microseconds, UTC).

use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: u64 = 86_400;

/// The civil (proleptic Gregorian) date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    let z = days_since_epoch + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `time` in etcd 3.6's layout to `out`.
pub fn write_utc_micros(time: SystemTime, out: &mut String) {
    use std::fmt::Write as _;
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / SECONDS_PER_DAY);
    let second_of_day = seconds % SECONDS_PER_DAY;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60,
        since_epoch.subsec_micros()
    );
}

/// [`write_utc_micros`] into a new string.
pub fn utc_micros(time: SystemTime) -> String {
    let mut text = String::with_capacity(27);
    write_utc_micros(time, &mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn layout_matches_etcd_3_6() {
        assert_eq!(utc_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2026-12-07T22:57:43.870210Z, a line of a real etcd 3.6 log.
        let time = UNIX_EPOCH + Duration::new(1_796_684_263, 870_210_999);
        assert_eq!(utc_micros(time), "2026-12-07T22:57:43.870210Z");
        // A leap day.
        let time = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_micros(time), "2000-02-29T00:00:00.000000Z");
    }
}
