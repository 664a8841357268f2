//! Writing plaintext: only complete, authenticated plaintext, and never half a file.
//!
//! A new output file is first an unnamed file (`O_TMPFILE`) in the target's directory: it has
//! no name until the message authenticated, so a failure, Ctrl-C, SIGTERM or even SIGKILL
//! leaves nothing behind. It is then linked into place (a link fails if the name appeared
//! meanwhile: create-new without a race), or with `--overwrite` linked beside it and renamed
//! over a regular file. On a file system without `O_TMPFILE`, `-o` is refused with the ways
//! that remain: a named temporary file would keep plaintext under a name after a SIGKILL.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// An unnamed regular file (mode 0600) in `dir`, for data that must not be seen by name.
pub fn unnamed_file(dir: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// What is at an output path before we write.
pub enum Existing {
    Nothing,
    Regular,
    /// A device, FIFO, socket or terminal: written into, never replaced.
    Special,
}

pub fn existing(path: &Path) -> Existing {
    match std::fs::metadata(path) {
        Err(_) => match path.symlink_metadata() {
            // A dangling symlink: replacing it needs --overwrite like any file.
            Ok(_) => Existing::Regular,
            Err(_) => Existing::Nothing,
        },
        Ok(m) if m.file_type().is_file() => Existing::Regular,
        Ok(_) => Existing::Special,
    }
}

/// Opens an existing device or FIFO for writing: opened first (never becoming our
/// controlling terminal), then what was opened is checked. A regular file found there (the
/// name was swapped between the look and the open) is refused: plaintext goes into a regular
/// file only through [`PendingFile`]. Symbolic links are followed, so `/dev/stdout` and
/// `/dev/fd/N` work.
pub fn open_special(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::NOCTTY.bits() as i32)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let opened = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    if opened.file_type().is_file() {
        return Err(Error::Usage(format!(
            "{} turned into a regular file while it was opened: nothing written; run again",
            path.display()
        )));
    }
    Ok(file)
}

/// An output file being written, named only by [`PendingFile::commit`].
pub struct PendingFile {
    file: File,
    target: PathBuf,
    overwrite: bool,
    /// The hidden name the complete file gets just before it replaces one (`--overwrite`),
    /// removed should that fail.
    named: Option<PathBuf>,
}

impl PendingFile {
    /// Starts writing `target`. Without `overwrite`, an existing file is a usage error now,
    /// before any PIN is spent.
    pub fn create(target: &Path, overwrite: bool) -> Result<PendingFile> {
        if !overwrite && !matches!(existing(target), Existing::Nothing) {
            return Err(Error::Usage(format!(
                "{} exists; use --overwrite to replace it",
                target.display()
            )));
        }
        let cannot = |e| Error::io(format!("cannot write {}", target.display()), e);
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match unnamed_file(&dir) {
            Ok(file) => Ok(PendingFile {
                file,
                target: target.to_path_buf(),
                overwrite,
                named: None,
            }),
            // A named temporary file would leave plaintext behind under a name if we were
            // killed: refused, with the ways that remain.
            Err(e) if e.raw_os_error().is_some_and(is_no_tmpfile) => Err(Error::Usage(format!(
                "{}: its file system cannot hold an unnamed file (no O_TMPFILE), so a \
                 plaintext could be left there under a name if cardecrypt were stopped; \
                 write to standard output (`> FILE`) or use -o on another file system",
                dir.display()
            ))),
            Err(e) => Err(cannot(e)),
        }
    }

