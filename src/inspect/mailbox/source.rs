//! Where a mailbox's messages come from: maildir folders (`cur/` and `new/`), mbox files,
//! and with `recursive` every one of them under a folder. Messages come one at a time, each
//! kept up to [`MAX_MESSAGE`] bytes, so a mailbox of any size is read in bounded memory.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// The most of one message that is kept: headers and outer packets come first, so a larger
/// message (a big attachment) is looked at as far as this and named in the report.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Folders deeper than this are not walked (a loop of bind mounts, say).
const MAX_DEPTH: usize = 32;

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailbox {
    Maildir(PathBuf),
    Mbox(PathBuf),
}

impl Mailbox {
    pub fn path(&self) -> &Path {
        match self {
            Mailbox::Maildir(p) | Mailbox::Mbox(p) => p,
        }
    }

    /// A Sent folder by its name ("Sent", ".Sent", "Sent Items", "[Gmail].Sent Mail", ...).
    pub fn is_sent_folder(&self) -> bool {
        let name = self
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        name.split(|c: char| !c.is_alphanumeric())
            .any(|word| word == "sent")
    }
}

/// One message as read: where it is, its first [`MAX_MESSAGE`] bytes, and its whole size.
pub struct Message {
    /// The file, and for an mbox the line its "From " separator is on.
    pub location: String,
    pub bytes: Vec<u8>,
    pub size: u64,
}

impl Message {
    /// Only the first [`MAX_MESSAGE`] bytes were kept.
    pub fn partly_read(&self) -> bool {
        self.size > self.bytes.len() as u64
    }
}

/// A message that could not be read at all: where, and why.
pub type Unreadable = (String, String);

/// The mailboxes at `path`: the maildir or mbox it is, or with `recursive` every maildir and
/// mbox file under it, in name order.
pub fn find(path: &Path, recursive: bool) -> Result<Vec<Mailbox>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if !recursive {
        return if meta.is_file() {
            if is_mbox(path) {
                Ok(vec![Mailbox::Mbox(path.to_path_buf())])
            } else {
                Err(Error::Usage(format!(
                    "{} is not an mbox file (it does not start with a \"From \" line); for \
                     one email, run `cardecrypt inspect {}`",
                    path.display(),
                    path.display()
                )))
            }
        } else if is_maildir(path) {
            Ok(vec![Mailbox::Maildir(path.to_path_buf())])
        } else {
            Err(Error::Usage(format!(
                "{} is not a maildir (no cur/ or new/ in it): add --recursive to look at every \
                 maildir and mbox file under it",
                path.display()
            )))
        };
    }
    let mut out = Vec::new();
    if meta.is_file() {
        if is_mbox(path) {
            out.push(Mailbox::Mbox(path.to_path_buf()));
        }
    } else {
        walk(path, 0, &mut out);
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "no maildir or mbox file under {}",
            path.display()
        )));
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<Mailbox>) {
    if depth > MAX_DEPTH {
        return;
    }
    if is_maildir(dir) {
        out.push(Mailbox::Maildir(dir.to_path_buf()));
    }
    for entry in sorted_entries(dir) {
        let Ok(kind) = std::fs::symlink_metadata(&entry).map(|m| m.file_type()) else {
            continue;
        };
        let name = entry.file_name().unwrap_or_default();
        if kind.is_dir() && !matches!(name.to_str(), Some("cur" | "new" | "tmp")) {
            walk(&entry, depth + 1, out);
        } else if kind.is_file() && is_mbox(&entry) {
            out.push(Mailbox::Mbox(entry));
        }
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

fn is_mbox(path: &Path) -> bool {
    let mut start = [0u8; 5];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok()
        && &start == b"From "
}

/// Calls `each` with every message of `mailbox`, in order; a message that cannot be read is
/// passed as [`Unreadable`]. Fails only when the mailbox itself cannot be read.
pub fn messages(
    mailbox: &Mailbox,
    each: &mut dyn FnMut(std::result::Result<Message, Unreadable>),
) -> Result<()> {
    match mailbox {
        Mailbox::Maildir(dir) => {
            for sub in ["cur", "new"] {
                for path in sorted_entries(&dir.join(sub)) {
                    let hidden = path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                    if !hidden {
                        each(read_file(&path));
                    }
                }
            }
            Ok(())
        }
        Mailbox::Mbox(path) => {
            let file = File::open(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            split_mbox(BufReader::with_capacity(1 << 16, file), path, each)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
        }
    }
}

fn read_file(path: &Path) -> std::result::Result<Message, Unreadable> {
    let location = path.display().to_string();
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // A FIFO or device would block or never end: not a message.
        return Err((location, "not a regular file".into()));
    }
    let read = || -> std::io::Result<Message> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut bytes = Vec::with_capacity(size.min(MAX_MESSAGE as u64) as usize);
        file.take(MAX_MESSAGE as u64).read_to_end(&mut bytes)?;
        Ok(Message {
            location: location.clone(),
            bytes,
            size,
        })
    };
    read().map_err(|e| (location.clone(), format!("cannot read it: {e}")))
}

/// Splits an mbox at "From " lines that follow an empty line (or start the file).
pub fn split_mbox(
    mut input: impl BufRead,
    path: &Path,
    each: &mut dyn FnMut(std::result::Result<Message, Unreadable>),
) -> std::io::Result<()> {
    let mut current: Option<Message> = None;
    let mut line = Vec::new();
    let (mut number, mut after_blank) = (0u64, true);
    loop {
        let length = bounded_line(&mut input, &mut line, MAX_MESSAGE)?;
        if length == 0 {
            break;
        }
        number += 1;
        if after_blank && is_separator(&line) {
            if let Some(done) = current.take() {
                each(Ok(done));
            }
            current = Some(Message {
                location: format!("{}:{number}", path.display()),
                bytes: Vec::new(),
                size: 0,
            });
        } else if let Some(m) = current.as_mut() {
            m.size += length;
            let room = MAX_MESSAGE.saturating_sub(m.bytes.len());
            m.bytes.extend_from_slice(&line[..line.len().min(room)]);
        }
        after_blank = line == b"\n" || line == b"\r\n";
    }
    if let Some(done) = current {
        each(Ok(done));
    }
    Ok(())
}

/// "From sender Mon Nov 23 10:00:00 2026": a body line that begins with "From " (which
/// writers should have quoted as ">From ") has no time of day after it.
fn is_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ")
        && line[5..]
            .split(|b| b.is_ascii_whitespace())
            .skip(1)
            .any(|word| word.len() >= 5 && word[0].is_ascii_digit() && word[1..].contains(&b':'))
}

