//! `--help` (every flag with etcd's default, grouped as etcd groups them, with what Capstan does
//! when that is not "implemented") and `--version` (etcd's layout).

use super::table::{Group, Outcome, FLAGS};
use super::ETCD_API_VERSION;

/// The git commit the binary was built from (see `build.rs`).
const GIT_SHA: &str = match option_env!("CAPSTAN_GIT_SHA") {
    Some(sha) => sha,
    None => "not available",
};
/// The compiler that built the binary (see `build.rs`).
const RUSTC_VERSION: &str = match option_env!("CAPSTAN_RUSTC_VERSION") {
    Some(version) => version,
    None => "not available",
};

/// Go's names for architectures, which etcd's `--version` prints.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub fn version_text() -> String {
    format!(
        "capstan Version: {}\netcd API Version: {ETCD_API_VERSION}\nGit SHA: {GIT_SHA}\n\
         Rust Version: {RUSTC_VERSION}\nOS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        go_arch(std::env::consts::ARCH)
    )
}

/// What Capstan does with a flag, for `--help` and `docs/configuration.md`; `None` when the
/// flag is implemented.
pub fn outcome_note(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Implemented => None,
        Outcome::Tls(side) if super::security::tls_served(side) => None,
        Outcome::Tls(_) => Some("refused until this TLS side is served".to_string()),
        Outcome::Notice(reason) => Some(format!("accepted, no effect: {reason}")),
        Outcome::Refused(reason) => Some(format!("refused: {reason}")),
        Outcome::Renamed(newer) => Some(format!("deprecated name of --{newer}")),
        Outcome::Gate(gate) => Some(format!("deprecated; --feature-gates={gate}=true")),
    }
}

pub fn usage() -> String {
    let mut text = String::from(
        "Usage:\n\n  capstan [flags]\n    Start a Capstan server (an etcd v3-compatible key-value \
         store).\n\n  capstan --version\n    Show the version of Capstan.\n\n  \
         capstan -h | --help\n    Show the help information about Capstan.\n\n",
    );
    for group in Group::ALL {
        if group == Group::Usage {
            for flag in FLAGS.iter().filter(|flag| flag.group == group) {
                text.push_str(&format!("  capstan --{}\n    {}\n\n", flag.name, flag.help));
            }
            text.push_str(
                "Every flag can also be set as ETCD_<NAME>, e.g. --listen-client-urls as \
                 ETCD_LISTEN_CLIENT_URLS; a flag also set that way is an error.\n\n",
            );
            continue;
        }
        text.push_str(&format!("{}:\n", group.title()));
        for flag in FLAGS.iter().filter(|flag| flag.group == group) {
            text.push_str(&format!(
                "  --{} '{}'\n    {}\n",
                flag.name,
                flag.default_shown(),
                flag.help
            ));
            if flag.name == "feature-gates" {
                for line in super::gates::help_lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            }
            if let Some(note) = outcome_note(flag.outcome) {
                text.push_str(&format!("    [Capstan: {note}]\n"));
            }
        }
        text.push('\n');
    }
    text
}

/// The table of `docs/configuration.md`: every flag, its variable, etcd's default and
/// Capstan's outcome with the reason; then every feature gate.
pub fn configuration_table() -> String {
    let mut text = String::from(
        "| flag | `ETCD_*` variable | etcd default | kind | Capstan | why |\n|---|---|---|---|---|---|\n",
    );
    for group in Group::ALL {
        text.push_str(&format!("| **{}** | | | | | |\n", group.title()));
        for flag in FLAGS.iter().filter(|flag| flag.group == group) {
            let (outcome, why) = match flag.outcome {
                Outcome::Implemented => ("implemented", String::new()),
                Outcome::Tls(side) if super::security::tls_served(side) => {
                    ("implemented", "TLS (`src/tls`)".to_string())
                }
                Outcome::Tls(_) => ("refused", "this TLS side is not served yet".to_string()),
                Outcome::Notice(reason) => ("notice", reason.to_string()),
                Outcome::Refused(reason) => ("refused", reason.to_string()),
                Outcome::Renamed(newer) => {
                    ("as newer name", format!("etcd 3.5 name of `--{newer}`"))
                }
                Outcome::Gate(gate) => ("as gate", format!("`--feature-gates={gate}=...`")),
            };
            text.push_str(&format!(
                "| `--{}` | `{}` | `{}` | {} | {outcome} | {} |\n",
                flag.name,
                flag.env_name(),
                flag.default_shown().replace('|', "\\|"),
                flag.kind.name(),
                why.replace('|', "\\|")
            ));
        }
    }
    text.push_str("\n| feature gate | stage | etcd default | etcd | Capstan when set away from the default |\n|---|---|---|---|---|\n");
    for gate in super::gates::GATES {
        let outcome = match gate.outcome {
            super::gates::GateOutcome::Implemented(what) => format!("implemented: {what}"),
            super::gates::GateOutcome::AlwaysOn(reason) => {
                format!("always on; `false` is a notice: {reason}")
            }
            super::gates::GateOutcome::Notice(reason) => format!("notice: {reason}"),
            super::gates::GateOutcome::Refused(reason) => format!("refused: {reason}"),
        };
        let stage = match gate.stage {
            super::gates::Stage::Alpha => "alpha",
            super::gates::Stage::Beta => "beta",
        };
        text.push_str(&format!(
            "| `{}` | {stage} | {} | {} | {outcome} |\n",
            gate.name, gate.default, gate.since
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_BEGIN: &str = "<!-- table: generated from src/config/table.rs; do not edit -->\n";
    const TABLE_END: &str = "<!-- end of table -->";

    /// `docs/configuration.md` holds `configuration_table()` verbatim;
    /// `CAPSTAN_UPDATE_DOCS=1 cargo test -p capstan --lib config::help` rewrites it.
    #[test]
    fn docs_table_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
        let begin = text.find(TABLE_BEGIN).expect("table start marker") + TABLE_BEGIN.len();
        let end = text.find(TABLE_END).expect("table end marker");
        let table = configuration_table();
        if text[begin..end] != table {
            if std::env::var_os("CAPSTAN_UPDATE_DOCS").is_some() {
                let updated = format!("{}{table}{}", &text[..begin], &text[end..]);
                std::fs::write(&path, updated).expect("rewrite docs");
            } else {
                panic!("docs/configuration.md is out of date: run CAPSTAN_UPDATE_DOCS=1 cargo test -p capstan --lib config::help");
            }
        }
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let text = usage();
        for flag in FLAGS {
            if flag.group == Group::Usage {
                assert!(text.contains(&format!("capstan --{}", flag.name)));
                continue;
            }
            let line = format!("  --{} '{}'\n", flag.name, flag.default_shown());
            assert!(text.contains(&line), "{line}");
        }
        assert!(text.contains("Member:\n  --name 'default'"));
        assert!(text.contains("InitialCorruptCheck=true|false (ALPHA - default=false)"));
    }

    #[test]
    fn version_in_etcds_layout() {
        let text = version_text();
        assert!(text.starts_with("capstan Version: "));
        assert!(text.contains("\netcd API Version: 3.6.0\n"));
        assert!(text.contains("\nGit SHA: "));
        assert!(text.contains("\nRust Version: "));
        assert!(text.contains("\nOS/Arch: linux/"));
    }
}
