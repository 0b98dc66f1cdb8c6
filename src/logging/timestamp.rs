//! `ts` as etcd 3.6 writes it: `2026-12-07T23:10:01.123456Z` (RFC 3339, microseconds, UTC).

use crate::civil_date::civil_from_days;
use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: u64 = 86_400;

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