    pub fn writer(&mut self) -> impl Write + '_ {
        io::BufWriter::with_capacity(1 << 20, &self.file)
    }

    /// A writer that, if `threaded` is set by its first write, does the writing on a thread
    /// of its own (the copy into the page cache then runs beside the decryption), else
    /// buffers on this one. Flush it before [`PendingFile::commit`].
    pub fn writer_for(
        &self,
        threaded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> FileWriter<'_> {
        FileWriter {
            file: &self.file,
            threaded,
            direct: None,
            background: None,
        }
    }

    /// Makes the complete file visible under its name.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let cannot = |e: io::Error| Error::io(format!("cannot write {}", target.display()), e);
        // Written data is checked (a full file system fails here at the latest), but not
        // forced to disk: like gpg and sq, durability is left to the file system, and an
        // fsync of a multi-GB backup would cost more than the decryption.
        self.file.flush().map_err(cannot)?;
        let source = match &self.named {
            Some(tmp) => tmp.clone(),
            None => {
                // Give the unnamed file a hidden name first when it is to replace a file.
                let fd_path = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&self.file)
                );
                if !self.overwrite {
                    rustix::fs::linkat(
                        CWD,
                        fd_path.as_str(),
                        CWD,
                        &target,
                        AtFlags::SYMLINK_FOLLOW,
                    )
                    .map_err(io::Error::from)
                    .map_err(cannot)?;
                    return Ok(());
                }
                let tmp = temp_path(&target);
                rustix::fs::linkat(CWD, fd_path.as_str(), CWD, &tmp, AtFlags::SYMLINK_FOLLOW)
                    .map_err(io::Error::from)
                    .map_err(cannot)?;
                self.named = Some(tmp.clone());
                tmp
            }
        };
        let placed = if self.overwrite {
            if matches!(existing(&target), Existing::Special) {
                Err(io::Error::other(
                    "it is not a regular file; it is not replaced",
                ))
            } else {
                std::fs::rename(&source, &target)
            }
        } else {
            std::fs::hard_link(&source, &target).and_then(|()| std::fs::remove_file(&source))
        };
        match placed {
            Ok(()) => {
                self.named = None;
                Ok(())
            }
            Err(e) => Err(cannot(e)),
        }
    }
}

/// O_TMPFILE is not offered by this file system (EOPNOTSUPP, EISDIR on old kernels).
fn is_no_tmpfile(errno: i32) -> bool {
    errno == rustix::io::Errno::OPNOTSUPP.raw_os_error()
        || errno == rustix::io::Errno::ISDIR.raw_os_error()
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.named.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// See [`PendingFile::writer_for`].
pub struct FileWriter<'f> {
    file: &'f File,
    threaded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    direct: Option<io::BufWriter<&'f File>>,
    background: Option<Background>,
}

impl Write for FileWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(b) = &mut self.background {
            return b.write(data);
        }
        if let Some(d) = &mut self.direct {
            return d.write(data);
        }
        if self.threaded.load(std::sync::atomic::Ordering::Relaxed) {
            self.background = Some(Background::new(self.file.try_clone()?));
        } else {
            self.direct = Some(io::BufWriter::with_capacity(BACKGROUND_BLOCK, self.file));
        }
        self.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        match (&mut self.background, &mut self.direct) {
            (Some(b), _) => b.finish(),
            (None, Some(d)) => d.flush(),
            (None, None) => Ok(()),
        }
    }
}

/// Size of the buffers a [`Background`] writer hands to its thread.
const BACKGROUND_BLOCK: usize = 1 << 20;
/// Buffers in all: one being filled, the others being written or waiting.
const BACKGROUND_BUFFERS: usize = 3;

/// Data written to a file on a second thread, in buffers that are reused and, for
/// plaintext, wiped after each write (plaintext is not left in freed memory).
pub struct Background {
    to_thread: Option<std::sync::mpsc::SyncSender<Zeroizing<Vec<u8>>>>,
    /// In a mutex only to be `Sync` (the engine's readers must be, and the spool's writer
    /// lives in one).
    from_thread: std::sync::Mutex<std::sync::mpsc::Receiver<Zeroizing<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    error: std::sync::Arc<std::sync::Mutex<Option<io::Error>>>,
    current: Zeroizing<Vec<u8>>,
    /// Buffers handed to the thread and not yet back.
    out: usize,
    /// Buffers made so far (at most [`BACKGROUND_BUFFERS`]).
    made: usize,
}

impl Background {
    /// A writer of ciphertext (a spool) to `file` on a thread of its own: its buffers are
    /// not wiped between writes (a pass over every byte less). Call `finish` and check
    /// it: dropping the writer waits for the thread but drops its error.
    pub fn for_ciphertext(file: File) -> Background {
        Background::with_wiping(file, false)
    }

    /// A writer of plaintext to `file`.
    fn new(file: File) -> Background {
        Background::with_wiping(file, true)
    }

