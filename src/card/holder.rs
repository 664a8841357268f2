//! Keeping a card unlocked between decrypts, without keeping the PIN anywhere.
//!
//! pcscd powers a card off about half a second after the last program disconnects, and a
//! card that loses power forgets its verified PIN. A card stays powered (and unlocked) while
//! any program holds a shared connection. So after a successful VERIFY, `--keep-unlocked`
//! starts a small holder process that connects in shared mode and never starts a transaction
//! while it holds, so gpg, ykman and cardecrypt itself use the card as usual. When its time
//! is up, when `cardecrypt lock` says so, or when the card's reader reports a change, it makes
//! the card forget the PIN (VERIFY P1=FF; a card that cannot is reset) and lets go.
//!
//! A later decrypt with keep-unlocked extends the running holder's time over its socket: one
//! round trip, no new process. `lock` and `card status` talk to it there too, in the user's
//! private runtime directory; nothing trusts a PID. One holder per card: a second one that
//! starts meanwhile finds the first by its lock file, extends it and leaves.

use std::{
    ffi::CString,
    io::{Read, Write},
    os::unix::{
        net::{UnixListener, UnixStream},
        process::CommandExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use super::{
    forget,
    pcsc_backend::{self, Connect, PcscCard},
};
use crate::error::{Error, Result};

/// The longest request line; anything longer is not ours.
const MAX_REQUEST: usize = 64;
/// How long one client may take to send its request and read the answer, in all.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How often the holder looks at the clock while nothing happens: the reader's state change
/// and `stop` wake it at once; this only bounds how late a suspend-crossing deadline is seen.
const CLOCK_CHECK: Duration = Duration::from_secs(2);

/// The holder's socket for card `ident`, in the user's private runtime directory.
fn socket_path(ident: &str) -> Result<PathBuf> {
    let dir = crate::paths::private_runtime_dir().map_err(Error::Other)?;
    Ok(dir.join(format!("unlocked-{}.sock", ident.replace(':', "-"))))
}

/// A running holder: when it lets go (seconds since the epoch).
pub struct Holder {
    pub until: u64,
}

/// Asks the holder of `ident` one thing (`status`, `stop`, `extend SECONDS`); its answer.
fn ask(ident: &str, what: &str) -> Option<String> {
    let path = socket_path(ident).ok()?;
    let mut stream = UnixStream::connect(path).ok()?;
    stream.set_read_timeout(Some(REQUEST_DEADLINE)).ok()?;
    stream.write_all(format!("{what}\n").as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream
        .take(MAX_REQUEST as u64)
        .read_to_end(&mut answer)
        .ok()?;
    Some(String::from_utf8_lossy(&answer).trim().to_string())
}

fn until_from(answer: Option<String>) -> Option<Holder> {
    let until: u64 = answer?.strip_prefix("until ")?.parse().ok()?;
    (until > crate::time::now()).then_some(Holder { until })
}

/// The holder keeping card `ident` unlocked, if one is running: it answers on its socket.
/// No PID is read from anywhere, so nothing planted in a file can make us act on another
/// process.
pub fn current(ident: &str) -> Option<Holder> {
    until_from(ask(ident, "status"))
}

/// Has the running holder of `ident`, if any, hold at least `keep` from now.
pub fn extend(ident: &str, keep: Duration) -> Option<Holder> {
    until_from(ask(ident, &format!("extend {}", keep.as_secs())))
}

/// After a decrypt: whether a holder keeps card `ident`'s PIN from now. With `keep` asked
/// for, the running holder is extended, or one started where the PIN was ours
/// (`we_sent_pin`; a card another program unlocked is not ours to hold). Without, a PIN we
/// sent (from a file) to a card a holder already keeps stays the holder's.
pub fn keep(ident: &str, reader: &str, we_sent_pin: bool, keep: Option<Duration>) -> Result<bool> {
    if ident.is_empty() {
        return Ok(false);
    }
    let Some(keep) = keep.filter(|k| !k.is_zero()) else {
        return Ok(we_sent_pin && current(ident).is_some());
    };
    if extend(ident, keep).is_some() {
        return Ok(true);
    }
    if !we_sent_pin {
        return Ok(false);
    }
    start(reader, ident, keep).map(|()| true)
}

/// Keeps card `ident` in `reader` unlocked for `keep` from now: the running holder extended,
/// or a new one started.
pub fn start(reader: &str, ident: &str, keep: Duration) -> Result<()> {
    // Fails here, with the reason, if the runtime directory is not the user's.
    socket_path(ident)?;
    if extend(ident, keep).is_some() {
        return Ok(());
    }
    spawn(reader, ident, keep)?;
    // Return only once it answers: a `cardecrypt lock` right after us must find it, or it
    // would go on holding the card unlocked.
    let until = Instant::now() + Duration::from_secs(3);
    while extend(ident, keep).is_none() {
        if Instant::now() >= until {
            return Err(Error::Other(
                "the unlock holder did not start (see `cardecrypt card status`)".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn spawn(reader: &str, ident: &str, keep: Duration) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find cardecrypt", e))?;
    // cardecrypt-gpg starts the holder too; the holder is a cardecrypt verb.
    let exe = match exe.file_name() {
        Some(n) if n == "cardecrypt-gpg" => exe.with_file_name("cardecrypt"),
        _ => exe,
    };
    // The holder outlives us: it must not keep the caller's descriptors open (GPGME waits
    // for EOF on the status and data pipes it gave us, mutt on stdout). Descriptors
    // inherited without close-on-exec are closed by bash before it becomes the holder;
    // std closes only 0-2 (to /dev/null below). This runs once per session, not per decrypt.
    let close: String = inherited_descriptors()
        .iter()
        .map(|fd| format!("exec {fd}>&-; "))
        .collect();
    // bash, not sh: dash's redirections take only one-digit descriptors.
    Command::new("/bin/bash")
        .arg("-c")
        .arg(format!("{close}exec \"$0\" \"$@\""))
        .arg(exe)
        .args(["__hold", "--reader", reader, "--ident", ident, "--seconds"])
        .arg(keep.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a mail client waiting for cardecrypt's process group, or a
        // Ctrl-C meant for the client, does not involve the holder.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("cannot start the unlock holder", e))?;
    Ok(())
}

/// Open descriptors above 2 of this process (some are ours with close-on-exec; closing those
/// in the shell is harmless).
fn inherited_descriptors() -> Vec<u32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|fd| *fd > 2)
                .collect()
        })
        .unwrap_or_default()
}

/// Ends the holder of card `ident`, if any, by asking it, and waits (at most 3 s) until it
/// has let go of the card. Returns whether one was running.
pub fn stop(ident: &str) -> bool {
    if ask(ident, "stop").as_deref() != Some("stopping") {
        return false;
    }
    // The holder keeps its lock file until it has closed its connection and locked the card.
    if let Ok(path) = socket_path(ident) {
        let until = Instant::now() + Duration::from_secs(3);
        while matches!(lock_file(&path), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    true
}

/// Time since boot, suspend included: a deadline on it passes during a suspend as on a wall
/// clock, and setting the wall clock does not move it.
fn boot_clock() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// What the serving thread and the watching loop share.
struct State {
    /// When to let go, on [`boot_clock`].
    deadline: Mutex<Duration>,
    stop: AtomicBool,
    ctx: pcsc::Context,
}

impl State {
    fn deadline(&self) -> Duration {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The deadline in seconds since the epoch, for people and `card status`.
    fn until_epoch(&self) -> u64 {
        // Rounded up: a holder still holding never reports a time already past.
        let left = self.deadline().saturating_sub(boot_clock());
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        crate::time::now().saturating_add(secs)
    }

    fn extend(&self, keep: Duration) {
        let keep = keep.min(crate::time::MAX_KEEP_UNLOCKED);
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *deadline = (*deadline).max(boot_clock() + keep);
    }
}

/// The holder process itself (`cardecrypt __hold`): holds a shared connection and answers on
/// its socket until the time is up, `stop` comes or the card's state changes; then the card
/// forgets the PIN.
pub fn hold(reader: &str, ident: &str, seconds: u64) -> Result<()> {
    let path = socket_path(ident)?;
    let keep = Duration::from_secs(seconds);
    let Some(_lock) = lock_file(&path)? else {
        // Another holder has this card: give it our time and leave.
        let until = Instant::now() + Duration::from_secs(3);
        while extend(ident, keep).is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        return Ok(());
    };
    let (ctx, _) = pcsc_backend::readers()?;
    let name = CString::new(reader).map_err(|_| Error::Usage("bad reader name".into()))?;
    let card = match PcscCard::connect(&ctx, &name, &forget::Verified::default())? {
        Connect::Card(card) => card,
        _ => return Err(Error::CardRemoved),
    };
    // Only a holder holding the lock gets here: a socket left over is from one that died.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| Error::io(format!("cannot listen on {}", path.display()), e))?;
    let state = Arc::new(State {
        deadline: Mutex::new(boot_clock() + keep.min(crate::time::MAX_KEEP_UNLOCKED)),
        stop: AtomicBool::new(false),
        ctx: ctx.clone(),
    });
    let serving = state.clone();
    std::thread::spawn(move || serve(listener, &serving));
    // The user went away (sleep, screen lock, logout's lock): the card forgets the PIN now.
    let leaving = state.clone();
    crate::desktop::watch_away(move || {
        leaving.stop.store(true, Ordering::SeqCst);
        let _ = leaving.ctx.cancel();
    });
    watch(&state, &name);
    let _ = std::fs::remove_file(&path);
    card.close_forgetting(&[forget::PW1]);
    Ok(())
}

/// Takes the card's lock file next to its socket; `None` when another holder has it.
fn lock_file(socket: &std::path::Path) -> Result<Option<std::fs::File>> {
    let path = socket.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io(
            format!("cannot lock {}", path.display()),
            e.into(),
        )),
    }
}

/// Waits, without polling the card, until the deadline passes, `stop` is asked or the
/// reader reports a change (card removed, replaced or reset, the system resumed).
fn watch(state: &State, reader: &CString) {
    let mut readers = [pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
    if state
        .ctx
        .get_status_change(Duration::ZERO, &mut readers)
        .is_err()
    {
        return;
    }
    let first = readers[0].event_count();
    readers[0].sync_current_state();
    while !state.stop.load(Ordering::SeqCst) {
        let now = boot_clock();
        let deadline = state.deadline();
        if now >= deadline {
            return;
        }
        let wait = (deadline - now).min(CLOCK_CHECK);
        match state.ctx.get_status_change(wait, &mut readers) {
            Ok(()) => {
                let event = readers[0].event_state();
                let gone = !event.contains(pcsc::State::PRESENT)
                    || event.intersects(pcsc::State::MUTE | pcsc::State::UNAVAILABLE);
                if gone || readers[0].event_count() != first {
                    return;
                }
                readers[0].sync_current_state();
            }
            Err(pcsc::Error::Timeout | pcsc::Error::Cancelled) => {}
            Err(_) => return,
        }
    }
}

/// Answers requests, each on a thread of its own: a slow client holds up nobody.
fn serve(listener: UnixListener, state: &Arc<State>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = state.clone();
        std::thread::spawn(move || answer(stream, &state));
    }
}

/// Answers one request: `status`, `stop` or `extend SECONDS`, read within the request deadline
/// and length limit.
fn answer(mut stream: UnixStream, state: &State) {
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let reply = match request.split_once(' ').unwrap_or((request.as_str(), "")) {
        ("stop", "") => {
            state.stop.store(true, Ordering::SeqCst);
            let _ = state.ctx.cancel();
            "stopping".to_string()
        }
        ("status", "") => format!("until {}", state.until_epoch()),
        ("extend", seconds) => match seconds.parse::<u64>() {
            Ok(s) if !state.stop.load(Ordering::SeqCst) => {
                state.extend(Duration::from_secs(s));
                format!("until {}", state.until_epoch())
            }
            _ => return,
        },
        _ => return,
    };
    let _ = stream.write_all(format!("{reply}\n").as_bytes());
}

/// One request line of at most [`MAX_REQUEST`] bytes, all of it within [`REQUEST_DEADLINE`].
fn read_request(stream: &mut UnixStream) -> Option<String> {
    let end = Instant::now() + REQUEST_DEADLINE;
    let mut line = Vec::new();
    let mut buf = [0u8; MAX_REQUEST];
    while !line.contains(&b'\n') {
        let left = end.checked_duration_since(Instant::now())?;
        if left.is_zero() || line.len() > MAX_REQUEST {
            return None;
        }
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let line = line.split(|&b| b == b'\n').next()?;
    (line.len() <= MAX_REQUEST)
        .then(|| String::from_utf8(line.to_vec()).ok())
        .flatten()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("pair")
    }

    #[test]
    fn a_request_is_one_short_line() {
        let (mut a, mut b) = pair();
        a.write_all(b"extend 60\n").expect("write");
        assert_eq!(read_request(&mut b).as_deref(), Some("extend 60"));
        let (mut a, mut b) = pair();
        a.write_all(&[b'x'; 200]).expect("write");
        assert_eq!(read_request(&mut b), None);
    }

    #[test]
    fn a_trickling_client_is_cut_off_at_the_deadline() {
        let (mut a, mut b) = pair();
        // 40 bytes over 4 s, then the end: short enough for the length limit, so only the
        // deadline can refuse it (without one, "ssss..." would be read as the request).
        let writer = std::thread::spawn(move || {
            for _ in 0..40 {
                if a.write_all(b"s").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        assert_eq!(read_request(&mut b), None);
        drop(b);
        let _ = writer.join();
    }

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = boot_clock();
        std::thread::sleep(Duration::from_millis(5));
        assert!(boot_clock() > a);
    }
}
