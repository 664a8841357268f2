//! Writing plaintext: only complete, authenticated plaintext, and never half a file.

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// Writes `data` to `path` (mode 0600). Without `overwrite` an existing file is an error.
/// The data goes to a temporary file beside `path` first, so a failure leaves nothing behind
/// and an existing file is replaced only by a complete one.
pub fn write_file(path: &Path, data: &[u8], overwrite: bool) -> Result<()> {
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} exists; use --overwrite to replace it",
            path.display()
        )));
    }
    let tmp = temp_path(path);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        });
    let placed = written.and_then(|()| {
        if overwrite {
            std::fs::rename(&tmp, path)
        } else {
            // A hard link fails if `path` appeared meanwhile: create-new without a race.
            std::fs::hard_link(&tmp, path).and_then(|()| std::fs::remove_file(&tmp))
        }
    });
    placed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot write {}", path.display()), e)
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.cardecrypt-{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn new_file_is_private_and_existing_one_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.txt");
        write_file(&out, b"secret", false).expect("write");
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            write_file(&out, b"other", false),
            Err(Error::Usage(_))
        ));
        assert_eq!(std::fs::read(&out).expect("read"), b"secret");
        write_file(&out, b"other", true).expect("overwrite");
        assert_eq!(std::fs::read(&out).expect("read"), b"other");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
