//! `card pin`, `card set`, `card kdf`, `card factory-reset`.

use openpgp_card::ocard::{data::TouchPolicy, KeyType};

use super::{admin_pin, confirm, new_secret, open_one, secret, transaction, user_pin};
use crate::{
    card::CardSource,
    cli::{
        FactoryResetArgs, KdfEnableArgs, PinCommand, SetArgs, SetWhat, SlotArg, TouchArg,
        UnblockArgs,
    },
    error::{Error, Result},
    provision::{self, PinChange, Setting},
};

/// `card pin ...`.
pub fn pin(source: &mut dyn CardSource, pin: PinCommand, verbose: bool) -> Result<()> {
    let (args, reset_code_file) = match &pin {
        PinCommand::ChangeUser(a) | PinCommand::ChangeAdmin(a) | PinCommand::SetResetCode(a) => {
            (a, None)
        }
        PinCommand::UnblockUser(UnblockArgs {
            args,
            reset_code_file,
        }) => (args, reset_code_file.as_deref()),
    };
    let auth = &args.auth;
    let new_file = args.new_pin_file.as_deref();
    let change = match &pin {
        PinCommand::ChangeUser(_) => PinChange::User {
            current: user_pin(auth)?,
            new: new_secret(new_file, auth.batch, "user PIN")?,
        },
        PinCommand::ChangeAdmin(_) => PinChange::Admin {
            current: admin_pin(auth)?,
            new: new_secret(new_file, auth.batch, "admin PIN")?,
        },
        PinCommand::SetResetCode(_) => PinChange::ResetCode {
            admin: admin_pin(auth)?,
            new: new_secret(new_file, auth.batch, "resetting code")?,
        },
        PinCommand::UnblockUser(_) => match reset_code_file {
            Some(f) => PinChange::UnblockWithResetCode {
                reset_code: secret(Some(f), auth.batch, "resetting code")?,
                new: new_secret(new_file, auth.batch, "user PIN")?,
            },
            None => PinChange::UnblockWithAdmin {
                admin: admin_pin(auth)?,
                new: new_secret(new_file, auth.batch, "user PIN")?,
            },
        },
    };
    let (mut open, ident) = open_one(source, args.card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    provision::change_pin(&mut tx, change, auth.allow_last_pin_try)?;
    eprintln!("cardecrypt: done on card {ident}");
    Ok(())
}

/// `card set ...`.
pub fn set(source: &mut dyn CardSource, args: SetArgs, verbose: bool) -> Result<()> {
    let setting = match args.what {
        SetWhat::Name { name } => Setting::Name(name),
        SetWhat::Url { url } => Setting::Url(url),
        SetWhat::Lang { lang } => Setting::Lang(lang),
        SetWhat::Touch { slot, policy } => Setting::Touch(
            match slot {
                SlotArg::Sig => KeyType::Signing,
                SlotArg::Dec => KeyType::Decryption,
                SlotArg::Aut => KeyType::Authentication,
            },
            match policy {
                TouchArg::Off => TouchPolicy::Off,
                TouchArg::On => TouchPolicy::On,
                TouchArg::Fixed => TouchPolicy::Fixed,
                TouchArg::Cached => TouchPolicy::Cached,
                TouchArg::CachedFixed => TouchPolicy::CachedFixed,
            },
        ),
    };
    let admin = admin_pin(&args.auth)?;
    let (mut open, _) = open_one(source, args.card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    provision::set(&mut tx, admin, args.auth.allow_last_pin_try, setting)
}

/// `card kdf enable`.
pub fn enable_kdf(source: &mut dyn CardSource, args: KdfEnableArgs, verbose: bool) -> Result<()> {
    let KdfEnableArgs { card, auth } = args;
    let user = user_pin(&auth)?;
    let admin = admin_pin(&auth)?;
    let (mut open, ident) = open_one(source, card.card.as_deref(), verbose)?;
    let mut tx = transaction(&mut open.card)?;
    provision::enable_kdf(&mut tx, user, admin, auth.allow_last_pin_try)?;
    eprintln!(
        "cardecrypt: KDF enabled on card {ident}; your PINs are unchanged. A resetting \
         code set before must be set again (card pin set-reset-code)"
    );
    Ok(())
}

/// `card factory-reset`.
pub fn factory_reset(
    source: &mut dyn CardSource,
    args: FactoryResetArgs,
    verbose: bool,
) -> Result<()> {
    let FactoryResetArgs {
        card,
        yes_really_wipe,
        batch,
    } = args;
    let (mut open, ident) = open_one(source, card.card.as_deref(), verbose)?;
    let confirmed = match &yes_really_wipe {
        Some(named) => crate::card::ident_matches(&ident, named),
        None => confirm(
            &format!("Wipe card {ident}: all keys are lost, PINs back to defaults?"),
            batch,
        ),
    };
    if !confirmed {
        return Err(Error::Usage(format!(
            "not wiping card {ident}: confirm with --yes-really-wipe {ident}"
        )));
    }
    let mut tx = transaction(&mut open.card)?;
    provision::factory_reset(&mut tx)?;
    eprintln!("cardecrypt: card {ident} wiped; user PIN 123456, admin PIN 12345678");
    Ok(())
}
