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
  8  the card refused or failed an operation
  9  `cardecrypt mail`: the message is not encrypted (written unchanged)";

/// Decrypt OpenPGP messages with the key on your OpenPGP card (YubiKey, Nitrokey, ...).
///
/// The private key never leaves the card: cardecrypt sends the card only the encrypted
/// session key, and decrypts and authenticates the message itself. No plaintext is written
/// unless the whole message is authenticated.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP, subcommand_precedence_over_arg = true)]
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
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE given with --output if it exists
    #[arg(long)]
    pub overwrite: bool,

    #[command(flatten)]
    pub card: CardArgs,

    #[command(flatten)]
    pub pin: PinArgs,

    /// After the PIN was accepted, keep the card unlocked for DURATION (30s, 10m, 1h) so the
    /// next decrypts need no PIN; the PIN is not stored anywhere. `cardecrypt lock` ends it.
    /// Default: `keep-unlocked` in the config file
    #[arg(long, value_name = "DURATION", env = "CARDECRYPT_KEEP_UNLOCKED",
          value_parser = crate::card::holder::parse_duration)]
    pub keep_unlocked: Option<std::time::Duration>,

    /// Check signatures inside the message against the certificates in FILE (a keyring,
    /// armored or binary; repeatable; added to `signer-certs` from the config file)
    #[arg(long, value_name = "FILE")]
    pub signer_certs: Vec<PathBuf>,

    /// When the plaintext goes to a stream (standard output, a FIFO) and the message comes
    /// from a pipe, keep its ciphertext for the second pass in an unnamed file in DIR
    /// (default: $TMPDIR or /tmp)
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
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

impl GpgCompat {
    /// The loopback protocol, when the caller gave a command descriptor to answer on and a
    /// status descriptor to ask on, no passphrase descriptor, and did not ask for pinentry
    /// (`--pinentry-mode ask`). EasyPG passes `--command-fd 0` with or without loopback
    /// mode and answers `GET_HIDDEN` either way; Evolution never names a mode.
    pub fn loopback(&self, status_fd: Option<i32>) -> Option<crate::ui::Loopback> {
        let mode_allows = matches!(self.pinentry_mode.as_deref(), None | Some("loopback"));
        match (mode_allows, self.command_fd, status_fd, self.passphrase_fd) {
            (true, Some(command_fd), Some(_), None) => Some(crate::ui::Loopback {
                status_fd,
                command_fd,
                asked: false,
            }),
            _ => None,
        }
    }
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

    /// Decrypt a whole email (RFC 5322): PGP/MIME and inline PGP, protected headers restored
    ///
    /// Writes the message with every encrypted part replaced by its plaintext, so any mail
    /// reader or indexer can use it. Protected headers (RFC 9788 and protected-headers="v1")
    /// replace the outer Subject, From, To, ...; legacy-display copies are removed. A message
    /// that is not encrypted is written unchanged, with exit code 9.
    #[command(after_help = "Examples:
  cardecrypt mail < encrypted.eml > readable.eml
  cardecrypt mail --signer-certs contacts.pgp ~/Maildir/cur/1700000000.M1.host:2,S")]
    Mail(MailArgs),

    /// Check pcscd, readers, cards, PIN counters, udev rules and mail client settings
    #[command(after_help = "Example:\n  cardecrypt doctor")]
    Doctor,

    /// Lock cards now: end --keep-unlocked and make the card forget the verified PIN
    #[command(after_help = "Example:\n  cardecrypt lock")]
    Lock {
        #[command(flatten)]
        card: CardArgs,
    },

    /// (internal) the process that keeps a card unlocked
    #[command(name = "__hold", hide = true)]
    Hold {
        #[arg(long)]
        reader: String,
        #[arg(long)]
        ident: String,
        #[arg(long)]
        seconds: u64,
    },
}

/// Secrets for card management: PINs from files, descriptors or prompts.
#[derive(Args, Debug, Default, Clone)]
pub struct AuthArgs {
    /// Read the user PIN from the first line of FILE
    #[arg(long, value_name = "FILE", conflicts_with = "pin_fd")]
    pub pin_file: Option<PathBuf>,

    /// Read the user PIN from the first line of file descriptor N
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<i32>,

    /// Read the admin PIN from the first line of FILE
    #[arg(long, value_name = "FILE", conflicts_with = "admin_pin_fd")]
    pub admin_pin_file: Option<PathBuf>,

    /// Read the admin PIN from the first line of file descriptor N
    #[arg(long, value_name = "N")]
    pub admin_pin_fd: Option<i32>,

    /// Never prompt: fail if a PIN or confirmation is needed and not given
    #[arg(long)]
    pub batch: bool,

