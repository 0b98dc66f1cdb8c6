//! `--feature-gates=Name=bool,...`: etcd's server feature gates, each implemented, noticed or
//! refused like a flag. `AllAlpha` and `AllBeta` set every alpha (beta) gate not named
//! explicitly. Error texts are etcd's.

use std::collections::BTreeMap;

/// A gate's maturity, which decides its default and `AllAlpha`/`AllBeta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Alpha,
    Beta,
}

/// What Capstan does when a gate is set to the value opposite to etcd's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateOutcome {
    /// Reaches `ServerConfig` and has its effect (the field named here).
    Implemented(&'static str),
    /// Capstan behaves as if the gate were on, always; turning it off logs this reason.
    AlwaysOn(&'static str),
    /// Accepted with a one-line notice.
    Notice(&'static str),
    /// Refused with this reason.
    Refused(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub name: &'static str,
    pub stage: Stage,
    pub default: bool,
    /// The etcd release that knows the gate (etcd 3.7's are accepted too).
    pub since: &'static str,
    pub outcome: GateOutcome,
}

/// etcd's gates (`server/features/etcd_features.go`), in its help's order.
pub const GATES: &[Gate] = &[
    Gate {
        name: "CompactHashCheck",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::Refused(
            "the leader's periodic check of followers' compaction hashes is not implemented; a \
             safety check is never accepted without its effect",
        ),
    },
    Gate {
        name: "InitialCorruptCheck",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::Implemented(
            "the start-up hash check against peers (`server::corrupt_check`): \
             `ServerConfig::initial_corrupt_check`",
        ),
    },
    Gate {
        name: "LeaseCheckpoint",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::AlwaysOn(
            "Capstan always checkpoints lease TTLs, so a new leader keeps their remaining time",
        ),
    },
    Gate {
        name: "LeaseCheckpointPersist",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::AlwaysOn(
            "Capstan always persists lease checkpoints (as etcd 3.6 always does)",
        ),
    },
    Gate {
        name: "SetMemberLocalAddr",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::Notice(
            "peer connections leave from the address the kernel picks, not the advertised one",
        ),
    },
    Gate {
        name: "StopGRPCServiceOnDefrag",
        stage: Stage::Alpha,
        default: false,
        since: "3.6",
        outcome: GateOutcome::Notice(
            "Capstan defragments online and keeps serving during Maintenance.Defragment",
        ),
    },
    Gate {
        name: "TxnModeWriteWithSharedBuffer",
        stage: Stage::Beta,
        default: true,
        since: "3.6",
        outcome: GateOutcome::Notice("a bbolt buffering detail; Capstan has no bbolt"),
    },
    Gate {
        name: "FastLeaseKeepAlive",
        stage: Stage::Beta,
        default: true,
        since: "3.7",
        outcome: GateOutcome::Notice("lease keep-alive answers are Capstan's own"),
    },
    Gate {
        name: "PriorityRequest",
        stage: Stage::Alpha,
        default: false,
        since: "3.7",
        outcome: GateOutcome::Notice("requests are not prioritised"),
    },
];

pub fn find(name: &str) -> Option<&'static Gate> {
    GATES.iter().find(|gate| gate.name == name)
}

/// The gates named in one `--feature-gates` value, in etcd's syntax. The error is etcd's text
/// after `invalid value "..." for flag -feature-gates: `.
pub fn parse_gates(text: &str) -> Result<BTreeMap<String, bool>, String> {
    let mut named = BTreeMap::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!("missing bool value for {part}"));
        };
        let name = name.trim();
        if name != "AllAlpha" && name != "AllBeta" && find(name).is_none() {
            return Err(format!("unrecognized feature gate: {name}"));
        }
        let value = value.trim();
        let enabled = super::parse_go_bool(value).ok_or_else(|| {
            format!(
                "invalid value of {name}={value}, err: strconv.ParseBool: parsing \"{value}\": \
                 invalid syntax"
            )
        })?;
        named.insert(name.to_string(), enabled);
    }
    Ok(named)
}

