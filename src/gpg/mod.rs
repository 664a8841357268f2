//! `cardecrypt-gpg`: cardecrypt as `gpg` and `gpgconf`, for clients that run gpg through
//! GPGME (Thunderbird, KMail, Claws, notmuch, neomutt's default mode) or by themselves
//! (Emacs EasyPG, Evolution, aerc).
//!
//! A decryption for a key on a present card is done here, through the card; everything
//! else, and every message that turns out not to be for a card, goes to the real gpg with
//! argv and descriptors unchanged. Installed as `gpg` and `gpgconf` (symlinks, see
//! `cardecrypt gpg-shim install`), it tells which by the name it was called by.
//! - [`args`]: which gpg calls are decryptions it can do
//! - [`decrypt`]: doing them, with gpg's status lines
//! - `sign`: signatures with the card's signature key
//! - [`real`]: the real gpg and gpgconf
//! - [`shim`]: installing and removing the `gpg` and `gpgconf` links

pub mod args;
pub mod decrypt;
mod inner;
mod options;
mod order;
mod own_literal;
pub mod real;
mod secret_keys;
pub mod shim;
mod sign;

use std::{ffi::OsString, io::Write, path::Path};

use crate::config::Config;

/// The card the user chose (`CARDECRYPT_CARD`, an ident or serial as `cardecrypt --card`
/// takes it): decrypting and signing use only that one.
fn chosen_card() -> Option<String> {
    std::env::var("CARDECRYPT_CARD")
        .ok()
        .filter(|c| !c.is_empty())
}

/// The line `--version` and `--list-config` add after the real gpg's.
fn banner() -> String {
    format!(
        "OpenPGP card decryption by cardecrypt {} (cardecrypt-gpg)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Runs as gpg or gpgconf, by the name in `argv[0]`; returns the exit code.
pub fn main(argv: Vec<OsString>) -> u8 {
    let called_as = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = &argv[argv.len().min(1)..];
    if std::env::var_os(real::RUNNING_REAL).is_some() {
        eprintln!(
            "cardecrypt-gpg: started as the real gpg by cardecrypt-gpg itself: set \
             CARDECRYPT_REAL_GPG or real-gpg in the config file to the real gpg (/usr/bin/gpg)"
        );
        return 2;
    }
    // A broken config file must not take gpg away: the real gpg is still found.
    let config = Config::load().unwrap_or_default();
    if called_as == "gpgconf" {
        return gpgconf(args, &config);
    }
    let real_gpg = match real::find(real::Program::Gpg, config.real_gpg.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("cardecrypt-gpg: {e}");
            return 2;
        }
    };
    match args::parse(args) {
        args::Call::Decrypt(call) => decrypt::run(&call, args, &config, &real_gpg),
        args::Call::Sign(call) => sign::run(&call, args, &config, &real_gpg),
        args::Call::ListSecretKeys => secret_keys::run(args, &real_gpg),
        args::Call::Version => with_banner(&real_gpg, args, |out, first| {
            // GPGME reads the version from the first line: the real gpg's stays first.
            let mut text = String::from_utf8_lossy(&out).into_owned();
            if first {
                let at = text.find('\n').map_or(text.len(), |i| i + 1);
                text.insert_str(at, &format!("{}\n", banner()));
            }
            text
        }),
        args::Call::ListConfig => with_banner(&real_gpg, args, |out, _| {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&format!("cfg:cardecrypt:{}\n", env!("CARGO_PKG_VERSION")));
            text
        }),
        args::Call::Forward => {
            let e = real::exec(&real_gpg, args);
            eprintln!("cardecrypt-gpg: {e}");
            2
        }
    }
}

/// Runs the real gpg with `args`, and prints its output as `edit` changes it.
fn with_banner(real_gpg: &Path, args: &[OsString], edit: impl Fn(Vec<u8>, bool) -> String) -> u8 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match real::output(real_gpg, &args) {
        Ok((status, out)) => {
            let text = edit(out, status.success());
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            status.code().map_or(2, |c| c.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("cardecrypt-gpg: {e}");
            2
        }
    }
}

/// As gpgconf: the real one, except that the `gpg` component is this front end, so that
/// GPGME (which asks gpgconf where gpg is) runs it.
fn gpgconf(args: &[OsString], config: &Config) -> u8 {
    let real_gpgconf = match real::find(real::Program::Gpgconf, config.real_gpg.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("cardecrypt-gpg: {e}");
            return 2;
        }
    };
    let lists_programs = args
        .iter()
        .any(|a| a == "--list-components" || a == "--check-programs");
    if !lists_programs {
        let e = real::exec(&real_gpgconf, args);
        eprintln!("cardecrypt-gpg: {e}");
        return 2;
    }
    let me = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    with_banner(&real_gpgconf, args, |out, _| {
        String::from_utf8_lossy(&out)
            .lines()
            .map(|line| match line.strip_prefix("gpg:") {
                // gpg:OpenPGP:/usr/bin/gpg[:more fields]: the path is the third field.
                Some(rest) => {
                    let mut fields: Vec<&str> = rest.split(':').collect();
                    if fields.len() >= 2 {
                        fields[1] = &me;
                    }
                    format!("gpg:{}\n", fields.join(":"))
                }
                None => format!("{line}\n"),
            })
            .collect()
    })
}