    fn with_wiping(mut file: File, wipe: bool) -> Background {
        use std::sync::mpsc::sync_channel;
        let (to_thread, rx) = sync_channel::<Zeroizing<Vec<u8>>>(BACKGROUND_BUFFERS);
        let (tx, from_thread) = sync_channel::<Zeroizing<Vec<u8>>>(BACKGROUND_BUFFERS);
        let error = std::sync::Arc::new(std::sync::Mutex::new(None::<io::Error>));
        let failed = error.clone();
        let thread = std::thread::spawn(move || {
            let mut ok = true;
            while let Ok(mut buf) = rx.recv() {
                if ok {
                    if let Err(e) = file.write_all(&buf) {
                        ok = false;
                        if let Ok(mut slot) = failed.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
                if wipe {
                    let used = buf.len();
                    zeroize::Zeroize::zeroize(&mut buf[..used]);
                }
                buf.clear();
                if tx.send(buf).is_err() {
                    return;
                }
            }
        });
        Background {
            to_thread: Some(to_thread),
            from_thread: std::sync::Mutex::new(from_thread),
            thread: Some(thread),
            error,
            current: Zeroizing::new(Vec::new()),
            out: 0,
            made: 1,
        }
    }

    /// The thread's first write error, if it had one (again each time it is asked).
    fn failed(&self) -> io::Result<()> {
        let slot = self
            .error
            .lock()
            .map_err(|_| io::Error::other("the writing thread failed"))?;
        match slot.as_ref() {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    /// Hands the current buffer to the thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        let gone = || io::Error::other("the writing thread stopped");
        let next = if self.made < BACKGROUND_BUFFERS {
            self.made += 1;
            Zeroizing::new(Vec::new())
        } else {
            self.out -= 1;
            self.from_thread
                .get_mut()
                .map_err(|_| gone())?
                .recv()
                .map_err(|_| gone())?
        };
        let full = std::mem::replace(&mut self.current, next);
        self.to_thread
            .as_ref()
            .ok_or_else(gone)?
            .send(full)
            .map_err(|_| gone())?;
        self.out += 1;
        self.failed()
    }

    /// Writes what is left and waits until the thread wrote everything; its first error.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.current.is_empty() {
            self.hand_over()?;
        }
        let gone = || io::Error::other("the writing thread stopped");
        while self.out > 0 {
            self.from_thread
                .get_mut()
                .map_err(|_| gone())?
                .recv()
                .map_err(|_| gone())?;
            self.out -= 1;
        }
        self.failed()
    }
}

impl Write for Background {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.current.capacity() == 0 {
            self.current.reserve_exact(BACKGROUND_BLOCK);
        }
        let room = BACKGROUND_BLOCK - self.current.len();
        let n = room.min(data.len());
        self.current.extend_from_slice(&data[..n]);
        if self.current.len() == BACKGROUND_BLOCK {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.finish()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.to_thread.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes `data` to `path` (mode 0600), through a [`PendingFile`].
pub fn write_file(path: &Path, data: &[u8], overwrite: bool) -> Result<()> {
    let mut pending = PendingFile::create(path, overwrite)?;
    let mut w = pending.writer();
    w.write_all(data)
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    drop(w);
    pending.commit()
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
    fn a_special_file_is_opened_and_a_regular_one_refused() {
        assert!(open_special(Path::new("/dev/null")).is_ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let regular = dir.path().join("plain");
        std::fs::write(&regular, b"x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&regular, &link).expect("symlink");
        for path in [&regular, &link] {
            assert!(
                matches!(open_special(path), Err(Error::Usage(_))),
                "{path:?}"
            );
        }
        assert_eq!(std::fs::read(&regular).expect("read"), b"x");
    }

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

    #[test]
    fn the_threaded_writer_writes_everything_in_order_and_reports_errors() {
        use std::sync::{atomic::AtomicBool, Arc};
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("big");
        let data: Vec<u8> = (0..(5 * BACKGROUND_BLOCK + 12345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        for threaded in [true, false] {
            let _ = std::fs::remove_file(&out);
            let pending = PendingFile::create(&out, false).expect("create");
            {
                let mut w = pending.writer_for(Arc::new(AtomicBool::new(threaded)));
                for piece in data.chunks(300_001) {
                    w.write_all(piece).expect("write");
                }
                w.flush().expect("flush");
            }
            pending.commit().expect("commit");
            assert_eq!(
                std::fs::read(&out).expect("read"),
                data,
                "threaded {threaded}"
            );
        }
        // A file that cannot be written: the thread's error comes back, at the latest from
        // the flush.
        let read_only = File::open(&out).expect("open");
        let mut w = Background::new(read_only);
        let wrote = data.chunks(300_001).try_for_each(|p| w.write_all(p));
        assert!(wrote.and_then(|()| w.finish()).is_err());
    }

    #[test]
    fn an_abandoned_file_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.txt");
        let mut pending = PendingFile::create(&out, false).expect("create");
        pending.writer().write_all(b"half").expect("write");
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
