//! cardecrypt: decrypt OpenPGP messages with the key on an OpenPGP card.
//!
//! Module map (dependencies point down: cli -> cmd -> library -> card seam -> leaves):
//! - [`cli`]: the command line (clap types only)
//! - [`cmd`]: one file per verb, glue from arguments to the library
//! - [`config`]: defaults from the config file
//! - [`prompt`]: how the command line asks for a PIN (pinentry, terminal, gpg loopback)
//! - [`decrypt`]: message -> card -> session key -> authenticated plaintext
//! - [`engine`]: the bulk decryption engine (bounded memory, two passes)
//! - [`mail`]: whole messages: PGP/MIME, inline PGP, header protection
//! - [`provision`]: putting keys on a card, and the card's admin operations
//! - [`certify`]: certificates for card keys, signed by the card
//! - [`verify`]: signatures inside encrypted messages
//! - [`card`]: everything that talks to a card (PC/SC transport, PINs, key data)
//! - [`lenient`]: mending what other implementations encode loosely (MPIs)
//! - [`output`]: writing plaintext safely
//! - [`desktop`]: notifications and the session's lock and sleep signals (D-Bus)
//! - leaves, depending on nothing else here: [`error`] (failures with a hint and an exit
//!   code), [`ui`] (the one trait through which the core asks the user anything),
//!   [`gpg_status`] (gpg's status lines), [`paths`], [`time`]

pub mod card;
pub mod certify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod decrypt;
pub mod desktop;
pub mod engine;
pub mod error;
pub mod gpg;
pub mod gpg_status;
pub mod inspect;
pub mod lenient;
pub mod mail;
pub mod output;
pub mod paths;
pub mod prompt;
pub mod provision;
pub mod time;
pub mod ui;
pub mod verify;

pub use error::{Error, Result};

/// How a command that did not fail ended; each maps to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Success,
    /// `cardecrypt mail`: nothing was encrypted; the message was written unchanged.
    NotEncrypted,
}

impl Done {
    pub fn exit_code(self) -> u8 {
        match self {
            Done::Success => error::exit::OK,
            Done::NotEncrypted => error::exit::NOT_ENCRYPTED,
        }
    }
}

/// Runs a parsed command line; the caller turns the result into an exit code.
pub fn run(cli: cli::Cli) -> Result<Done> {
    if cli.command.is_some() && cli.decrypt.file.is_some() {
        return Err(Error::Usage(
            "a file to decrypt and a subcommand cannot be given together".into(),
        ));
    }
    let success = |r: Result<()>| r.map(|()| Done::Success);
    match cli.command {
        None => success(cmd::decrypt::run(&cli.decrypt, cli.verbose)),
        Some(cli::Command::Card(c)) => success(cmd::card::run(c, cli.verbose)),
        Some(cli::Command::Lock(card)) => success(cmd::card::lock(card.card.as_deref())),
        Some(cli::Command::Mail(args)) => cmd::mail::run(&args, cli.verbose),
        Some(cli::Command::Doctor) => success(cmd::doctor::run()),
        Some(cli::Command::Inspect(args)) => success(cmd::inspect::run(&args, cli.verbose)),
        Some(cli::Command::GpgShim(c)) => success(cmd::gpg_shim::run(c)),
        Some(cli::Command::Completions { shell }) => {
            success(cmd::docs::completions(shell, &mut std::io::stdout()))
        }
        Some(cli::Command::Man { dir }) => success(cmd::docs::man_pages(&dir).map(|_| ())),
        Some(cli::Command::Hold(h)) => success(card::holder::hold(&h.reader, &h.ident, h.seconds)),
    }
}