/// Reads one line into `line`, keeping at most `cap` bytes of it; returns its whole length
/// (0 at the end), so a file without line breaks never fills memory.
fn bounded_line(input: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> std::io::Result<u64> {
    line.clear();
    let mut total = 0u64;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        input.consume(take);
        total += take as u64;
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        split_mbox(text, Path::new("box"), &mut |m| {
            let m = m.expect("readable");
            out.push((m.location, m.bytes));
        })
        .expect("split");
        out
    }

    #[test]
    fn an_mbox_splits_at_from_lines_after_an_empty_line() {
        let mbox = b"From a@example.org Mon Nov 23 10:00:00 2026\nSubject: one\n\nFrom here on, \
                     text\n\nFrom b@example.org Tue Nov 24 10:00:00 2026\nSubject: two\n\nbody\n";
        let messages = split(mbox);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].0, "box:1");
        assert_eq!(messages[1].0, "box:6");
        assert!(messages[0].1.starts_with(b"Subject: one"));
        assert!(messages[1].1.starts_with(b"Subject: two"));
    }

    #[test]
    fn a_line_longer_than_the_cap_is_kept_only_up_to_it() {
        let mut input: &[u8] = b"abcdefgh\nxy";
        let mut line = Vec::new();
        assert_eq!(bounded_line(&mut input, &mut line, 4).expect("read"), 9);
        assert_eq!(line, b"abcd");
        assert_eq!(bounded_line(&mut input, &mut line, 4).expect("read"), 2);
        assert_eq!(line, b"xy");
        assert_eq!(bounded_line(&mut input, &mut line, 4).expect("read"), 0);
    }

    #[test]
    fn sent_folders_are_known_by_name() {
        for name in [
            "Sent",
            ".Sent",
            "Sent Items",
            "[Gmail].Sent Mail",
            "sent-mail",
        ] {
            assert!(
                Mailbox::Maildir(PathBuf::from(name)).is_sent_folder(),
                "{name}"
            );
        }
        for name in ["INBOX", "Consent", "Drafts"] {
            assert!(
                !Mailbox::Maildir(PathBuf::from(name)).is_sent_folder(),
                "{name}"
            );
        }
    }
}
