//! cardecrypt: decrypt OpenPGP messages with the key on an OpenPGP card.
//!
//! Module map:
//! - [`cli`]: the command line (clap types only)
//! - [`cmd`]: one file per verb, glue from arguments to the library
//! - [`config`]: defaults from the config file
//! - [`card`]: everything that talks to a card (PC/SC transport, PINs, key data)
//! - [`decrypt`]: message -> card -> session key -> authenticated plaintext
//! - [`provision`]: putting keys on a card
//! - [`certify`]: certificates for card keys, signed by the card
//! - [`mail`]: what mail clients need: status lines, whole messages, header protection
//! - [`output`]: writing plaintext safely
//! - [`ui`]: the one trait through which the core asks the user anything
//! - [`verify`]: signatures inside encrypted messages
//! - [`error`]: failures with a hint and an exit code

pub mod card;
pub mod certify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod decrypt;
pub mod engine;
pub mod error;
pub mod lenient;
pub mod mail;
pub mod output;
pub mod provision;
pub mod ui;
pub mod verify;

pub use error::{Error, Result};

/// Runs a parsed command line; the caller turns the result into an exit code.
pub fn run(cli: cli::Cli) -> Result<()> {
    if cli.command.is_some() && cli.decrypt.file.is_some() {
        return Err(Error::Usage(
            "a file to decrypt and a subcommand cannot be given together".into(),
        ));
    }
    match cli.command {
        None => cmd::decrypt::run(&cli.decrypt, cli.verbose),
        Some(cli::Command::Card(c)) => cmd::card::run(c, cli.verbose),
        Some(cli::Command::Lock { card }) => cmd::card::lock(card.card.as_deref()),
        Some(cli::Command::Mail(args)) => cmd::mail::run(&args, cli.verbose),
        Some(cli::Command::Doctor) => cmd::doctor::run(),
        Some(cli::Command::Hold {
            reader,
            ident,
            seconds,
        }) => card::holder::hold(&reader, &ident, seconds),
    }
}
