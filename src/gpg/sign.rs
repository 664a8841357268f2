//! Signing as gpg would, but with the card's signature key and no scdaemon: `--sign`,
//! `--detach-sign` (with `--textmode`) and `--clearsign`, armored or not, with the status
//! lines GPGME reads for a sign result (`SIG_CREATED`). A call for a key that is not on a
//! present card goes to the real gpg before any input is read.

use std::{
    ffi::OsString,
    io::{Read, Write},
    path::Path,
    time::SystemTime,
};

use openpgp_card::{ocard::KeyType, state::Transaction, Card};
use secrecy::SecretString;
use sequoia_openpgp::{
    armor,
    packet::signature::SignatureBuilder,
    serialize::stream::{Armorer, LiteralWriter, Message, Signer},
    types::SignatureType,
};

use super::{
    args::{DecryptCall, SignMode},
    decrypt::{loopback, read_message},
    real,
};
use crate::{
    card::{self, link::ApduCounter, pin, pubkey, signer::CardSigner, PcscSource},
    config::Config,
    error::{Error, Result},
    gpg_status::{Status, StatusWriter},
    prompt::Prompter,
    ui::Interaction,
};

/// gpg's exit code for a failed operation.
const GPG_FAILED: u8 = 2;

/// Input signed in memory, at most this much (mail and its attachments).
const MAX_INPUT: u64 = crate::engine::memory::DEFAULT_LIMIT;

/// Signs with a present card's signature key when the call names it (or names no key);
/// otherwise hands the call to the real gpg.
pub fn run(call: &DecryptCall, args: &[OsString], config: &Config, real_gpg: &Path) -> u8 {
    let mode = call.sign.unwrap_or(SignMode::Detached);
    let mut source = PcscSource::default();
    let counter = ApduCounter::default();
    let cards = card::open_all(&mut source, &counter, false).unwrap_or_default();
    // The card the user chose, as for decrypting, else any.
    let chosen = super::chosen_card();
    // The card is chosen and signs in one transaction (one read of its data, not two).
    let mut result = None;
    for mut open in cards {
        let Ok(mut tx) = open.card.transaction() else {
            continue;
        };
        if let Some(wanted) = &chosen {
            let ident = tx.application_identifier().map(|aid| aid.ident());
            if !ident.is_ok_and(|ident| card::ident_matches(&ident, wanted)) {
                continue;
            }
        }
        if let Some(key) = signing_key(&mut tx).filter(|k| named(call, k, real_gpg)) {
            result = Some(sign_on(&mut tx, call, mode, key, config));
            break;
        }
    }
    let Some(result) = result else {
        drop(source);
        let e = real::exec(real_gpg, args);
        eprintln!("cardecrypt-gpg: {e}");
        return GPG_FAILED;
    };
    for note in source.release(false) {
        eprintln!("cardecrypt-gpg: {note}");
    }
    let mut status = StatusWriter::open(call.status_fd).ok();
    match result {
        Ok((lines, to_encrypt)) => {
            if let Some(status) = &mut status {
                status.write_all(&lines);
            }
            match to_encrypt {
                Some(signed) => encrypt(call, args, real_gpg, &signed),
                None => 0,
            }
        }
        Err(e) => {
            if let Some(status) = &mut status {
                status.write(&Status::Failure {
                    location: "sign".into(),
                    code: 83886179,
                });
            }
            eprintln!("cardecrypt-gpg: signing failed: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("cardecrypt-gpg: hint: {hint}");
            }
            GPG_FAILED
        }
    }
}

/// The public key in the card's signature slot, if it holds one.
fn signing_key(tx: &mut Card<Transaction<'_>>) -> Option<pubkey::PublicKey> {
    let slot = card::slot_info(tx, KeyType::Signing).ok()??;
    pubkey::slot_key(
        tx,
        KeyType::Signing,
        &slot,
        pubkey::default_cache_dir().as_deref(),
    )
    .ok()
}

