//! `capstanutl`: offline tools, like etcdutl.
//!
//! ```text
//! capstanutl snapshot status FILE [-w table|json]
//! capstanutl snapshot restore FILE --data-dir DIR --name NAME --initial-cluster NAME=URL,...
//!            [--initial-cluster-token TOKEN] [--initial-advertise-peer-urls URL]
//! capstanutl defrag --data-dir DIR
//! ```
//!
//! `FILE` is what `etcdctl snapshot save` wrote from a Capstan member.

use capstan::backup;
use capstan::config::{parse_args, Parsed};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  capstanutl snapshot status FILE [-w table|json]
  capstanutl snapshot restore FILE --data-dir DIR --name NAME --initial-cluster NAME=URL,...
             [--initial-cluster-token TOKEN] [--initial-advertise-peer-urls URL]
  capstanutl defrag --data-dir DIR
";

fn main() -> ExitCode {
    if let Err(error) = capstan::failpoint::validate_env() {
        eprintln!("capstanutl: {error}");
        return ExitCode::from(2);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["snapshot", "status", file, rest @ ..] => status(Path::new(file), rest),
        ["snapshot", "restore", file, rest @ ..] => restore(Path::new(file), rest),
        ["defrag", rest @ ..] => defrag(rest),
        ["help" | "--help" | "-h", ..] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn open(file: &Path) -> Result<backup::Opened, String> {
    let bytes = std::fs::read(file).map_err(|error| format!("{}: {error}", file.display()))?;
    backup::open(file, &bytes).map_err(|error| error.to_string())
}

/// etcdutl's byte sizes: `2.1 MB`, decimal units.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn status(file: &Path, rest: &[&str]) -> Result<(), String> {
    let format = match rest {
        [] | ["-w" | "--write-out", "table"] | ["--write-out=table"] => "table",
        ["-w" | "--write-out", "json"] | ["--write-out=json"] => "json",
        other => return Err(format!("unexpected arguments {other:?}\n{USAGE}")),
    };
    let opened = open(file)?;
    let revision = opened.state.kv.current_revision();
    let total_keys = opened.state.kv.version_count();
    if format == "json" {
        println!(
            "{{\"hash\":{},\"revision\":{revision},\"totalKey\":{total_keys},\"totalSize\":{}}}",
            opened.hash, opened.total_bytes
        );
        return Ok(());
    }
    let row = [
        format!("{:x}", opened.hash),
        revision.to_string(),
        total_keys.to_string(),
        human_bytes(opened.total_bytes),
    ];
    let headers = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let widths: Vec<usize> = headers
        .iter()
        .zip(&row)
        .map(|(header, cell)| header.len().max(cell.len()) + 2)
        .collect();
    let line: String = widths
        .iter()
        .map(|width| format!("+{}", "-".repeat(*width)))
        .collect::<String>()
        + "+";
    let centered = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("|{cell:^width$}"))
            .collect::<String>()
            + "|"
    };
    println!("{line}");
    println!("{}", centered(&headers.map(str::to_string)));
    println!("{line}");
    println!("{}", centered(&row));
    println!("{line}");
    Ok(())
}

fn restore(file: &Path, rest: &[&str]) -> Result<(), String> {
    let flags: Vec<String> = rest.iter().map(|flag| flag.to_string()).collect();
    if !flags.iter().any(|flag| flag.starts_with("--data-dir")) {
        return Err(format!("--data-dir is required\n{USAGE}"));
    }
    // The same flags a member starts with; parsed by the server's own parser.
    let config = match parse_args(&flags, &[]) {
        Ok(Parsed::Run { config, .. }) => config,
        Ok(_) => return Err(USAGE.to_string()),
        Err(error) => return Err(error.to_string()),
    };
    let data_dir: &PathBuf = &config.data_dir;
    if data_dir.exists() {
        return Err(format!(
            "data-dir {:?} exists",
            data_dir.display().to_string()
        ));
    }
    let opened = open(file)?;
    let revision = opened.state.kv.current_revision();
    let members = config.initial_members();
    let saved =
        backup::restore(opened, &config.snap_dir(), &members).map_err(|error| error.to_string())?;
    println!(
        "restored snapshot {} (revision {revision}) for member {} of {} into {}",
        file.display(),
        config.name,
        members.len(),
        saved.display()
    );
    Ok(())
}

/// Offline defrag of a stopped member's page store (the running member holds a lock on it and
/// is defragmented online with `etcdctl defrag` instead).
fn defrag(rest: &[&str]) -> Result<(), String> {
    let data_dir = match rest {
        ["--data-dir", dir] => PathBuf::from(dir),
        [flag] if flag.starts_with("--data-dir=") => {
            PathBuf::from(flag.trim_start_matches("--data-dir="))
        }
        _ => return Err(format!("--data-dir is required\n{USAGE}")),
    };
    let path = data_dir
        .join("member")
        .join(capstan::durable::STORE_FILE_NAME);
    if !path.exists() {
        return Err(format!("{}: no page store here", path.display()));
    }
    let store = capstan::store::Store::open(&path, capstan::store::StoreOptions::default())
        .map_err(|error| error.to_string())?;
    let report = store.defragment().map_err(|error| error.to_string())?;
    println!(
        "Finished defragmenting etcd data[{}] ({} -> {})",
        data_dir.display(),
        human_bytes(report.size_bytes_before),
        human_bytes(report.size_bytes_after)
    );
    Ok(())
}
