//! The real gpg behind cardecrypt-gpg: it reads the authenticated inner packet stream, writes
//! the literal data and checks the signatures with the user's keyring and trust. What it says
//! decides whether GPGME hears success.

use std::{
    fs::File,
    io::{BufRead, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
};

use zeroize::Zeroizing;

use super::{
    args::DecryptCall,
    own_literal::{unsigned_literal, OwnLiteral},
    real,
};
use crate::{
    error::{Error, Result},
    gpg_status::Status,
};

/// Up to this much of the inner packet stream is held before the real gpg is started: a
/// message of mail size that carries no signature is then written by us, and no gpg runs
/// (it is what costs most in an indexer's decrypt). Anything larger or signed streams into
/// the real gpg as before.
const HOLD: usize = 1 << 20;

/// gpg's exit code for a failed operation.
const GPG_FAILED: u8 = 2;

/// Status lines of the real gpg's signature check that belong in our output.
const INNER_LINES: &[&str] = &[
    "PLAINTEXT",
    "NEWSIG",
    "GOODSIG",
    "EXPSIG",
    "EXPKEYSIG",
    "REVKEYSIG",
    "BADSIG",
    "ERRSIG",
    "VALIDSIG",
    "SIG_ID",
    "TRUST_",
    "NO_PUBKEY",
    "KEY_CONSIDERED",
    "KEYEXPIRED",
    "KEYREVOKED",
    "NOTATION_",
    "POLICY_URL",
    "SIGEXPIRED",
];

/// The real gpg, reading the authenticated inner packet stream on its standard input: it
/// writes the literal data and checks the signatures. It is started by the first write,
/// which the engine makes only once the whole message authenticated.
pub struct InnerGpg<'c> {
    call: &'c DecryptCall,
    output: Option<PathBuf>,
    real_gpg: &'c Path,
    running: Option<Running>,
    /// The real gpg stopped reading: its exit code says why, so later bytes are dropped.
    closed: bool,
    /// The stream so far, while it fits in [`HOLD`] and the real gpg has not started.
    held: Zeroizing<Vec<u8>>,
    /// Keep the plaintext instead of writing it to standard output: the caller reads status
    /// lines and data on one descriptor, and gpg's order puts lines before the data.
    capture: bool,
}

/// What a captured plaintext may grow to (as `mail` holds plaintext in memory).
const CAPTURE_LIMIT: u64 = crate::engine::memory::DEFAULT_LIMIT;

type Captured = std::thread::JoinHandle<std::io::Result<Zeroizing<Vec<u8>>>>;

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    status: std::thread::JoinHandle<InnerStatus>,
    stdout: Option<Captured>,
}

/// What the real gpg said on its status descriptor.
#[derive(Default)]
struct InnerStatus {
    /// Its signature lines, which belong in ours.
    lines: Vec<String>,
    /// The first line that says it failed (ERROR, FAILURE, DECRYPTION_FAILED, NODATA, ...).
    failure: Option<String>,
    /// It found literal data and wrote it.
    plaintext: bool,
    /// A signature it could not check (no public key): gpg exits 2 for that alone.
    unchecked_signature: bool,
}

/// Status keywords of the real gpg that mean the plaintext did not come out whole.
const FAILURE_LINES: &[&str] = &[
    "ERROR",
    "FAILURE",
    "DECRYPTION_FAILED",
    "NODATA",
    "BADMDC",
    "UNEXPECTED",
];

impl InnerStatus {
    fn read(status: File) -> InnerStatus {
        let mut seen = InnerStatus::default();
        for line in std::io::BufReader::new(status)
            .lines()
            .map_while(|l| l.ok())
        {
            let Some(line) = line.strip_prefix("[GNUPG:] ") else {
                continue;
            };
            let keyword = line.split(' ').next().unwrap_or_default();
            if seen.failure.is_none() && FAILURE_LINES.contains(&keyword) {
                seen.failure = Some(line.to_string());
            }
            seen.plaintext |= keyword == "PLAINTEXT";
            seen.unchecked_signature |= matches!(keyword, "ERRSIG" | "NO_PUBKEY");
            if INNER_LINES.iter().any(|p| line.starts_with(p)) {
                seen.lines.push(line.to_string());
            }
        }
        seen
    }
}

/// How the real gpg ended.
pub struct InnerOutcome {
    /// Its exit code; `None` for a signal.
    exit: Option<i32>,
    /// Its exit code as ours (2 for a signal).
    pub code: u8,
    /// Its status lines that belong in ours.
    pub lines: Vec<String>,
    status: InnerStatus,
    /// Writing the decrypted stream into it failed: it did not read all of it.
    write_failed: bool,
    /// The plaintext, when it was captured rather than written.
    pub captured: Option<Zeroizing<Vec<u8>>>,
}

