//! `--auto-compaction-mode` and `--auto-compaction-retention`, read as etcd reads them
//! (`embed.parseCompactionRetention`).
//!
//! - A retention that is a non-negative integer means hours in `periodic` mode (`"1"` is one
//!   hour) and a revision count in `revision` mode.
//! - Anything else must be a Go duration (`"30m"`, `"1h30m"`). etcd then uses the duration's
//!   nanoseconds whatever the mode, so `revision` mode with `"1m"` keeps 60,000,000,000
//!   revisions; that is kept as is.
//! - A zero retention (the default, `"0"`) turns auto-compaction off.

use std::time::Duration;

/// etcd's default `--auto-compaction-mode`.
pub const AUTO_COMPACTION_MODE_DEFAULT: &str = "periodic";

/// What the leader compacts on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep `retention` of history (by wall-clock time of the revisions' sampling).
    Periodic { retention: Duration },
    /// Keep the newest `retention_revisions` revisions.
    Revision { retention_revisions: i64 },
}

/// The auto-compaction asked for, `None` when it is off.
pub fn parse_auto_compaction(
    mode: &str,
    retention: &str,
) -> Result<Option<AutoCompaction>, String> {
    let periodic = match mode {
        "periodic" | "" => true,
        "revision" => false,
        other => return Err(format!("unknown auto-compaction-mode \"{other}\"")),
    };
    let retention = retention.trim();
    let nanos: u128 = match retention.parse::<i64>() {
        Ok(count) if count >= 0 && periodic => {
            Duration::from_secs(3600).as_nanos() * u128::from(count.unsigned_abs())
        }
        Ok(count) if count >= 0 => {
            return Ok((count > 0).then_some(AutoCompaction::Revision {
                retention_revisions: count,
            }))
        }
        _ => super::parse_go_duration(retention)
            .map_err(|error| format!("error parsing CompactionRetention: {error}"))?
            .as_nanos(),
    };
    if nanos == 0 {
        return Ok(None);
    }
    let Ok(nanos) = i64::try_from(nanos) else {
        return Err(format!(
            "--auto-compaction-retention {retention} is too long"
        ));
    };
    Ok(Some(if periodic {
        AutoCompaction::Periodic {
            retention: Duration::from_nanos(nanos.unsigned_abs()),
        }
    } else {
        AutoCompaction::Revision {
            retention_revisions: nanos,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn periodic(seconds: u64) -> Option<AutoCompaction> {
        Some(AutoCompaction::Periodic {
            retention: Duration::from_secs(seconds),
        })
    }

    #[test]
    fn integers_are_hours_in_periodic_mode() {
        assert_eq!(parse_auto_compaction("periodic", "1"), Ok(periodic(3600)));
        assert_eq!(
            parse_auto_compaction("periodic", "72"),
            Ok(periodic(72 * 3600))
        );
        assert_eq!(parse_auto_compaction("periodic", "30m"), Ok(periodic(1800)));
        assert_eq!(parse_auto_compaction("periodic", "0"), Ok(None));
        assert_eq!(parse_auto_compaction("periodic", "0s"), Ok(None));
    }

    #[test]
    fn integers_are_revisions_in_revision_mode() {
        assert_eq!(
            parse_auto_compaction("revision", "1000"),
            Ok(Some(AutoCompaction::Revision {
                retention_revisions: 1000
            }))
        );
        assert_eq!(parse_auto_compaction("revision", "0"), Ok(None));
        // etcd's reading of a duration in revision mode: its nanoseconds.
        assert_eq!(
            parse_auto_compaction("revision", "1s"),
            Ok(Some(AutoCompaction::Revision {
                retention_revisions: 1_000_000_000
            }))
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse_auto_compaction("hourly", "1").is_err());
        assert!(parse_auto_compaction("periodic", "-1").is_err());
        assert!(parse_auto_compaction("periodic", "soon").is_err());
    }
}
