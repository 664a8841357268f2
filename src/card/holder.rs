//! Keeping a card unlocked between decrypts, without keeping the PIN anywhere.
//!
//! pcscd powers a card off about half a second after the last program disconnects, and a
//! card that loses power forgets its verified PIN. A card stays powered (and unlocked) while
//! any program holds a shared connection. So after a successful VERIFY, `--keep-unlocked`
//! starts a small holder process that connects in shared mode, sends nothing, and disconnects
//! when its time is up, when the card is removed, or when `cardecrypt lock` says so. It never
//! starts a transaction, so gpg, ykman and cardecrypt itself use the card as usual.
//!
//! `lock` and `card status` talk to it on a Unix socket in the user's private runtime
//! directory (verified: the user's own, closed to others); nothing trusts a PID.

use std::{
    ffi::CString,
    io::{BufRead, BufReader, Write},
    os::unix::{
        net::{UnixListener, UnixStream},
        process::CommandExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use card_backend::CardBackend;

use super::pcsc_backend::{self, Connect, PcscCard};
use crate::error::{Error, Result};

/// The holder's socket for card `ident`, in the user's private runtime directory.
fn socket_path(ident: &str) -> Result<PathBuf> {
    let dir = crate::paths::private_runtime_dir().map_err(Error::Other)?;
    Ok(dir.join(format!("unlocked-{}.sock", ident.replace(':', "-"))))
}

/// A running holder: when it lets go (seconds since the epoch).
pub struct Holder {
    pub until: u64,
}

/// Asks the holder of `ident` one thing (`status` or `stop`); its one-line answer.
fn ask(ident: &str, what: &str) -> Option<String> {
    let path = socket_path(ident).ok()?;
    let mut stream = UnixStream::connect(path).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{what}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    Some(answer.trim().to_string())
}

/// The holder keeping card `ident` unlocked, if one is running: it answers on its socket.
/// No PID is read from anywhere, so nothing planted in a file can make us act on another
/// process.
pub fn current(ident: &str) -> Option<Holder> {
    let answer = ask(ident, "status")?;
    let until: u64 = answer.strip_prefix("until ")?.parse().ok()?;
    (until > crate::time::now()).then_some(Holder { until })
}

/// Starts (or renews) a holder for the card `ident` in `reader`.
pub fn start(reader: &str, ident: &str, keep: Duration) -> Result<()> {
    // Fails here, with the reason, if the runtime directory is not the user's.
    socket_path(ident)?;
    stop(ident);
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find cardecrypt", e))?;
    // cardecrypt-gpg starts the holder too; the holder is a cardecrypt verb.
    let exe = match exe.file_name() {
        Some(n) if n == "cardecrypt-gpg" => exe.with_file_name("cardecrypt"),
        _ => exe,
    };
    // The holder outlives us: it must not keep the caller's descriptors open (GPGME waits
    // for EOF on the status and data pipes it gave us, mutt on stdout). Descriptors
    // inherited without close-on-exec are closed by bash before it becomes the holder;
    // std closes only 0-2 (to /dev/null below).
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
    // Return only once it answers: a `cardecrypt lock` right after us must find it, or it
    // would go on holding the card unlocked.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while current(ident).is_none() {
        if std::time::Instant::now() >= until {
            return Err(Error::Other(
                "the unlock holder did not start (see `cardecrypt card status`)".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// Ends the holder of card `ident`, if any, by asking it. Returns whether one was running.
pub fn stop(ident: &str) -> bool {
    ask(ident, "stop").is_some_and(|a| a == "stopping")
}

/// The holder process itself (`cardecrypt __hold`): holds a shared connection and answers
/// `status` and `stop` on its socket until the time is up or the card is gone.
pub fn hold(reader: &str, ident: &str, seconds: u64) -> Result<()> {
    let (ctx, _) = pcsc_backend::readers()?;
    let name = CString::new(reader).map_err(|_| Error::Usage("bad reader name".into()))?;
    let card = match PcscCard::connect(&ctx, &name)? {
        Connect::Card(card) => card,
        _ => return Err(Error::CardRemoved),
    };
    let path = socket_path(ident)?;
    // A socket nobody answers on is left from a holder that died: ours to replace (the
    // directory is ours alone).
    if UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = UnixListener::bind(&path)
        .map_err(|e| Error::io(format!("cannot listen on {}", path.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot set up the holder socket", e))?;
    let until = crate::time::now().saturating_add(seconds);
    let mut stopped = false;
    while !stopped && crate::time::now() < until && card_present(&ctx, &name) {
        match listener.accept() {
            Ok((stream, _)) => stopped = answer(stream, until),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let _ = std::fs::remove_file(&path);
    drop(card);
    Ok(())
}

/// Answers one request; returns whether it was `stop`.
fn answer(stream: UnixStream, until: u64) -> bool {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut request).is_err() {
        return false;
    }
    let mut stream = &stream;
    match request.trim() {
        "stop" => {
            let _ = stream.write_all(b"stopping\n");
            true
        }
        "status" => {
            let _ = stream.write_all(format!("until {until}\n").as_bytes());
            false
        }
        _ => false,
    }
}

fn card_present(ctx: &::pcsc::Context, reader: &CString) -> bool {
    let mut states = [pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) => states[0].event_state().contains(pcsc::State::PRESENT),
        Err(_) => false,
    }
}

/// Makes the card forget a verified user PIN now: VERIFY with P1=FF (OpenPGP card 3.x).
pub fn reset_pin_state(backend: &mut dyn CardBackend) -> Result<()> {
    let mut tx = backend
        .transaction(None)
        .map_err(|e| pcsc_backend::classify(&e))?;
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
    ];
    tx.transmit(&select, 256)
        .map_err(|e| pcsc_backend::classify(&e))?;
    for mode in [0x81, 0x82] {
        let resp = tx
            .transmit(&[0x00, 0x20, 0xFF, mode], 256)
            .map_err(|e| pcsc_backend::classify(&e))?;
        if !resp.ends_with(&[0x90, 0x00]) {
            return Err(Error::Card(
                "the card does not support resetting the PIN state (VERIFY P1=FF)".into(),
            ));
        }
    }
    Ok(())
}
