//! The command line, as clap types only: no I/O while parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  cardecrypt < message.asc                 decrypt to stdout, asking for the PIN on the terminal
  cardecrypt message.gpg -o message.txt    decrypt a file into a new file (mode 0600)
  cardecrypt --batch --pin-fd 3 msg.asc 3<pin.txt
  cardecrypt card list

Exit codes:
  0  success
  1  other error
  2  usage error
  3  no PC/SC service, reader or card; card busy or removed
  4  no card holds a key the message is encrypted to
  5  PIN needed but not available, wrong, blocked, or last try refused
  6  not an OpenPGP message, or corrupt, truncated or tampered with
  7  reading input or writing output failed
  8  the card refused or failed an operation";

/// Decrypt OpenPGP messages with the key on your OpenPGP card (YubiKey, Nitrokey, ...).
///
/// The private key never leaves the card: cardecrypt sends the card only the encrypted
/// session key, and decrypts and authenticates the message itself. No plaintext is written
/// unless the whole message is authenticated.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub decrypt: DecryptArgs,

    /// Print diagnostics and every APDU (PINs and secrets redacted) on standard error
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Args, Debug, Default)]
pub struct DecryptArgs {
    /// The message to decrypt (armored or binary); standard input when absent
    pub file: Option<PathBuf>,

    /// Write the plaintext to FILE (created new, mode 0600) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE given with --output if it exists
    #[arg(long)]
    pub overwrite: bool,

    #[command(flatten)]
    pub card: CardArgs,

    #[command(flatten)]
    pub pin: PinArgs,
}

#[derive(Args, Debug, Default, Clone)]
pub struct CardArgs {
    /// Use only this card: its ident (FFFE:00000001, as `cardecrypt card list` shows) or serial
    #[arg(long, value_name = "IDENT", env = "CARDECRYPT_CARD")]
    pub card: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct PinArgs {
    /// Read the user PIN from the first line of FILE
    #[arg(long, value_name = "FILE", conflicts_with = "pin_fd")]
    pub pin_file: Option<PathBuf>,

    /// Read the user PIN from the first line of file descriptor N
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<i32>,

    /// Never prompt: fail if a PIN is needed and not given
    #[arg(long)]
    pub batch: bool,

    /// Allow spending the last PIN try (otherwise refused, so a typo cannot block the card)
    #[arg(long)]
    pub allow_last_pin_try: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage OpenPGP cards
    #[command(subcommand)]
    Card(CardCommand),
}

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// List the OpenPGP cards present: ident, reader, decryption key
    #[command(after_help = "Example:\n  cardecrypt card list")]
    List,

    /// Put the keys of a secret key file on a card (needs the admin PIN)
    ///
    /// Each slot gets the newest valid key for it: the encryption subkey goes to the
    /// decryption slot, a signing key to the signature slot, an authentication key to the
    /// authentication slot. Keys already on the card are replaced.
    #[command(after_help = "Example:\n  \
        cardecrypt card import --card FFFE:00000001 --admin-pin-file admin.txt secret-key.asc")]
    Import {
        /// The secret key (armored or binary)
        file: PathBuf,

        #[command(flatten)]
        card: CardArgs,

        /// Import only these keys (fingerprints); repeatable
        #[arg(long, value_name = "FPR")]
        subkey: Vec<String>,

        /// Read the admin PIN from the first line of FILE
        #[arg(long, value_name = "FILE")]
        admin_pin_file: Option<PathBuf>,

        /// Read the key's passphrase from the first line of FILE
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,

        /// Never prompt
        #[arg(long)]
        batch: bool,

        /// Allow spending the last admin PIN try
        #[arg(long)]
        allow_last_pin_try: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_file_without_subcommand_decrypts() {
        let cli = Cli::try_parse_from(["cardecrypt", "msg.asc", "-o", "out"]).expect("parse");
        assert!(cli.command.is_none());
        assert_eq!(cli.decrypt.file, Some(PathBuf::from("msg.asc")));
    }

    #[test]
    fn pin_file_and_fd_conflict() {
        assert!(Cli::try_parse_from(["cardecrypt", "--pin-file", "a", "--pin-fd", "3"]).is_err());
    }
}
