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

/// The front end's own binary, as the kernel knows it (symlinks resolved).
fn this_binary() -> Option<PathBuf> {
    std::env::current_exe().ok()?.canonicalize().ok()
}

/// Whether `path` is the front end itself (a symlink to it, or the binary), whichever
/// binary asks.
pub fn is_front_end(path: &Path) -> bool {
    match path.canonicalize() {
        Ok(p) => p.file_name().is_some_and(|n| n == "cardecrypt-gpg") || Some(p) == this_binary(),
        Err(_) => false,
    }
}

/// The real program: `CARDECRYPT_REAL_GPG` / `CARDECRYPT_REAL_GPGCONF`, else `configured`
/// (`real-gpg` in the config file; gpgconf is taken from beside it), else the first one on
/// PATH that is not this front end, else `/usr/bin/<name>`.
pub fn find(program: Program, configured: Option<&Path>) -> PathBuf {
    if let Some(p) = std::env::var_os(program.env_var()).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(gpg) = configured {
        match program {
            Program::Gpg => return gpg.to_path_buf(),
            Program::Gpgconf => {
                let beside = gpg.with_file_name("gpgconf");
                if beside.is_file() {
                    return beside;
                }
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(program.name());
            if candidate.is_file() && !is_front_end(&candidate) && candidate.is_absolute() {
                return candidate;
            }
        }
    }
    PathBuf::from("/usr/bin").join(program.name())
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
    let e = Command::new(real).args(args).exec();
    Error::io(format!("cannot run {}", real.display()), e)
}

/// Runs the real program and returns what it wrote to standard output (stderr passes
/// through).
pub fn output(real: &Path, args: &[&str]) -> Result<(std::process::ExitStatus, Vec<u8>)> {
    let out = Command::new(real)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io(format!("cannot run {}", real.display()), e))?;
    Ok((out.status, out.stdout))
}