    /// Allow spending the last try of a PIN
    #[arg(long)]
    pub allow_last_pin_try: bool,
}

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// List the OpenPGP cards present: ident, reader, decryption key
    #[command(after_help = "Example:\n  cardecrypt card list")]
    List,

    /// Show a card: keys, PIN retry counters, touch policies, cardholder data
    #[command(after_help = "Examples:\n  cardecrypt card status\n  \
        cardecrypt card status --card FFFE:00000001 --json")]
    Status {
        #[command(flatten)]
        card: CardArgs,
        /// Versioned JSON for scripts (see "schema")
        #[arg(long)]
        json: bool,
    },

    /// Put the keys of a secret key file on a card (needs the admin PIN)
    ///
    /// Each slot gets the newest valid key for it: the encryption subkey goes to the
    /// decryption slot, a signing key to the signature slot, an authentication key to the
    /// authentication slot.
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
        /// Read the key's passphrase from the first line of FILE
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Replace keys already on the card (asked interactively otherwise)
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },

    /// Generate keys on the card and write their certificate, self-signed by the card
    ///
    /// Keys are generated in all three slots (signature, decryption, authentication). The
    /// certificate's signatures are made by the card with the user PIN; the private keys
    /// never leave it.
    #[command(
        after_help = "Example:\n  cardecrypt card generate --card FFFE:00000001 \\\n    \
        --userid \"Alice <alice@example.org>\" --algo cv25519 -o alice.pub.asc"
    )]
    Generate {
        #[command(flatten)]
        card: CardArgs,
        /// The user ID of the new certificate
        #[arg(long)]
        userid: String,
        /// Key algorithm
        #[arg(long, value_enum, default_value = "cv25519")]
        algo: crate::provision::KeyAlgo,
        /// Where to write the certificate (armored; created new)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Replace keys already on the card (asked interactively otherwise)
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },

    /// Write a certificate for the keys on the card, self-signed by the card
    #[command(after_help = "Example:\n  \
        cardecrypt card export --userid \"Alice <alice@example.org>\" -o cert.asc")]
    Export {
        #[command(flatten)]
        card: CardArgs,
        /// The user ID to certify
        #[arg(long)]
        userid: String,
        /// Where to write the certificate (armored; created new)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        auth: AuthArgs,
    },

    /// Change PINs, set the resetting code, unblock the user PIN
    #[command(subcommand)]
    Pin(PinCommand),

    /// Set cardholder name, URL, language or touch policy (needs the admin PIN)
    Set(SetArgs),

    /// Switch the card's PIN handling to the KDF-DO (PINs stored only as salted hashes)
    #[command(subcommand)]
    Kdf(KdfCommand),

    /// Wipe the card: all keys, PINs back to their defaults, card data cleared
    #[command(after_help = "Example:\n  \
        cardecrypt card factory-reset --card FFFE:00000001 --yes-really-wipe FFFE:00000001")]
    FactoryReset {
        #[command(flatten)]
        card: CardArgs,
        /// Confirm by naming the card to wipe (required with --batch)
        #[arg(long, value_name = "IDENT")]
        yes_really_wipe: Option<String>,
        /// Never prompt
        #[arg(long)]
        batch: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PinCommand {
    /// Change the user PIN (asks for the current and the new one)
    #[command(after_help = "Example:\n  cardecrypt card pin change-user")]
    ChangeUser(PinChangeArgs),
    /// Change the admin PIN
    #[command(after_help = "Example:\n  cardecrypt card pin change-admin")]
    ChangeAdmin(PinChangeArgs),
    /// Set the resetting code, which can unblock the user PIN (needs the admin PIN)
    #[command(after_help = "Example:\n  cardecrypt card pin set-reset-code")]
    SetResetCode(PinChangeArgs),
    /// Set a new user PIN on a blocked card, with the resetting code or the admin PIN
    #[command(
        after_help = "Examples:\n  cardecrypt card pin unblock-user --reset-code-file rc.txt\n  \
        cardecrypt card pin unblock-user          (asks for the admin PIN)"
    )]
    UnblockUser {
        #[command(flatten)]
        args: PinChangeArgs,
        /// Read the resetting code from FILE (without it, the admin PIN is used)
        #[arg(long, value_name = "FILE")]
        reset_code_file: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct PinChangeArgs {
    #[command(flatten)]
    pub card: CardArgs,
    /// Read the new PIN (or code) from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  cardecrypt card set name \"Alice Liddell\"\n  \
    cardecrypt card set url https://example.org/alice.asc\n  cardecrypt card set lang en\n  \
    cardecrypt card set touch dec on"
)]
pub struct SetArgs {
    #[command(flatten)]
    pub card: CardArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(subcommand)]
    pub what: SetWhat,
}

