//! Build facts for `capstan --version`: the git commit and the compiler. Neither is required:
//! without git (a source tarball) or a readable compiler version the binary says
//! "not available".

use std::process::Command;

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    // A new commit changes the branch's ref (or packed-refs); HEAD changes on checkout.
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(git_dir) = command_output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
        if let Some(reference) = command_output("git", &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{reference}");
        }
    }
    if let Some(sha) = command_output("git", &["rev-parse", "--short=9", "HEAD"]) {
        println!("cargo:rustc-env=CAPSTAN_GIT_SHA={sha}");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    if let Some(version) = command_output(&rustc, &["--version"]) {
        println!("cargo:rustc-env=CAPSTAN_RUSTC_VERSION={version}");
    }
}
