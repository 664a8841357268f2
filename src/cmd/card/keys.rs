//! `card import`, `card generate`, `card export`: keys onto the card, certificates out.

use openpgp_card::{ocard::KeyType, state::Transaction, Card};
use sequoia_openpgp::{crypto::Password, serialize::SerializeInto, Cert};

use super::{admin_pin, confirm, open_one, transaction, user_pin};
use crate::{
    card::{report::slot_name, slot_info, CardSource},
    certify,
    cli::{ExportArgs, GenerateArgs, ImportArgs, KeyAlgo},
    error::{Error, Result},
    output, provision,
};

/// `card import FILE`.
pub fn import_file(source: &mut dyn CardSource, args: ImportArgs, verbose: bool) -> Result<()> {
    let ImportArgs {
        file,
        card,
        subkey,
        passphrase_file,
        replace,
        auth,
    } = args;
    let cert = provision::read_key(&file)?;
    let password = match &passphrase_file {
        Some(_) => Some(super::secret(
            passphrase_file.as_deref(),
            true,
            "passphrase",
        )?),
        None if cert
            .keys()
            .secret()
            .any(|k| !k.key().has_unencrypted_secret()) =>
        {
            Some(super::secret(None, auth.batch, "key passphrase")?)
        }
        None => None,
    }
    .map(|p| Password::from(secrecy::ExposeSecret::expose_secret(&p)));
    let planned = provision::plan(&cert, &subkey, password.as_ref())?;
    for warning in planned.iter().filter_map(|p| p.warning.as_deref()) {
        eprintln!("cardecrypt: {warning}");
    }
    let (mut open, ident) = open_one(source, card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    let slots: Vec<KeyType> = planned.iter().map(|p| p.slot).collect();
    guard_occupied(&mut tx, &slots, &ident, replace, auth.batch)?;
    import_into(
        &mut tx,
        &planned,
        admin_pin(&auth)?,
        auth.allow_last_pin_try,
    )?;
    for p in &planned {
        eprintln!(
            "cardecrypt: imported {} into the {} slot of card {ident}",
            p.fingerprint,
            slot_name(p.slot)
        );
    }
    Ok(())
}

/// `card generate`.
pub fn generate(source: &mut dyn CardSource, args: GenerateArgs, verbose: bool) -> Result<()> {
    let GenerateArgs {
        card,
        userid,
        algo,
        output: out,
        replace,
        auth,
    } = args;
    let algo = match algo {
        KeyAlgo::Cv25519 => provision::KeyAlgo::Cv25519,
        KeyAlgo::Nistp256 => provision::KeyAlgo::Nistp256,
        KeyAlgo::Nistp384 => provision::KeyAlgo::Nistp384,
        KeyAlgo::Nistp521 => provision::KeyAlgo::Nistp521,
        KeyAlgo::Rsa2048 => provision::KeyAlgo::Rsa2048,
        KeyAlgo::Rsa3072 => provision::KeyAlgo::Rsa3072,
        KeyAlgo::Rsa4096 => provision::KeyAlgo::Rsa4096,
    };
    if out.exists() {
        return Err(Error::Usage(format!("{} exists", out.display())));
    }
    let (mut open, ident) = open_one(source, card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    guard_occupied(&mut tx, &certify::SLOTS, &ident, replace, auth.batch)?;
    let admin = admin_pin(&auth)?;
    let user = user_pin(&auth)?;
    eprintln!("cardecrypt: generating {algo:?} keys on card {ident}...");
    let keys = provision::generate(&mut tx, admin, auth.allow_last_pin_try, algo)?;
    let cert = certify::certify(&mut tx, &keys, &userid, user)?;
    write_cert(&out, &cert)?;
    eprintln!(
        "cardecrypt: card {ident} holds the keys of {}; certificate written to {}",
        cert.fingerprint(),
        out.display()
    );
    Ok(())
}

/// `card export`.
pub fn export(source: &mut dyn CardSource, args: ExportArgs, verbose: bool) -> Result<()> {
    let ExportArgs {
        card,
        userid,
        output: out,
        auth,
    } = args;
    if out.exists() {
        return Err(Error::Usage(format!("{} exists", out.display())));
    }
    let (mut open, ident) = open_one(source, card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    let keys = provision::slot_keys(&mut tx)?;
    let cert = certify::certify(&mut tx, &keys, &userid, user_pin(&auth)?)?;
    write_cert(&out, &cert)?;
    eprintln!(
        "cardecrypt: certificate {} for card {ident} written to {}",
        cert.fingerprint(),
        out.display()
    );
    Ok(())
}

/// Overwriting a key on a card destroys it: name the card, and ask (or demand --replace).
fn guard_occupied(
    tx: &mut Card<Transaction<'_>>,
    slots: &[KeyType],
    ident: &str,
    replace: bool,
    batch: bool,
) -> Result<()> {
    let mut occupied = Vec::new();
    for &slot in slots {
        if let Some(info) = slot_info(tx, slot)? {
            occupied.push(format!("{} ({:X})", slot_name(slot), info.fingerprint));
        }
    }
    if occupied.is_empty() || replace {
        return Ok(());
    }
    let question = format!(
        "card {ident} already holds keys in: {}. Replace them (the old keys are lost)?",
        occupied.join(", ")
    );
    if confirm(&question, batch) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "card {ident} already holds keys in: {}; pass --replace to overwrite them",
        occupied.join(", ")
    )))
}

fn import_into(
    tx: &mut Card<Transaction<'_>>,
    planned: &[provision::Planned],
    admin_pin: secrecy::SecretString,
    allow_last_try: bool,
) -> Result<()> {
    let tries = tx.pw_status_bytes().map_err(Error::from)?.err_count_pw3();
    crate::card::pin::check_tries(tries, allow_last_try)?;
    let mut admin = tx
        .as_admin_card(admin_pin)
        .map_err(|e| crate::card::pin::pin_failure(e, tries))?;
    for p in planned {
        if let Err(e) = admin.import_key(&p.key, p.slot) {
            let supported = provision::supported_algorithms(admin.as_transaction(), p.slot);
            return Err(Error::Card(format!(
                "importing {} into the {} slot: {e}; the card supports there: {supported}",
                p.fingerprint,
                slot_name(p.slot)
            )));
        }
        crate::card::pubkey::remember(
            &p.public,
            crate::card::pubkey::default_cache_dir().as_deref(),
        );
    }
    Ok(())
}

/// Library entry for importing planned keys into one card (used by tests and `card import`).
pub fn import(
    source: &mut dyn CardSource,
    wanted: Option<&str>,
    planned: &[provision::Planned],
    admin_pin: secrecy::SecretString,
    allow_last_try: bool,
    trace: bool,
) -> Result<String> {
    let (mut open, ident) = open_one(source, wanted, trace)?;
    let mut tx = transaction(&mut open.card)?;
    import_into(&mut tx, planned, admin_pin, allow_last_try)?;
    Ok(ident)
}

fn write_cert(path: &std::path::Path, cert: &Cert) -> Result<()> {
    let armored = cert
        .armored()
        .to_vec()
        .map_err(|e| Error::Other(e.to_string()))?;
    output::write_file(path, &armored, false)
}