#[derive(Subcommand, Debug)]
pub enum SetWhat {
    /// Cardholder name ("Given Names Surname")
    Name { name: String },
    /// URL where the public key can be fetched
    Url { url: String },
    /// Language preferences: two-letter codes, comma separated
    Lang { lang: String },
    /// Touch policy of a slot (where the card has a button)
    Touch {
        #[arg(value_enum)]
        slot: SlotArg,
        #[arg(value_enum)]
        policy: TouchArg,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SlotArg {
    Sig,
    Dec,
    Aut,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TouchArg {
    Off,
    On,
    Fixed,
    Cached,
    CachedFixed,
}

#[derive(Subcommand, Debug)]
pub enum KdfCommand {
    /// Enable the KDF-DO; the current PINs stay valid
    #[command(after_help = "Example:\n  cardecrypt card kdf enable")]
    Enable {
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        auth: AuthArgs,
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

    /// Every command a person runs shows an example in its --help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let name = format!("{path} {}", cmd.get_name());
            let subs: Vec<_> = cmd
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .collect();
            if subs.is_empty() {
                let help = cmd
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                let parent_help = help.contains("Example");
                if !parent_help {
                    missing.push(name.clone());
                }
            }
            for sub in subs {
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        let cli = Cli::command();
        for sub in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
            walk(sub, "cardecrypt", &mut missing);
        }
        assert!(cli
            .get_after_help()
            .is_some_and(|h| h.to_string().contains("Examples")));
        // `card set`'s leaves share the examples of `card set`.
        missing.retain(|m| !m.starts_with("cardecrypt card set "));
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }

    #[test]
    fn a_file_without_subcommand_decrypts() {
        let cli = Cli::try_parse_from(["cardecrypt", "msg.asc", "-o", "out"]).expect("parse");
        assert!(cli.command.is_none());
        assert_eq!(cli.decrypt.file, Some(PathBuf::from("msg.asc")));
    }

    #[test]
    fn mutts_gpg_line_parses() {
        let cli = Cli::try_parse_from([
            "cardecrypt",
            "--status-fd=2",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--no-verbose",
            "--quiet",
            "--batch",
            "--output",
            "-",
            "--decrypt",
            "msg.asc",
        ])
        .expect("mutt's line");
        assert_eq!(cli.decrypt.status_fd, Some(2));
        assert_eq!(cli.decrypt.gpg.passphrase_fd, Some(0));
        assert_eq!(cli.decrypt.read.output, Some(PathBuf::from("-")));
    }

    #[test]
    fn other_gpg_front_ends_parse() {
        // Emacs EasyPG (epg.el), then Evolution (camel-gpg-context.c), then aerc.
        let lines: [&[&str]; 3] = [
            &[
                "--no-tty",
                "--status-fd",
                "1",
                "--yes",
                "--enable-progress-filter",
                "--command-fd",
                "0",
                "--output",
                "out",
                "--pinentry-mode",
                "loopback",
                "--decrypt",
                "--",
                "msg.gpg",
            ],
            &[
                "--verbose",
                "--no-secmem-warning",
                "--no-greeting",
                "--no-tty",
                "--status-fd=3",
                "--command-fd=4",
                "--decrypt",
                "--output",
                "-",
            ],
            &[
                "--status-fd",
                "2",
                "--log-file",
                "/dev/null",
                "--batch",
                "--decrypt",
            ],
        ];
        let loopback: Vec<bool> = lines
            .iter()
            .map(|args| {
                let cli = Cli::try_parse_from(std::iter::once(&"cardecrypt").chain(*args))
                    .expect("gpg front end's line");
                assert!(cli.command.is_none());
                cli.decrypt.gpg.loopback(cli.decrypt.status_fd).is_some()
            })
            .collect();
        assert_eq!(loopback, [true, true, false]);
        let ask = Cli::try_parse_from([
            "cardecrypt",
            "--status-fd=1",
            "--command-fd=0",
            "--pinentry-mode=ask",
        ])
        .expect("parse");
        assert!(ask.decrypt.gpg.loopback(ask.decrypt.status_fd).is_none());
    }

    #[test]
    fn verbose_goes_anywhere() {
        for args in [
            ["cardecrypt", "-v", "card", "list"],
            ["cardecrypt", "card", "list", "-v"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parse");
            assert!(cli.verbose && matches!(cli.command, Some(Command::Card(CardCommand::List))));
        }
    }

    #[test]
    fn pin_file_and_fd_conflict() {
        assert!(Cli::try_parse_from(["cardecrypt", "--pin-file", "a", "--pin-fd", "3"]).is_err());
    }
}
