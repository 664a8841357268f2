//! Keeping a card unlocked between decrypts, without keeping the PIN anywhere.
//!
//! pcscd powers a card off about half a second after the last program disconnects, and a
//! card that loses power forgets its verified PIN. A card stays powered (and unlocked) while
//! any program holds a shared connection. So after a successful VERIFY, `--keep-unlocked`
//! starts a small holder process that connects in shared mode, sends nothing, and disconnects
//! when its time is up, when the card is removed, or when `cardecrypt lock` says so. It never
//! starts a transaction, so gpg, ykman and cardecrypt itself use the card as usual.

use std::{
    ffi::CString,
    os::unix::{fs::DirBuilderExt, process::CommandExt},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use card_backend::CardBackend;

use super::pcsc_backend::{self, Connect, PcscCard};
use crate::error::{Error, Result};

fn holder_file(ident: &str) -> PathBuf {
    crate::paths::runtime_dir().join(format!("unlocked-{}", ident.replace(':', "-")))
}

/// A running holder: its PID and when it lets go (seconds since the epoch).
pub struct Holder {
    pub pid: u32,
    pub until: u64,
}

/// The holder keeping card `ident` unlocked, if one is running.
pub fn current(ident: &str) -> Option<Holder> {
    let text = std::fs::read_to_string(holder_file(ident)).ok()?;
    let mut fields = text.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let until: u64 = fields.next()?.parse().ok()?;
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
    (alive && until > crate::time::now()).then_some(Holder { pid, until })
}

/// Starts (or renews) a holder for the card `ident` in `reader`.
pub fn start(reader: &str, ident: &str, keep: Duration) -> Result<()> {
    stop(ident);
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find cardecrypt", e))?;
    Command::new(exe)
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

/// Ends the holder of card `ident`, if any. Returns whether one was running.
pub fn stop(ident: &str) -> bool {
    let Some(holder) = current(ident) else {
        return false;
    };
    let _ = std::fs::remove_file(holder_file(ident));
    let _ = Command::new("kill").arg(holder.pid.to_string()).status();
    true
}

/// The holder process itself (`cardecrypt __hold`).
pub fn hold(reader: &str, ident: &str, seconds: u64) -> Result<()> {
    let (ctx, _) = pcsc_backend::readers()?;
    let name = CString::new(reader).map_err(|_| Error::Usage("bad reader name".into()))?;
    let card = match PcscCard::connect(&ctx, &name)? {
        Connect::Card(card) => card,
        _ => return Err(Error::CardRemoved),
    };
    let dir = crate::paths::runtime_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let until = crate::time::now() + seconds;
    let file = holder_file(ident);
    let me = std::process::id();
    std::fs::write(&file, format!("{me} {until}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    let reader_c = name;
    loop {
        if crate::time::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        let ours = std::fs::read_to_string(&file)
            .ok()
            .is_some_and(|t| t.starts_with(&format!("{me} ")));
        if !ours || !card_present(&ctx, &reader_c) {
            break;
        }
    }
    if std::fs::read_to_string(&file)
        .ok()
        .is_some_and(|t| t.starts_with(&format!("{me} ")))
    {
        let _ = std::fs::remove_file(&file);
    }
    drop(card);
    Ok(())
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
