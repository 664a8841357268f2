//! One place that turns failures into a message, a hint and an exit code.

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything not covered below.
    pub const OTHER: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// No PC/SC service, no reader, no card, the card is busy or was removed.
    pub const NO_CARD: u8 = 3;
    /// No card holds a key the message is encrypted to.
    pub const NO_KEY: u8 = 4;
    /// PIN needed but not available, wrong, blocked, or last try refused.
    pub const PIN: u8 = 5;
    /// Input is not OpenPGP, is corrupt, truncated or tampered with.
    pub const BAD_MESSAGE: u8 = 6;
    /// Reading input or writing output failed.
    pub const IO: u8 = 7;
    /// The card refused or failed an operation.
    pub const CARD: u8 = 8;
    /// `cardecrypt mail`: nothing in the message is encrypted; it was written unchanged.
    pub const NOT_ENCRYPTED: u8 = 9;
}

/// Everything that can go wrong, each with what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PC/SC service (pcscd) cannot be reached.
    #[error("cannot reach the PC/SC service (pcscd): {0}")]
    NoService(String),
    /// pcscd runs but sees no reader.
    #[error("no smartcard reader found")]
    NoReader,
    /// Readers exist, but none holds an OpenPGP card.
    #[error("no OpenPGP card found (readers: {})", readers.join(", "))]
    NoCard { readers: Vec<String> },
    /// `--card` named a card that is not present.
    #[error("card {wanted} not found")]
    CardNotFound { wanted: String, found: Vec<String> },
    /// Another program holds the card exclusively.
    #[error("the card in \"{reader}\" is in use")]
    CardBusy { reader: String },
    /// The card was removed during the operation.
    #[error("the card was removed")]
    CardRemoved,
    /// No present card holds a key the message is encrypted to.
    #[error("{}", no_matching_key(recipients, cards))]
    NoMatchingKey {
        recipients: Vec<String>,
        cards: Vec<String>,
    },
    /// The message is encrypted only with a password, which this tool does not handle.
    #[error("the message is encrypted with a password, not to a key")]
    PasswordOnly,
    /// A PIN is needed and there is no way to ask for one.
    #[error("the card needs its PIN, {0}")]
    PinUnavailable(String),
    /// The card rejected the PIN.
    #[error("wrong PIN")]
    WrongPin { tries_left: u8 },
    /// The PIN has no tries left.
    #[error("the user PIN is blocked")]
    PinBlocked,
    /// Only one PIN try is left and the user did not allow spending it.
    #[error("refusing to spend the last PIN try")]
    LastPinTry,
    /// The card answered with an error.
    #[error("card error: {0}")]
    Card(String),
    /// The card's key cannot be matched to an OpenPGP public key.
    #[error("{0}")]
    KeyMismatch(String),
    /// The input holds no OpenPGP message.
    #[error("not an OpenPGP message: {0}")]
    NotOpenPgp(String),
    /// The message is corrupt, truncated or was tampered with.
    #[error("message cannot be decrypted safely: {0}")]
    BadMessage(String),
    /// The packets do not follow the OpenPGP format (an encoder's bug more often than damage).
    #[error("message cannot be decrypted safely: it is not well-formed OpenPGP ({0})")]
    Malformed(String),
    /// The message uses a format or algorithm cardecrypt does not decrypt (not damage).
    #[error("cannot decrypt this message: {0} is not supported")]
    Unsupported(String),
    /// OpenPGP data that is not encrypted (signed, or a plain literal packet).
    #[error("message cannot be decrypted: it is not encrypted (signed or plain OpenPGP data)")]
    Unencrypted,
    /// Encrypted without integrity protection (SED, tag 9): refused, it could have been
    /// altered undetectably.
    #[error(
        "refusing to decrypt: the message has no integrity protection (old SED packet \
         without a modification detection code)"
    )]
    NoIntegrity,
    /// Decrypted into memory, the plaintext grew past the limit (a decompression bomb, or a
    /// message larger than the in-memory limit).
    #[error(
        "the decrypted message is larger than the in-memory limit of {} MiB (a \
         decompression bomb or a very large message)",
        limit >> 20
    )]
    TooLarge { limit: u64 },
    /// The input file changed between the two passes of a streamed decrypt.
    #[error("the input file changed while it was being decrypted; no plaintext was written")]
    InputChanged,
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad argument that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn no_matching_key(recipients: &[String], cards: &[String]) -> String {
    let present = if cards.is_empty() {
        "no OpenPGP card is present".to_string()
    } else {
        format!("cards present: {}", cards.join(", "))
    };
    format!(
        "no card holds a key for this message; it is encrypted to {}; {present}",
        recipients.join(", ")
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        use Error::*;
        match self {
            NoService(_)
            | NoReader
            | NoCard { .. }
            | CardNotFound { .. }
            | CardBusy { .. }
            | CardRemoved => exit::NO_CARD,
            NoMatchingKey { .. } | PasswordOnly | KeyMismatch(_) => exit::NO_KEY,
            PinUnavailable(_) | WrongPin { .. } | PinBlocked | LastPinTry => exit::PIN,
            NotOpenPgp(_)
            | BadMessage(_)
            | Malformed(_)
            | Unsupported(_)
            | NoIntegrity
            | Unencrypted
            | TooLarge { .. } => exit::BAD_MESSAGE,
            InputChanged => exit::IO,
            Io { .. } => exit::IO,
            Card(_) => exit::CARD,
            Usage(_) => exit::USAGE,
            Other(_) => exit::OTHER,
        }
    }

    /// What the user can do, where there is something.
    pub fn hint(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            NoService(_) => "start the PC/SC daemon: `sudo systemctl start pcscd.socket` \
                             (Debian/Ubuntu: `sudo apt install pcscd`)"
                .into(),
            NoReader => "plug in your YubiKey or Nitrokey; if it is plugged in, install the \
                         udev rules from the README and re-plug it"
                .into(),
            NoCard { .. } => "insert your OpenPGP card or plug in your security key".into(),
            CardNotFound { found, .. } if found.is_empty() => {
                "no OpenPGP card is present; insert the card".into()
            }
            CardNotFound { found, .. } => format!(
                "cards present: {}; pass one of them to --card",
                found.join(", ")
            ),
            CardBusy { .. } => "another program holds the card exclusively; if it is gpg, run \
                                `gpgconf --kill scdaemon`, or add `disable-ccid` and \
                                `pcsc-shared` to ~/.gnupg/scdaemon.conf"
                .into(),
            CardRemoved => "re-insert the card and run the command again".into(),
            NoMatchingKey { cards, .. } if cards.is_empty() => {
                "insert the card that holds your decryption key".into()
            }
            NoMatchingKey { .. } => {
                "insert the card that holds one of these keys, or use the matching --card".into()
            }
            PasswordOnly => "decrypt it with `gpg -d` or `sq decrypt`".into(),
            PinUnavailable(_) => "give the PIN with --pin-file FILE or --pin-fd N, or run \
                                  from a terminal without --batch"
                .into(),
            WrongPin { tries_left: 0 } | PinBlocked => "unblock the PIN with your admin PIN or \
                                                         resetting code (gpg --card-edit, \
                                                         passwd, unblock)"
                .into(),
            WrongPin { tries_left } => format!(
                "{tries_left} {} left before the PIN is blocked",
                if *tries_left == 1 { "try" } else { "tries" }
            ),
            LastPinTry => "only one PIN try is left: if you are sure of the PIN, run again \
                           with --allow-last-pin-try"
                .into(),
            KeyMismatch(_) => "the card's key data looks inconsistent; check it with \
                               `gpg --card-status`"
                .into(),
            NotOpenPgp(_) => "the input must be an OpenPGP message (armored or binary)".into(),
            Unencrypted => "nothing to decrypt: check a signature with `gpg --verify`".into(),
            BadMessage(_) => {
                "the message was damaged or altered; ask the sender to send it again".into()
            }
            Malformed(_) => "the program that made it wrote packets the OpenPGP format does \
                             not allow (or it was damaged on the way): ask the sender which \
                             program they use, and to send it again"
                .into(),
            Unsupported(_) => "ask the sender to encrypt with a current OpenPGP program \
                               (AES with SEIPD v1 or v2)"
                .into(),
            NoIntegrity => "anyone on the way could have changed it undetectably; ask the \
                            sender to send it again with a current OpenPGP program (if you \
                            must read it: gpg --ignore-mdc-error)"
                .into(),
            TooLarge { .. } => "if you trust the message, raise the limit with \
                `max-plaintext = 1G` in the config file or CARDECRYPT_MAX_PLAINTEXT=1G; \
                `cardecrypt -o FILE` decrypts a single message of any size"
                .into(),
            InputChanged => "do not modify the file while it is being decrypted; run the \
                             command again"
                .into(),
            _ => return None,
        })
    }
}
