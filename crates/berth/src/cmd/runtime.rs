//! `berth runtime …`: the OCI runtime is its own binary, `berth-runc`, so that a runtime process
//! maps none of the engine's code. This replaces the berth process with it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// The runtime binary's name.
const RUNC: &str = "berth-runc";

/// `berth-runc` next to the running `berth` (an install puts both in one directory, as does
/// cargo), else the first one on PATH.
fn runc_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(RUNC)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(RUNC))
                .find(|p| p.is_file())
        })
    })
}

/// Execute berth-runc with `args`, unchanged. Its messages call it `berth runtime` (argv[0]).
/// Returns only when it cannot be executed.
pub fn exec(args: Vec<OsString>) -> ExitCode {
    let Some(bin) = runc_binary() else {
        let here = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.display().to_string()))
            .unwrap_or_else(|| "berth's directory".into());
        eprintln!(
            "berth runtime: {RUNC} is neither in {here} nor on PATH (install it next to berth)"
        );
        return ExitCode::from(127);
    };
    let err = std::process::Command::new(&bin)
        .arg0("berth runtime")
        .args(args)
        .exec();
    eprintln!("berth runtime: executing {}: {err}", bin.display());
    ExitCode::from(126)
}
