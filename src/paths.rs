//! Where cardecrypt keeps things, by the XDG base directory rules (a variable counts only
//! when it holds an absolute path), and the one way it opens inherited descriptors.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

/// `$HOME`, when it is an absolute path.
pub fn home() -> Option<PathBuf> {
    absolute_var("HOME")
}

/// `$XDG_CONFIG_HOME/cardecrypt`, else `~/.config/cardecrypt`.
pub fn config_dir() -> Option<PathBuf> {
    xdg("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_CACHE_HOME/cardecrypt`, else `~/.cache/cardecrypt`.
pub fn cache_dir() -> Option<PathBuf> {
    xdg("XDG_CACHE_HOME", ".cache")
}

/// `$XDG_RUNTIME_DIR/cardecrypt`, else `$TMPDIR/cardecrypt-$USER/cardecrypt` (ssh sessions,
/// cron and root often have no runtime directory).
pub fn runtime_dir() -> PathBuf {
    let base = absolute_var("XDG_RUNTIME_DIR").unwrap_or_else(|| {
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        std::env::temp_dir().join(format!("cardecrypt-{user}"))
    });
    base.join("cardecrypt")
}

/// `~/rest` with the home directory filled in; anything else as it is.
pub fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), home()) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(value),
    }
}

fn xdg(var: &str, under_home: &str) -> Option<PathBuf> {
    let base = absolute_var(var).or_else(|| home().map(|h| h.join(under_home)))?;
    Some(base.join("cardecrypt"))
}

fn absolute_var(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// File descriptor `fd`, inherited from the caller, opened for reading or writing. Through
/// `/dev/fd/N`, which needs no unsafe code; the descriptor itself stays open.
pub fn open_fd(fd: i32, write: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(fd_path(fd))
}

/// `/dev/fd/N`.
pub fn fd_path(fd: i32) -> PathBuf {
    Path::new("/dev/fd").join(fd.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_expanded_only_at_the_start() {
        if let Some(home) = home() {
            assert_eq!(expand_home("~/x"), home.join("x"));
        }
        assert_eq!(expand_home("/a/~/x"), PathBuf::from("/a/~/x"));
        assert_eq!(fd_path(3), PathBuf::from("/dev/fd/3"));
    }
}
