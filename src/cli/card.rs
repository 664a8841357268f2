//! `cardecrypt card ...` and `cardecrypt lock`: one args type per verb.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CardArgs;

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
    Status(StatusArgs),

    /// Put the keys of a secret key file on a card (needs the admin PIN)
    ///
    /// Each slot gets the newest valid key for it: the encryption subkey goes to the
    /// decryption slot, a signing key to the signature slot, an authentication key to the
    /// authentication slot.
    #[command(after_help = "Example:\n  \
        cardecrypt card import --card FFFE:00000001 --admin-pin-file admin.txt secret-key.asc")]
    Import(ImportArgs),

    /// Generate keys on the card and write their certificate, self-signed by the card
    ///
    /// Keys are generated in all three slots (signature, decryption, authentication). The
    /// certificate's signatures are made by the card with the user PIN; the private keys
    /// never leave it.
    #[command(
        after_help = "Example:\n  cardecrypt card generate --card FFFE:00000001 \\\n    \
        --userid \"Alice <alice@example.org>\" --algo cv25519 -o alice.pub.asc"
    )]
    Generate(GenerateArgs),

    /// Write a certificate for the keys on the card, self-signed by the card
    #[command(after_help = "Example:\n  \
        cardecrypt card export --userid \"Alice <alice@example.org>\" -o cert.asc")]
    Export(ExportArgs),

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
    FactoryReset(FactoryResetArgs),
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
    UnblockUser(UnblockArgs),
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
    Enable(KdfEnableArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub card: CardArgs,
    /// Versioned JSON for scripts (see "schema")
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The secret key (armored or binary)
    pub file: PathBuf,
    #[command(flatten)]
    pub card: CardArgs,
    /// Import only these keys (fingerprints); repeatable
    #[arg(long, value_name = "FPR")]
    pub subkey: Vec<String>,
    /// Read the key's passphrase from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace keys already on the card (asked interactively otherwise)
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub card: CardArgs,
    /// The user ID of the new certificate
    #[arg(long)]
    pub userid: String,
    /// Key algorithm
    #[arg(long, value_enum, default_value = "cv25519")]
    pub algo: KeyAlgo,
    /// Where to write the certificate (armored; created new)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace keys already on the card (asked interactively otherwise)
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub card: CardArgs,
    /// The user ID to certify
    #[arg(long)]
    pub userid: String,
    /// Where to write the certificate (armored; created new)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
pub struct FactoryResetArgs {
    #[command(flatten)]
    pub card: CardArgs,
    /// Confirm by naming the card to wipe (required with --batch)
    #[arg(long, value_name = "IDENT")]
    pub yes_really_wipe: Option<String>,
    /// Never prompt
    #[arg(long)]
    pub batch: bool,
}

#[derive(Args, Debug)]
pub struct KdfEnableArgs {
    #[command(flatten)]
    pub card: CardArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
pub struct UnblockArgs {
    #[command(flatten)]
    pub args: PinChangeArgs,
    /// Read the resetting code from FILE (without it, the admin PIN is used)
    #[arg(long, value_name = "FILE")]
    pub reset_code_file: Option<PathBuf>,
}

/// Key algorithms `card generate` offers (what OpenPGP cards 3.x generate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgo {
    Cv25519,
    Nistp256,
    Nistp384,
    Nistp521,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}
