//! The command line, as clap types only: no I/O while parsing, and nothing from the library
//! but the duration parser. One file per group of verbs.

mod card;
mod decrypt;
mod inspect;

use clap::{Parser, Subcommand};

pub use card::*;
pub use decrypt::*;
pub use inspect::*;

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

    /// Show what a message or email reveals to anyone holding it, and what only the card opens
    ///
    /// Without --decrypt no card, PIN or pcscd is needed: recipients (and whether a present
    /// card holds one of their keys), the encryption container, armor headers, sizes; for a
    /// whole email also the header fields in the clear, the Received: path, the mail client,
    /// and the parts outside the encryption. With --decrypt the card decrypts as usual and
    /// the inside is described (cipher, compression, file name, signatures, protected
    /// headers, structure), never the body text. With --mailbox, the same over a whole
    /// maildir or mbox: what leaks, how often, per month and per correspondent.
    #[command(after_help = "Examples:
  cardecrypt inspect message.asc
  cardecrypt inspect mail.eml
  cardecrypt inspect --decrypt mail.eml
  cardecrypt inspect --json message.asc
  cardecrypt inspect --mailbox ~/Mail/INBOX
  cardecrypt inspect --mailbox ~/Mail --recursive --html report.html
  cardecrypt inspect --mailbox ~/Mail/Sent --json")]
    Inspect(InspectArgs),

    /// Check pcscd, readers, cards, PIN counters, udev rules and mail client settings
    #[command(after_help = "Example:\n  cardecrypt doctor")]
    Doctor,

    /// Lock cards now: end --keep-unlocked and make the card forget the verified PIN
    #[command(after_help = "Example:\n  cardecrypt lock")]
    Lock(CardArgs),

    /// Install or remove `gpg` and `gpgconf` links to cardecrypt-gpg, for GPGME clients
    ///
    /// cardecrypt-gpg decrypts messages for a key on a present card itself and passes every
    /// other gpg call to the real gpg. Put the directory before /usr/bin on PATH (for
    /// Thunderbird, set mail.openpgp.alternative_gpg_path to DIR/gpg instead).
    #[command(subcommand)]
    GpgShim(GpgShimCommand),

    /// Print a shell completion script: bash, zsh or fish
    #[command(after_help = "Examples:
  cardecrypt completions bash > ~/.local/share/bash-completion/completions/cardecrypt
  cardecrypt completions zsh > ~/.zfunc/_cardecrypt
  cardecrypt completions fish > ~/.config/fish/completions/cardecrypt.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Write the man pages (cardecrypt.1, cardecrypt-card.1, ...) into DIR
    #[command(after_help = "Example:\n  cardecrypt man ~/.local/share/man/man1")]
    Man {
        /// The directory to write into (created if missing)
        dir: std::path::PathBuf,
    },

    /// (internal) the process that keeps a card unlocked
    #[command(name = "__hold", hide = true)]
    Hold(HoldArgs),
}

#[derive(Subcommand, Debug)]
pub enum GpgShimCommand {
    /// Create DIR/gpg and DIR/gpgconf (default DIR: ~/.local/bin)
    #[command(after_help = "Example:\n  cardecrypt gpg-shim install")]
    Install(GpgShimArgs),
    /// Remove the links `install` made
    #[command(after_help = "Example:\n  cardecrypt gpg-shim remove")]
    Remove(GpgShimArgs),
}

#[derive(clap::Args, Debug)]
pub struct GpgShimArgs {
    /// The directory for the links
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

/// The unlock holder's arguments (cardecrypt starts it itself).
#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    #[arg(long)]
    pub reader: String,
    #[arg(long)]
    pub ident: String,
    #[arg(long)]
    pub seconds: u64,
}

/// Options of the decrypt command given before a subcommand (`cardecrypt --batch mail x`):
/// they would belong to the top-level decrypt and be silently unused, so they are named in
/// a usage error instead. Only what was typed counts, not environment defaults.
pub fn misplaced_options(matches: &clap::ArgMatches) -> Vec<String> {
    let Some((sub, _)) = matches.subcommand() else {
        return Vec::new();
    };
    let command = <Cli as clap::CommandFactory>::command();
    command
        .get_arguments()
        .filter(|a| !a.is_global_set())
        .filter(|a| {
            matches!(
                matches.value_source(a.get_id().as_str()),
                Some(clap::parser::ValueSource::CommandLine)
            )
        })
        .map(|a| match a.get_long() {
            Some(long) => format!("--{long}"),
            None => a.get_id().to_string(),
        })
        .map(|name| format!("{name} (put it after `{sub}`)"))
        .collect()
}