/// Whether the call names `key` (its fingerprint, key id, or a certificate in the keyring
/// that holds it), or names no key at all: then the card's key is gpg's default, if the
/// keyring knows it (a second card present, someone else's or a spare, is nobody's default).
fn named(call: &DecryptCall, key: &pubkey::PublicKey, real_gpg: &Path) -> bool {
    let fpr = key.fingerprint().to_hex();
    if call.local_user.is_empty() {
        return holds(call, real_gpg, &fpr, &fpr);
    }
    call.local_user.iter().any(|wanted| {
        let bare = wanted
            .trim()
            .trim_start_matches("0x")
            .trim_end_matches('!')
            .replace(' ', "")
            .to_ascii_uppercase();
        (bare.len() >= 16 && fpr.ends_with(&bare)) || holds(call, real_gpg, wanted, &fpr)
    })
}

/// Whether the keyring's certificate for `wanted` (an address, a key id, a fingerprint)
/// has the key `fpr`.
fn holds(call: &DecryptCall, real_gpg: &Path, wanted: &str, fpr: &str) -> bool {
    std::process::Command::new(real_gpg)
        .env(real::RUNNING_REAL, "1")
        .args(["--batch", "--no-tty", "--with-colons"])
        .args(&call.verify_options)
        .args(["--list-keys", "--", wanted])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("fpr:"))
                .any(|l| l.trim_matches(':').eq_ignore_ascii_case(fpr))
        })
}

/// The PIN, the signature and its output; gpg's status lines for it.
fn sign_on(
    tx: &mut Card<Transaction<'_>>,
    call: &DecryptCall,
    mode: SignMode,
    key: pubkey::PublicKey,
    config: &Config,
) -> Result<(Vec<Status>, Option<Vec<u8>>)> {
    let info = card::CardInfo::read(tx)?;
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        loopback: loopback(call),
        pinentry_only: true,
        tty_name: call.ttyname.clone(),
        notice: None,
    };
    let pin = signing_pin(call, &info, &mut ui)?;
    let touch = tx
        .user_interaction_flag(KeyType::Signing)
        .ok()
        .flatten()
        .is_some_and(|uif| uif.touch_policy().touch_required());
    let mut input = Vec::new();
    read_message(call)?
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .map_err(|e| Error::io("cannot read the data to sign", e))?;
    if input.len() as u64 > MAX_INPUT {
        return Err(Error::Other(format!(
            "more than {} MiB to sign",
            MAX_INPUT >> 20
        )));
    }
    let fpr = key.fingerprint().to_hex();
    let pk_algo = u8::from(key.pk_algo());
    let signer = CardSigner::new(tx, key, pin);
    let hash = signer.hash();
    let created = SystemTime::now();
    let class = if call.textmode || mode == SignMode::Clear {
        SignatureType::Text
    } else {
        SignatureType::Binary
    };
    if touch {
        ui.touch(&info.ident);
    }
    let signed = make(call, mode, signer, class, created, &input);
    if touch {
        ui.touch_done();
    }
    let signed = signed?;
    if !call.encrypt {
        write_output(call, &signed)?;
    }
    let lines = vec![
        Status::KeyConsidered { fpr: fpr.clone() },
        Status::BeginSigning(u8::from(hash)),
        Status::SigCreated {
            kind: match mode {
                SignMode::Inline => 'S',
                SignMode::Detached => 'D',
                SignMode::Clear => 'C',
            },
            pk_algo,
            hash_algo: u8::from(hash),
            class: u8::from(class),
            created: crate::time::to_secs(created),
            fpr,
        },
    ];
    Ok((lines, call.encrypt.then_some(signed)))
}

