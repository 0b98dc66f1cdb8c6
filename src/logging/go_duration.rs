//! Durations as Go's `time.Duration.String` writes them (zap's `StringDurationEncoder`, which
//! etcd uses for `took`, `expected-duration`, ...): `1ns`, `174.474µs`, `8.079641ms`, `7s`,
//! `1m30s`, `1h0m0s`.

use std::time::Duration;

/// `whole` followed by `fraction` (of `digits` decimal places) without trailing zeros.
fn with_fraction(whole: u128, fraction: u128, digits: u32, unit: &str) -> String {
    if fraction == 0 {
        return format!("{whole}{unit}");
    }
    let padded = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}{unit}", padded.trim_end_matches('0'))
}

/// Go's `Duration.String` for `duration`.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    const MICRO: u128 = 1_000;
    const MILLI: u128 = 1_000_000;
    const SECOND: u128 = 1_000_000_000;
    match nanos {
        0 => "0s".to_string(),
        n if n < MICRO => format!("{n}ns"),
        n if n < MILLI => with_fraction(n / MICRO, n % MICRO, 3, "µs"),
        n if n < SECOND => with_fraction(n / MILLI, n % MILLI, 6, "ms"),
        n => {
            let whole_seconds = n / SECOND;
            let seconds = with_fraction(whole_seconds % 60, n % SECOND, 9, "s");
            let minutes = whole_seconds / 60;
            if minutes == 0 {
                seconds
            } else if minutes < 60 {
                format!("{minutes}m{seconds}")
            } else {
                format!("{}h{}m{seconds}", minutes / 60, minutes % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn as_go_writes_them() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(1)), "1ns");
        assert_eq!(go_duration(Duration::from_nanos(174_474)), "174.474µs");
        assert_eq!(go_duration(Duration::from_nanos(8_079_641)), "8.079641ms");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(7)), "7s");
        assert_eq!(go_duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3_600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(2_000)), "2ms");
    }
}