/// Every example command line in the `--help` texts (after "Example:" / "Examples:"), with
/// continuation lines joined and the explanation after two spaces dropped: the tests parse
/// each one, and the pcscd tier runs those that need no secrets.
pub fn help_examples() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        if let Some(help) = cmd.get_after_help() {
            let help = help.to_string();
            let mut lines = help.lines().peekable();
            while let Some(line) = lines.next() {
                let Some(example) = line.trim_start().strip_prefix("cardecrypt") else {
                    continue;
                };
                let mut example = format!("cardecrypt{example}");
                while example.ends_with('\\') {
                    example.pop();
                    example.push_str(lines.next().unwrap_or_default().trim());
                }
                // "cardecrypt < message.asc     decrypt to stdout": the explanation follows
                // a run of spaces; "(asks ...)" in parentheses likewise.
                let command = example
                    .split("   ")
                    .next()
                    .unwrap_or_default()
                    .split("  (")
                    .next()
                    .unwrap_or_default()
                    .trim_end();
                out.push(command.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// An example line as argv: words split by the shell's quoting rules, redirections dropped.
pub fn example_argv(example: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in example.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    let mut argv = Vec::new();
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let redirect = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if redirect == "<" || redirect == ">" {
            skip_next = true;
        } else if redirect.starts_with('<') || redirect.starts_with('>') {
            // `3<pin.txt`, `>out`
        } else {
            argv.push(w);
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Shared options work before the subcommand, between its words and after it, as gpg
    /// users write them; the decrypt command's own options before a subcommand are named.
    #[test]
    fn shared_options_work_wherever_they_are_typed() {
        use clap::{CommandFactory, Parser};
        let parse = |args: &[&str]| Cli::try_parse_from(args).expect("parse");
        let import_batch = |args: &[&str]| match parse(args).command {
            Some(Command::Card(CardCommand::Import(a))) => {
                (a.auth.batch, a.auth.pin_file, a.card.card)
            }
            other => panic!("{other:?}"),
        };
        let expected = (true, Some("P".into()), Some("FFFE:1".to_string()));
        for args in [
            &[
                "cardecrypt",
                "--batch",
                "--pin-file",
                "P",
                "--card",
                "FFFE:1",
                "card",
                "import",
                "k",
            ][..],
            &[
                "cardecrypt",
                "card",
                "--batch",
                "--pin-file",
                "P",
                "--card",
                "FFFE:1",
                "import",
                "k",
            ],
            &[
                "cardecrypt",
                "card",
                "import",
                "--batch",
                "--pin-file",
                "P",
                "--card",
                "FFFE:1",
                "k",
            ],
        ] {
            assert_eq!(import_batch(args), expected, "{args:?}");
        }
        match parse(&[
            "cardecrypt",
            "--batch",
            "--keep-unlocked",
            "5m",
            "mail",
            "m.eml",
        ])
        .command
        {
            Some(Command::Mail(m)) => {
                assert!(m.read.pin.batch);
                assert_eq!(
                    m.read.keep_unlocked,
                    Some(std::time::Duration::from_secs(300))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&["cardecrypt", "--pin-fd", "3", "inspect", "--decrypt", "m"]).command {
            Some(Command::Inspect(i)) => assert_eq!(i.pin.pin_fd, Some(3)),
            other => panic!("{other:?}"),
        }
        let matches = |args: &[&str]| Cli::command().try_get_matches_from(args).expect("parse");
        let named = misplaced_options(&matches(&["cardecrypt", "--status-fd", "2", "mail", "m"]));
        assert_eq!(named.len(), 1, "{named:?}");
        assert!(named[0].contains("--status-fd") && named[0].contains("after `mail`"));
        assert!(misplaced_options(&matches(&["cardecrypt", "--batch", "card", "list"])).is_empty());
        assert!(misplaced_options(&matches(&["cardecrypt", "-v", "card", "list"])).is_empty());
        assert!(misplaced_options(&matches(&["cardecrypt", "--batch", "msg.asc"])).is_empty());
    }

    #[test]
    fn every_help_example_parses() {
        let examples = help_examples();
        assert!(examples.len() >= 20, "{examples:?}");
        assert_eq!(
            example_argv("cardecrypt --batch --pin-fd 3 msg.asc 3<pin.txt"),
            ["cardecrypt", "--batch", "--pin-fd", "3", "msg.asc"]
        );
        assert_eq!(
            example_argv("cardecrypt card set name \"Alice Liddell\" < x > y"),
            ["cardecrypt", "card", "set", "name", "Alice Liddell"]
        );
        for example in &examples {
            let argv = example_argv(example);
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("the --help example `{example}` does not parse ({argv:?}): {e}");
            }
        }
    }

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