/// Every gate's value, by name.
pub type GateValues = BTreeMap<&'static str, bool>;

/// Every gate's value: named ones as named, others from `AllAlpha`/`AllBeta`, else etcd's
/// default.
pub fn resolve(named: &BTreeMap<String, bool>) -> GateValues {
    GATES
        .iter()
        .map(|gate| {
            let all = match gate.stage {
                Stage::Alpha => named.get("AllAlpha"),
                Stage::Beta => named.get("AllBeta"),
            };
            let value = named
                .get(gate.name)
                .or(all)
                .copied()
                .unwrap_or(gate.default);
            (gate.name, value)
        })
        .collect()
}

/// The notices for gates set away from their default, or the first refusal.
pub fn check(values: &GateValues) -> Result<Vec<String>, String> {
    let mut notices = Vec::new();
    for gate in GATES {
        let value = values.get(gate.name).copied().unwrap_or(gate.default);
        if value == gate.default {
            continue;
        }
        match gate.outcome {
            GateOutcome::Implemented(_) => {}
            GateOutcome::AlwaysOn(_) if value => {}
            GateOutcome::AlwaysOn(reason) | GateOutcome::Notice(reason) => notices.push(format!(
                "--feature-gates={}={value} has no effect in Capstan: {reason}",
                gate.name
            )),
            GateOutcome::Refused(reason) => {
                return Err(format!(
                    "--feature-gates={}={value} is not supported by Capstan: {reason}",
                    gate.name
                ))
            }
        }
    }
    Ok(notices)
}

/// etcd's `--help` lines for `--feature-gates`.
pub fn help_lines() -> Vec<String> {
    let stage = |stage: Stage| match stage {
        Stage::Alpha => "ALPHA",
        Stage::Beta => "BETA",
    };
    let mut lines = vec![
        "AllAlpha=true|false (ALPHA - default=false)".to_string(),
        "AllBeta=true|false (BETA - default=false)".to_string(),
    ];
    let mut gates: Vec<&Gate> = GATES.iter().collect();
    gates.sort_by_key(|gate| gate.name);
    for gate in gates {
        lines.push(format!(
            "{}=true|false ({} - default={})",
            gate.name,
            stage(gate.stage),
            gate.default
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_error_texts() {
        assert_eq!(
            parse_gates("Foo=true").expect_err("unknown"),
            "unrecognized feature gate: Foo"
        );
        assert_eq!(
            parse_gates("InitialCorruptCheck=yes").expect_err("bad bool"),
            "invalid value of InitialCorruptCheck=yes, err: strconv.ParseBool: parsing \"yes\": \
             invalid syntax"
        );
        assert!(parse_gates("InitialCorruptCheck")
            .expect_err("no value")
            .contains("missing bool value"));
    }

    #[test]
    fn every_gate_has_its_outcome() {
        for gate in GATES {
            let named = BTreeMap::from([(gate.name.to_string(), !gate.default)]);
            let result = check(&resolve(&named));
            match gate.outcome {
                GateOutcome::Refused(_) => {
                    let error = result.expect_err("refused");
                    assert!(error.contains(gate.name), "{error}");
                }
                GateOutcome::AlwaysOn(_) | GateOutcome::Implemented(_) => {
                    assert_eq!(
                        result.expect("accepted"),
                        Vec::<String>::new(),
                        "{}",
                        gate.name
                    )
                }
                GateOutcome::Notice(_) => {
                    let notices = result.expect("accepted");
                    assert_eq!(notices.len(), 1, "{}", gate.name);
                    assert!(notices[0].contains(gate.name));
                }
            }
        }
    }

    #[test]
    fn all_alpha_reaches_every_alpha_gate() {
        let named = parse_gates("AllAlpha=true,InitialCorruptCheck=false").expect("parses");
        let values = resolve(&named);
        assert!(!values["InitialCorruptCheck"]);
        assert!(values["CompactHashCheck"]);
        assert!(values["TxnModeWriteWithSharedBuffer"]);
        assert!(check(&values).is_err());
    }
}
