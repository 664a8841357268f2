//! What `cardecrypt [FILE]` and `cardecrypt mail` take: input, output, card, PIN, and the
//! gpg options mail clients pass along.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Default)]
pub struct DecryptArgs {
    /// The message to decrypt (armored or binary); standard input when absent
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Write GnuPG-style status lines ([GNUPG:] ...) to file descriptor N, for mail clients
    #[arg(long, value_name = "N")]
    pub status_fd: Option<i32>,

    #[command(flatten)]
    pub gpg: GpgCompat,
}

#[derive(Args, Debug, Default)]
pub struct MailArgs {
    /// The message (RFC 5322, as in a maildir or mbox-less .eml file); standard input when
    /// absent
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub read: ReadArgs,
}

/// What every command that decrypts takes: where the result goes, which card, the PIN,
/// signatures, and how long the card stays unlocked.
#[derive(Args, Debug, Default)]
pub struct ReadArgs {
    /// Write the result to FILE (created new, mode 0600) instead of standard output ("-")
    #[arg(short, long, value_name = "FILE", global = true)]
    pub output: Option<PathBuf>,

    /// Replace FILE given with --output if it exists
    #[arg(long, global = true)]
    pub overwrite: bool,

    #[command(flatten)]
    pub card: CardArgs,

    #[command(flatten)]
    pub pin: PinArgs,

    /// After the PIN was accepted, keep the card unlocked for DURATION (30s, 10m, 1h) so the
    /// next decrypts need no PIN; the PIN is not stored anywhere. `cardecrypt lock` ends it.
    /// Default: `keep-unlocked` in the config file
    #[arg(long, value_name = "DURATION", env = "CARDECRYPT_KEEP_UNLOCKED", global = true,
          value_parser = crate::time::parse_duration)]
    pub keep_unlocked: Option<std::time::Duration>,

    /// Check signatures inside the message against the certificates in FILE (a keyring,
    /// armored or binary; repeatable; added to `signer-certs` from the config file)
    #[arg(long, value_name = "FILE", global = true)]
    pub signer_certs: Vec<PathBuf>,

    /// When the plaintext goes to a stream (standard output, a FIFO): where the second pass's
    /// input waits, in unnamed files in DIR (default: $TMPDIR or /tmp): a piped message's
    /// ciphertext, and a compressed message's plaintext sealed under a key held in memory
    #[arg(long, value_name = "DIR", global = true)]
    pub spool_dir: Option<PathBuf>,

    /// Print the message's session key (ALGO:HEX) on stderr, and as SESSION_KEY with
    /// --status-fd. Anyone who has it reads that one message without the card
    #[arg(long, global = true)]
    pub show_session_key: bool,

    /// Decrypt with the session key (ALGO:HEX, as --show-session-key printed it) read from
    /// file descriptor N: no card is asked
    #[arg(long, value_name = "N", global = true)]
    pub override_session_key_fd: Option<i32>,
}

/// gpg options that mail clients pass along (mutt's sample gpg.rc, for one): accepted so
/// that cardecrypt can stand in for gpg in a decrypt command, and otherwise ignored.
#[derive(Args, Debug, Default)]
pub struct GpgCompat {
    #[arg(short = 'd', long = "decrypt", hide = true)]
    pub decrypt: bool,
    #[arg(long, hide = true)]
    pub no_verbose: bool,
    #[arg(short = 'q', long, hide = true)]
    pub quiet: bool,
    #[arg(long, hide = true)]
    pub no_tty: bool,
    #[arg(long, hide = true)]
    pub yes: bool,
    #[arg(long, hide = true)]
    pub use_agent: bool,
    #[arg(long, hide = true)]
    pub no_auto_check_trustdb: bool,
    #[arg(long, hide = true, value_name = "MODE")]
    pub pinentry_mode: Option<String>,
    /// gpg's passphrase descriptor: with a card, the PIN (same as --pin-fd)
    #[arg(long, hide = true, value_name = "N", conflicts_with_all = ["pin_file", "pin_fd"])]
    pub passphrase_fd: Option<i32>,
    /// gpg's command descriptor: the PIN is asked for with `GET_HIDDEN passphrase.enter` on
    /// the status descriptor and read from here (EasyPG, Evolution)
    #[arg(long, hide = true, value_name = "N")]
    pub command_fd: Option<i32>,
    #[arg(long, hide = true)]
    pub no_secmem_warning: bool,
    #[arg(long, hide = true)]
    pub no_greeting: bool,
    #[arg(long, hide = true)]
    pub always_trust: bool,
    #[arg(long, hide = true, value_name = "MODEL")]
    pub trust_model: Option<String>,
    #[arg(long, hide = true)]
    pub enable_progress_filter: bool,
    #[arg(long, hide = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "FD")]
    pub logger_fd: Option<i32>,
    #[arg(long, hide = true, value_name = "DIR")]
    pub homedir: Option<PathBuf>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct CardArgs {
    /// Use only this card: its ident (FFFE:00000001, as `cardecrypt card list` shows) or serial
    #[arg(long, value_name = "IDENT", env = "CARDECRYPT_CARD", global = true)]
    pub card: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct PinArgs {
    /// Read the user PIN from the first line of FILE
    #[arg(long, value_name = "FILE", conflicts_with = "pin_fd", global = true)]
    pub pin_file: Option<PathBuf>,

    /// Read the user PIN from the first line of file descriptor N
    #[arg(long, value_name = "N", global = true)]
    pub pin_fd: Option<i32>,

    /// Never prompt: fail if a PIN is needed and not given
    #[arg(long, global = true)]
    pub batch: bool,

    /// Allow spending the last PIN try (otherwise refused, so a typo cannot block the card)
    #[arg(long, global = true)]
    pub allow_last_pin_try: bool,
}
