//! `inspect`: one message or email, or with `--mailbox` a whole maildir or mbox.

use super::{CardArgs, PinArgs};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The message (OpenPGP, armored or binary) or email (RFC 5322); standard input when
    /// absent
    pub file: Option<std::path::PathBuf>,
    /// Also decrypt with the card and describe the inside (never the body text)
    #[arg(long)]
    pub decrypt: bool,
    /// Versioned JSON for scripts (see the README)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub card: CardArgs,
    #[command(flatten)]
    pub pin: PinArgs,
    /// With --decrypt: check signatures against the certificates in FILE (repeatable)
    #[arg(long, value_name = "FILE")]
    pub signer_certs: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub mailbox: MailboxArgs,
}

/// `inspect --mailbox`: a whole maildir or mbox instead of one message.
#[derive(clap::Args, Debug)]
pub struct MailboxArgs {
    /// Look at every message of a maildir (cur/, new/) or mbox file: totals, leaks per
    /// month and per correspondent (no card, PIN or pcscd; nothing is decrypted)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["file", "decrypt", "signer_certs"])]
    pub mailbox: Option<std::path::PathBuf>,
    /// With --mailbox: every maildir and mbox file under PATH
    #[arg(long, requires = "mailbox")]
    pub recursive: bool,
    /// With --mailbox: group correspondents by the domain of their address
    #[arg(long, requires = "mailbox")]
    pub by_domain: bool,
    /// With --mailbox: one of your own addresses (repeatable); your mail is reported apart,
    /// with the settings to change in your client. Without it, a folder named Sent is yours
    #[arg(long, value_name = "ADDRESS", requires = "mailbox")]
    pub me: Vec<String>,
    /// With --mailbox: also write the report as one self-contained HTML page (mode 0600)
    #[arg(long, value_name = "FILE", requires = "mailbox")]
    pub html: Option<std::path::PathBuf>,
    /// With --mailbox: write the text or JSON report into FILE (mode 0600) instead of
    /// standard output
    #[arg(short, long, value_name = "FILE", requires = "mailbox")]
    pub output: Option<std::path::PathBuf>,
    /// With --html or --output: replace a file that exists
    #[arg(long, requires = "mailbox")]
    pub overwrite: bool,
}
