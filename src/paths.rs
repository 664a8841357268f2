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

/// `$XDG_RUNTIME_DIR/cardecrypt`, else `$TMPDIR/cardecrypt-UID/cardecrypt` (ssh sessions,
/// cron and root often have no runtime directory). The numeric uid, not `$USER`: the
/// environment can name another user, the uid cannot.
pub fn runtime_dir() -> PathBuf {
    let base = absolute_var("XDG_RUNTIME_DIR").unwrap_or_else(|| {
        let uid = rustix::process::getuid().as_raw();
        std::env::temp_dir().join(format!("cardecrypt-{uid}"))
    });
    base.join("cardecrypt")
}

/// [`runtime_dir`], created if missing, and verified to be the user's alone: every level
/// cardecrypt made (and the base it was given) must be a real directory, owned by this
/// user, and not writable by anyone else; the last level must be closed to others. Another
/// user's directory, a symlink or a world-writable one is refused: its contents could be
/// planted.
pub fn private_runtime_dir() -> Result<PathBuf, String> {
    let dir = runtime_dir();
    let base = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    // The fallback under $TMPDIR, or a runtime directory that does not exist yet, is made
    // by us, so it must be ours alone; the session's own runtime directory only has to be
    // the user's.
    let fallback = absolute_var("XDG_RUNTIME_DIR").is_none();
    if fallback || !base.exists() {
        make_private(&base)?;
    } else {
        check_owned(&base, 0o022)?;
    }
    make_private(&dir)?;
    Ok(dir)
}

fn make_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    check_owned(dir, 0o077)
}

/// `dir` is a directory (not a symlink), owned by this user, with none of `forbidden`'s
/// permission bits.
fn check_owned(dir: &Path, forbidden: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let me = rustix::process::getuid().as_raw();
    let refuse = |why: String| {
        Err(format!(
            "refusing {}: {why}; remove it, or set XDG_RUNTIME_DIR to a directory of yours",
            dir.display()
        ))
    };
    if !meta.file_type().is_dir() {
        return refuse("it is not a directory".into());
    }
    if meta.uid() != me {
        return refuse(format!(
            "it belongs to uid {}, not to you (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & forbidden != 0 {
        return refuse(format!("its mode {:o} lets others in", meta.mode() & 0o777));
    }
    Ok(())
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

/// File descriptor `fd`, inherited from the caller, for reading or writing: a duplicate of it
/// (the same open file: its offset, O_APPEND, a socket), taken with pidfd_getfd on our own
/// process, which needs no unsafe code; the descriptor itself stays open. Where the kernel
/// lacks pidfd_getfd (before Linux 5.6), `/dev/fd/N` is opened again instead.
pub fn open_fd(fd: i32, write: bool) -> io::Result<File> {
    let duplicate = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .and_then(|me| {
        rustix::process::pidfd_getfd(&me, fd, rustix::process::PidfdGetfdFlags::empty())
    });
    match duplicate {
        Ok(owned) => Ok(File::from(owned)),
        Err(rustix::io::Errno::BADF) => Err(io::Error::from(rustix::io::Errno::BADF)),
        Err(_) => std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(fd_path(fd)),
    }
}

/// `/dev/fd/N`.
pub fn fd_path(fd: i32) -> PathBuf {
    Path::new("/dev/fd").join(fd.to_string())
}

/// Pipe buffer asked for on a pipe we read or write in bulk.
const PIPE_SIZE: usize = 1 << 20;

/// If `fd` is a pipe, asks for a 1 MiB pipe buffer instead of the usual 64 KiB: a large
/// message then crosses it with a sixteenth of the wake-ups of the process on the other end.
/// Best effort: a refusal (the system's pipe-max-size, an old kernel) changes nothing else.
pub fn widen_pipe(fd: impl std::os::fd::AsFd) {
    let is_pipe = rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    });
    if is_pipe {
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_widened_and_a_file_is_left_alone() {
        let (read, write) = rustix::pipe::pipe().expect("pipe");
        widen_pipe(&write);
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&read).expect("size"),
            PIPE_SIZE
        );
        let file = tempfile::tempfile().expect("file");
        widen_pipe(&file);
        assert!(rustix::pipe::fcntl_getpipe_size(&file).is_err());
    }

    #[test]
    fn directories_others_can_write_or_own_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = make_private(&open).expect_err("world-writable accepted");
        assert!(e.contains("lets others in"), "{e}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).expect("symlink");
        assert!(make_private(&link)
            .expect_err("symlink")
            .contains("not a directory"));
        let fresh = tmp.path().join("fresh");
        make_private(&fresh).expect("a new directory is ours");
        make_private(&fresh).expect("and stays ours");
        if rustix::process::getuid().is_root() {
            let theirs = tmp.path().join("theirs");
            std::fs::create_dir(&theirs).expect("mkdir");
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
            rustix::fs::chown(&theirs, Some(rustix::fs::Uid::from_raw(65534)), None)
                .expect("chown");
            let e = make_private(&theirs).expect_err("another user's directory accepted");
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        if let Some(home) = home() {
            assert_eq!(expand_home("~/x"), home.join("x"));
        }
        assert_eq!(expand_home("/a/~/x"), PathBuf::from("/a/~/x"));
        assert_eq!(fd_path(3), PathBuf::from("/dev/fd/3"));
    }

    /// An inherited socket and an O_APPEND file work: the descriptor is duplicated, not
    /// opened again by name (which fails on a socket and loses O_APPEND).
    #[test]
    fn inherited_descriptors_are_duplicated() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut dup = open_fd(ours.as_raw_fd(), true).expect("socket descriptor");
        dup.write_all(b"status line\n").expect("write");
        drop((dup, ours));
        let mut got = String::new();
        (&theirs).read_to_string(&mut got).expect("read");
        assert_eq!(got, "status line\n");

        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(&log, b"first\n").expect("write");
        let appending = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        let mut dup = open_fd(appending.as_raw_fd(), true).expect("file descriptor");
        dup.write_all(b"second\n").expect("append");
        assert_eq!(std::fs::read(&log).expect("read"), b"first\nsecond\n");
    }
}