impl InnerOutcome {
    /// Whether the whole job succeeded, as GPGME must be told: the literal data written, no
    /// failure said, and an exit code of 0, 1 (a bad signature) or 2 for a signature that
    /// could not be checked alone (gpg's own exit code for a signer's key not at hand, which
    /// gpg itself reports with DECRYPTION_OKAY).
    pub fn verdict(&self) -> std::result::Result<(), String> {
        if self.write_failed {
            return Err("it stopped reading it".into());
        }
        let Some(exit) = self.exit else {
            return Err("it was ended by a signal".into());
        };
        if let Some(line) = &self.status.failure {
            return Err(format!("it said {line}"));
        }
        if !self.status.plaintext {
            return Err("it found no literal data in it".into());
        }
        match exit {
            0 | 1 => Ok(()),
            2 if self.status.unchecked_signature => Ok(()),
            other => Err(format!("it exited with {other}")),
        }
    }
}

impl<'c> InnerGpg<'c> {
    pub fn new(call: &'c DecryptCall, output: Option<PathBuf>, real_gpg: &'c Path) -> Self {
        InnerGpg {
            call,
            output,
            real_gpg,
            running: None,
            closed: false,
            held: Zeroizing::new(Vec::new()),
            capture: false,
        }
    }

    /// Keep the plaintext for the caller ([`InnerOutcome::captured`]) instead of writing it
    /// to standard output.
    pub fn capturing(mut self, on: bool) -> Self {
        self.capture = on && self.output.is_none();
        self
    }

    fn start(&mut self) -> Result<&mut Running> {
        if self.running.is_none() {
            self.running = Some(self.spawn()?);
        }
        self.running
            .as_mut()
            .ok_or_else(|| Error::Other("gpg did not start".into()))
    }

    fn spawn(&self) -> Result<Running> {
        let pipe_error = |e: std::io::Error| Error::io("cannot make a pipe for gpg's status", e);
        let (status_read, status_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| pipe_error(e.into()))?;
        // The child inherits only the write end.
        rustix::io::fcntl_setfd(&status_write, rustix::io::FdFlags::empty())
            .map_err(|e| pipe_error(e.into()))?;
        let mut cmd = Command::new(self.real_gpg);
        cmd.env(real::RUNNING_REAL, "1");
        // Binary only: what it reads is the authenticated packet stream, never armor.
        cmd.args(["--batch", "--no-tty", "--no-armor"])
            .arg(format!("--status-fd={}", status_write.as_raw_fd()))
            .args(&self.call.verify_options);
        if let Some(path) = &self.output {
            cmd.arg("--output").arg(path);
            if self.call.yes {
                cmd.arg("--yes");
            }
        }
        if self.capture {
            cmd.stdout(Stdio::piped());
        }
        let mut child = cmd
            .arg("--decrypt")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot run {}", self.real_gpg.display()), e))?;
        drop(status_write);
        let status = std::thread::spawn(move || InnerStatus::read(File::from(status_read)));
        let stdout = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                use std::io::Read;
                let mut plain = Zeroizing::new(Vec::new());
                out.take(CAPTURE_LIMIT + 1).read_to_end(&mut plain)?;
                if plain.len() as u64 > CAPTURE_LIMIT {
                    return Err(std::io::Error::other(
                        "the plaintext is too large to hold for status lines on its descriptor",
                    ));
                }
                Ok(plain)
            })
        });
        let stdin = child.stdin.take();
        if let Some(pipe) = &stdin {
            crate::paths::widen_pipe(pipe);
        }
        Ok(Running {
            child,
            stdin,
            status,
            stdout,
        })
    }

    /// Ends the input (starting the real gpg if nothing was written: an empty stream) and
    /// waits: how it ended and what it said.
    pub fn finish(mut self) -> Result<InnerOutcome> {
        if self.running.is_none() {
            if let Some(literal) = unsigned_literal(&self.held) {
                return self.write_literal(&literal);
            }
            self.start_with_held()
                .map_err(|e| Error::io("cannot write to gpg", e))?;
        }
        let real_gpg = self.real_gpg;
        let running = self.start()?;
        drop(running.stdin.take());
        let exit = running
            .child
            .wait()
            .map_err(|e| Error::io(format!("cannot wait for {}", real_gpg.display()), e))?
            .code();
        let running = self.running.take();
        let (status, stdout) = running.map_or((None, None), |r| (Some(r.status), r.stdout));
        let mut status = status.and_then(|s| s.join().ok()).unwrap_or_default();
        let captured = match stdout.map(|t| t.join()) {
            None => None,
            Some(Ok(Ok(plain))) => Some(plain),
            Some(Ok(Err(e))) => return Err(Error::io("cannot read gpg's output", e)),
            Some(Err(_)) => return Err(Error::Other("gpg's output was lost".into())),
        };
        Ok(InnerOutcome {
            exit,
            code: exit.map_or(GPG_FAILED, |c| c.clamp(0, 255) as u8),
            lines: std::mem::take(&mut status.lines),
            status,
            write_failed: self.closed,
            captured,
        })
    }

    /// Stops a real gpg that got part of a stream whose decryption then failed.
    pub fn abort(mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

impl InnerGpg<'_> {
    /// Starts the real gpg and hands it what was held.
    fn start_with_held(&mut self) -> std::io::Result<()> {
        let held = std::mem::take(&mut self.held);
        self.start().map_err(std::io::Error::other)?;
        self.pass_on(&held);
        Ok(())
    }

    fn pass_on(&mut self, data: &[u8]) {
        let Some(stdin) = self.running.as_mut().and_then(|r| r.stdin.as_mut()) else {
            return;
        };
        // A gpg that stopped reading early failed to read the whole stream: the verdict
        // counts that as failure.
        if stdin.write_all(data).is_err() {
            self.closed = true;
        }
    }

    /// Writes an unsigned message's literal data where the real gpg would have, with the
    /// status lines it would have written.
    fn write_literal(&self, literal: &OwnLiteral) -> Result<InnerOutcome> {
        match &self.output {
            None if self.capture => {}
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&literal.body)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("cannot write to standard output", e))?;
            }
            Some(path) => {
                let mut file = crate::output::PendingFile::create(path, self.call.yes)?;
                file.writer()
                    .write_all(&literal.body)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                file.commit()?;
            }
        }
        let lines = vec![
            Status::Plaintext {
                format: literal.format,
                date: literal.date,
                name: literal.name.clone(),
            }
            .to_string(),
            Status::PlaintextLength(literal.body.len() as u64).to_string(),
        ];
        Ok(InnerOutcome {
            exit: Some(0),
            code: 0,
            lines,
            status: InnerStatus {
                plaintext: true,
                ..InnerStatus::default()
            },
            write_failed: false,
            captured: self.capture.then(|| literal.body.clone()),
        })
    }
}

