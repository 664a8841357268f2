//! `cardecrypt gpg-shim install|remove`: the `gpg` and `gpgconf` links to cardecrypt-gpg, in
//! a directory that comes before the real gpg on PATH (default `~/.local/bin`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The names the front end answers to.
pub const NAMES: [&str; 2] = ["gpg", "gpgconf"];

/// `~/.local/bin`.
pub fn default_dir() -> Result<PathBuf> {
    crate::paths::home()
        .map(|h| h.join(".local/bin"))
        .ok_or_else(|| Error::Usage("HOME is not set: give --dir DIR".into()))
}

/// cardecrypt-gpg beside the running cardecrypt (cargo installs both into one directory).
pub fn front_end_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find cardecrypt", e))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let beside = exe.with_file_name("cardecrypt-gpg");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(Error::Other(format!(
            "{} is missing: install cardecrypt with `cargo install --path .`, which builds \
             both binaries",
            beside.display()
        )))
    }
}

/// Whether `link` is a symlink to a cardecrypt-gpg.
pub fn is_our_link(link: &Path) -> bool {
    link.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::read_link(link)
            .is_ok_and(|t| t.file_name().is_some_and(|n| n == "cardecrypt-gpg"))
}

/// Makes `dir/gpg` and `dir/gpgconf` links to the front end; returns them.
pub fn install(dir: &Path) -> Result<Vec<PathBuf>> {
    let target = front_end_binary()?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let links: Vec<PathBuf> = NAMES.iter().map(|n| dir.join(n)).collect();
    // Check both before touching either: no half-installed shim.
    for link in &links {
        if link.symlink_metadata().is_ok() && !is_our_link(link) {
            return Err(Error::Usage(format!(
                "{} exists and is not cardecrypt's; move it away or choose --dir",
                link.display()
            )));
        }
    }
    for link in &links {
        if is_our_link(link) {
            std::fs::remove_file(link)
                .map_err(|e| Error::io(format!("cannot replace {}", link.display()), e))?;
        }
        std::os::unix::fs::symlink(&target, link)
            .map_err(|e| Error::io(format!("cannot create {}", link.display()), e))?;
    }
    Ok(links)
}

/// Removes the links `install` made in `dir`; returns those removed.
pub fn remove(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for link in NAMES.iter().map(|n| dir.join(n)) {
        if is_our_link(&link) {
            std::fs::remove_file(&link)
                .map_err(|e| Error::io(format!("cannot remove {}", link.display()), e))?;
            removed.push(link);
        }
    }
    Ok(removed)
}

/// The first `name` on PATH.
pub fn first_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