/// The user PIN for a signature, as for decrypting: from `--passphrase-fd` or the caller's
/// loopback, else a pinentry; a blocked PIN or the last try is refused.
fn signing_pin(
    call: &DecryptCall,
    info: &card::CardInfo,
    ui: &mut Prompter,
) -> Result<SecretString> {
    let given = match call.passphrase_fd {
        Some(fd) => pin::read_pin(&pin::PinSource::Fd(fd))?,
        None => None,
    };
    pin::check_tries(info.pw1_tries, false)?;
    if let Some(pin) = given {
        return Ok(pin);
    }
    if matches!(call.pinentry_mode.as_deref(), Some("error" | "cancel")) {
        return Err(Error::PinUnavailable(
            "and --pinentry-mode forbids asking for it".into(),
        ));
    }
    ui.user_pin(&info.ident, info.pw1_tries)
}

/// The signed output: a detached signature, a signed message, or cleartext-signed text.
fn make(
    call: &DecryptCall,
    mode: SignMode,
    signer: CardSigner<'_, '_>,
    class: SignatureType,
    created: SystemTime,
    input: &[u8],
) -> Result<Vec<u8>> {
    let failed = |e: anyhow::Error| match e.downcast::<Error>() {
        Ok(e) => e,
        Err(e) => Error::Other(format!("{e:#}")),
    };
    let hash = signer.hash();
    let template = SignatureBuilder::new(class)
        .set_signature_creation_time(created)
        .map_err(failed)?;
    let mut sink = Vec::new();
    {
        let mut message = Message::new(&mut sink);
        // Signed to be encrypted: binary, the real gpg armors the encrypted message.
        if call.armor && mode != SignMode::Clear && !call.encrypt {
            let kind = match mode {
                SignMode::Detached => armor::Kind::Signature,
                _ => armor::Kind::Message,
            };
            message = Armorer::new(message).kind(kind).build().map_err(failed)?;
        }
        let signer = Signer::with_template(message, signer, template)
            .and_then(|s| s.hash_algo(hash))
            .map_err(failed)?;
        let mut writer = match mode {
            SignMode::Detached => signer.detached().build(),
            SignMode::Clear => signer.cleartext().build(),
            SignMode::Inline => signer.build().and_then(|s| LiteralWriter::new(s).build()),
        }
        .map_err(failed)?;
        writer
            .write_all(input)
            .map_err(|e| Error::io("cannot sign", e))?;
        writer.finalize().map_err(failed)?;
    }
    Ok(sink)
}

fn write_output(call: &DecryptCall, signed: &[u8]) -> Result<()> {
    match call.output.as_deref() {
        None | Some("-") => {
            let mut out = std::io::stdout().lock();
            out.write_all(signed)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("cannot write to standard output", e))
        }
        Some(path) => crate::output::write_file(Path::new(path), signed, call.yes),
    }
}

/// `--encrypt --sign`: the real gpg encrypts the signed packets (`--no-literal`) with the
/// call's recipients, trust and output, reading them on its standard input. Returns its exit
/// code.
fn encrypt(call: &DecryptCall, args: &[OsString], real_gpg: &Path, signed: &[u8]) -> u8 {
    let mut rest: Vec<OsString> = vec!["--no-literal".into()];
    let mut skip_value = false;
    for (i, arg) in args.iter().enumerate() {
        let text = arg.to_string_lossy();
        if skip_value {
            skip_value = false;
            continue;
        }
        if Some(i) == call.source_index {
            rest.push("-".into());
            continue;
        }
        match text.as_ref() {
            "--sign" | "-s" => continue,
            "-u" | "--local-user" | "--default-key" => {
                skip_value = true;
                continue;
            }
            t if t.starts_with("--local-user=") || t.starts_with("--default-key=") => continue,
            _ => rest.push(arg.clone()),
        }
    }
    let child = std::process::Command::new(real_gpg)
        .env(real::RUNNING_REAL, "1")
        .args(&rest)
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cardecrypt-gpg: cannot run {}: {e}", real_gpg.display());
            return GPG_FAILED;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(signed) {
            eprintln!("cardecrypt-gpg: cannot hand the signed data to gpg: {e}");
        }
    }
    child
        .wait()
        .ok()
        .and_then(|s| s.code())
        .map_or(GPG_FAILED, |c| c.clamp(0, 255) as u8)
}
