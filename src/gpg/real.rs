//! The real gpg and gpgconf: found by absolute path (never through PATH, where the front end
//! would find itself), and run with argv and descriptors unchanged.

use std::{
    ffi::OsString,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::error::{Error, Result};

/// Which real program: `gpg` or `gpgconf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Gpg,
    Gpgconf,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Gpg => "gpg",
            Program::Gpgconf => "gpgconf",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Program::Gpg => "CARDECRYPT_REAL_GPG",
            Program::Gpgconf => "CARDECRYPT_REAL_GPGCONF",
        }
    }
}

/// Set in the environment of every real gpg we run: a "real gpg" that turns out to be this
/// front end again (a copy under another name, a wrapper script) finds it and stops instead
/// of starting itself without end.
pub const RUNNING_REAL: &str = "CARDECRYPT_GPG_RUNNING_REAL";

/// Whether `path` is the front end itself: a link to it (symbolic or hard), the binary, or
/// anything named cardecrypt-gpg, whichever binary asks.
pub fn is_front_end(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(p) = path.canonicalize() else {
        return false;
    };
    let same_file = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    p.file_name().is_some_and(|n| n == "cardecrypt-gpg")
        || std::env::current_exe().is_ok_and(|me| same_file(&p, &me))
}

/// The real program: `CARDECRYPT_REAL_GPG` / `CARDECRYPT_REAL_GPGCONF`, else `configured`
/// (`real-gpg` in the config file; gpgconf is taken from beside it), else the first one on
/// PATH that is not this front end, else `/usr/bin/<name>`. A setting that names the front
/// end itself (or its `gpgconf` link) is an error, not a loop.
pub fn find(program: Program, configured: Option<&Path>) -> Result<PathBuf> {
    let refuse = |path: PathBuf, from: &str| {
        if is_front_end(&path) {
            Err(Error::Usage(format!(
                "{from} names {}, which is cardecrypt's gpg front end itself: set it to the \
                 real {} (usually /usr/bin/{})",
                path.display(),
                program.name(),
                program.name()
            )))
        } else {
            Ok(path)
        }
    };
    if let Some(p) = std::env::var_os(program.env_var()).filter(|p| !p.is_empty()) {
        return refuse(PathBuf::from(p), program.env_var());
    }
    if let Some(gpg) = configured {
        match program {
            Program::Gpg => return refuse(gpg.to_path_buf(), "real-gpg in the config file"),
            Program::Gpgconf => {
                let beside = gpg.with_file_name("gpgconf");
                if beside.is_file() {
                    return refuse(beside, "real-gpg in the config file (its gpgconf)");
                }
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(program.name());
            if candidate.is_file() && !is_front_end(&candidate) && candidate.is_absolute() {
                return Ok(candidate);
            }
        }
    }
    refuse(
        PathBuf::from("/usr/bin").join(program.name()),
        "the fallback",
    )
}

/// Replaces this process with the real program, `args` and descriptors unchanged. Returns
/// only when it cannot be run.
pub fn exec(real: &Path, args: &[OsString]) -> Error {
    if is_front_end(real) {
        return Error::Other(format!(
            "{} is cardecrypt's gpg front end itself; set CARDECRYPT_REAL_GPG or real-gpg in \
             the config file to the real gpg",
            real.display()
        ));
    }
    let e = Command::new(real).args(args).env(RUNNING_REAL, "1").exec();
    Error::io(format!("cannot run {}", real.display()), e)
}

/// Runs the real program and returns what it wrote to standard output (stderr passes
/// through).
pub fn output(real: &Path, args: &[&str]) -> Result<(std::process::ExitStatus, Vec<u8>)> {
    let out = Command::new(real)
        .args(args)
        .env(RUNNING_REAL, "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io(format!("cannot run {}", real.display()), e))?;
    Ok((out.status, out.stdout))
}