impl Write for InnerGpg<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(data.len());
        }
        if self.running.is_none() {
            if self.held.len() + data.len() <= HOLD {
                crate::engine::push_wiped(&mut self.held, data);
                return Ok(data.len());
            }
            self.start_with_held()?;
        }
        self.pass_on(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit: Option<i32>, lines: &[&str]) -> InnerOutcome {
        let text: String = lines.iter().map(|l| format!("[GNUPG:] {l}\n")).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status");
        std::fs::write(&path, text).expect("write");
        let status = InnerStatus::read(File::open(&path).expect("open"));
        InnerOutcome {
            exit,
            code: 0,
            lines: Vec::new(),
            status,
            write_failed: false,
            captured: None,
        }
    }

    #[test]
    fn gpg_reading_the_plaintext_is_success_even_with_a_signature_it_cannot_check() {
        assert!(outcome(Some(0), &["PLAINTEXT 62 0 ", "GOODSIG A B"])
            .verdict()
            .is_ok());
        assert!(outcome(Some(1), &["PLAINTEXT 62 0 ", "BADSIG A B"])
            .verdict()
            .is_ok());
        let unchecked = [
            "PLAINTEXT 62 0 ",
            "NEWSIG",
            "ERRSIG A 22 10 00 1 9 F",
            "NO_PUBKEY A",
        ];
        assert!(outcome(Some(2), &unchecked).verdict().is_ok());
    }

    #[test]
    fn gpg_failing_to_read_it_is_failure() {
        let nested = [
            "ENC_TO A 1 0",
            "NO_SECKEY A",
            "DECRYPTION_FAILED",
            "END_DECRYPTION",
        ];
        assert!(outcome(Some(2), &nested).verdict().is_err());
        assert!(outcome(Some(2), &["NODATA 3"]).verdict().is_err());
        assert!(outcome(Some(2), &["PLAINTEXT 62 0 "]).verdict().is_err());
        assert!(outcome(None, &["PLAINTEXT 62 0 "]).verdict().is_err());
        assert!(outcome(Some(0), &[]).verdict().is_err());
        let mut stopped = outcome(Some(0), &["PLAINTEXT 62 0 "]);
        stopped.write_failed = true;
        assert!(stopped.verdict().is_err());
    }
}
