//! The `process_*` series of Prometheus's Go client, read from `/proc` at scrape time:
//! CPU time, memory, file descriptors and start time of this process.

use std::path::Path;

/// One reading of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds_total: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    /// The address-space limit (`u64::MAX` when unlimited, as Go's client reports it).
    pub virtual_memory_max_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

/// Reads this process's sample; `None` when `/proc` cannot be read or parsed.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let system_stat = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let fields = StatFields::parse(&stat)?;
    let boot_time_seconds = boot_time_seconds(&system_stat)?;
    let ticks_per_second = sysconf(libc::_SC_CLK_TCK)?;
    let page_bytes = sysconf(libc::_SC_PAGESIZE)?;
    Some(ProcessSample {
        cpu_seconds_total: (fields.user_ticks + fields.system_ticks) as f64
            / ticks_per_second as f64,
        resident_memory_bytes: fields.resident_pages.saturating_mul(page_bytes),
        virtual_memory_bytes: fields.virtual_bytes,
        virtual_memory_max_bytes: soft_limit(&limits, "Max address space")?,
        open_fds: count_entries(Path::new("/proc/self/fd"))?,
        max_fds: soft_limit(&limits, "Max open files")?,
        start_time_seconds: boot_time_seconds as f64
            + fields.start_ticks as f64 / ticks_per_second as f64,
    })
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads its integer argument and returns a value; it touches no
    // memory of ours.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|value| *value > 0)
}

fn count_entries(dir: &Path) -> Option<u64> {
    Some(std::fs::read_dir(dir).ok()?.count() as u64)
}

/// The fields of `/proc/self/stat` used here (proc(5) numbering).
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    /// 14: utime, 15: stime (clock ticks).
    user_ticks: u64,
    system_ticks: u64,
    /// 22: starttime (clock ticks after boot).
    start_ticks: u64,
    /// 23: vsize (bytes).
    virtual_bytes: u64,
    /// 24: rss (pages).
    resident_pages: u64,
}

impl StatFields {
    fn parse(stat: &str) -> Option<StatFields> {
        // The command name (field 2) is in parentheses and may hold spaces and ')': the
        // fields after it follow the last ')'.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
        // `fields[0]` is field 3 (state).
        let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
        Some(StatFields {
            user_ticks: field(14)?,
            system_ticks: field(15)?,
            start_ticks: field(22)?,
            virtual_bytes: field(23)?,
            resident_pages: field(24)?,
        })
    }
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time_seconds(system_stat: &str) -> Option<u64> {
    system_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The soft limit of a `/proc/self/limits` row (`unlimited` is `u64::MAX`).
fn soft_limit(limits: &str, row: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with(row))?;
    let soft = line[row.len()..].split_ascii_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_strange_command_name() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 \
                    1234 8192000 300 18446744073709551615";
        let fields = StatFields::parse(stat).expect("parsable");
        assert_eq!(
            fields,
            StatFields {
                user_ticks: 250,
                system_ticks: 50,
                start_ticks: 1234,
                virtual_bytes: 8_192_000,
                resident_pages: 300,
            }
        );
    }

    #[test]
    fn parses_limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n\
                      Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(soft_limit(limits, "Max address space"), Some(u64::MAX));
        assert_eq!(
            boot_time_seconds("cpu 1 2\nbtime 1796674000\n"),
            Some(1_796_674_000)
        );
    }

    #[test]
    fn samples_this_process() {
        let sample = sample().expect("/proc is readable");
        assert!(sample.resident_memory_bytes > 0);
        assert!(sample.open_fds > 0);
        assert!(sample.max_fds >= sample.open_fds);
        assert!(sample.start_time_seconds > 1.0e9);
    }
}
