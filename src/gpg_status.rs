//! gpg's status protocol (`--status-fd N`): the lines mail clients and GPGME judge a
//! decrypt by, as one enum, and the one writer that puts them on a descriptor.
//!
//! Which lines a decrypt writes, and in which order, is decided where the facts are
//! (`decrypt::Report::status_lines`, `verify::SignatureCheck::status_lines`); this module
//! only knows how each line is spelled.

use std::{fmt, io::Write};

use crate::error::{Error, Result};

/// One status line, without the `[GNUPG:] ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No OpenPGP data (1: no armor or packets found).
    NoData(u8),
    EncTo {
        key_id: String,
        pk_algo: u8,
    },
    /// The card that is used (3: an OpenPGP card), by its application identifier.
    /// An operation failed: where, and gpg's error code.
    Failure {
        location: String,
        code: u32,
    },
    /// Signing starts with this hash algorithm.
    BeginSigning(u8),
    /// A signature was made: `kind` D (detached), S (inline) or C (cleartext), the signature
    /// class, its creation time and the signing key's fingerprint.
    SigCreated {
        kind: char,
        pk_algo: u8,
        hash_algo: u8,
        class: u8,
        created: u64,
        fpr: String,
    },
    /// gpg looked at this certificate (its primary key's fingerprint) for the decryption.
    KeyConsidered {
        fpr: String,
    },
    CardCtrl {
        aid: String,
    },
    NeedPassphrasePin {
        aid: String,
    },
    GetHidden(&'static str),
    GotIt,
    /// A card operation failed (2: bad PIN).
    ScOpFailure(u8),
    NoSeckey {
        key_id: String,
    },
    DecryptionKey {
        fpr: String,
        primary_fpr: String,
    },
    BeginDecryption,
    /// `mdc_method` 2 is SEIPD v1's MDC; 0 with an AEAD algorithm is SEIPD v2 / OCB.
    DecryptionInfo {
        mdc_method: u8,
        sym_algo: u8,
        aead_algo: Option<u8>,
    },
    /// `format` is the literal packet's format octet; the file name is escaped.
    Plaintext {
        format: u8,
        date: u32,
        name: Vec<u8>,
    },
    PlaintextLength(u64),
    /// gpg's `--show-session-key`: `ALGO:HEX`.
    SessionKey(String),
    NewSig,
    GoodSig {
        key_id: String,
        user_id: String,
    },
    BadSig {
        key_id: String,
        user_id: String,
    },
    ErrSig {
        key_id: String,
        pk_algo: u8,
        hash_algo: u8,
        sig_class: u8,
        created: u64,
        rc: u8,
        fpr: String,
    },
    ValidSig {
        fpr: String,
        date: String,
        created: u64,
        expires: u64,
        version: u8,
        pk_algo: u8,
        hash_algo: u8,
        sig_class: u8,
        primary_fpr: String,
    },
    NoPubkey {
        key_id: String,
    },
    TrustUndefined,
    DecryptionFailed,
    DecryptionOkay,
    GoodMdc,
    EndDecryption,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Status::*;
        match self {
            NoData(why) => write!(f, "NODATA {why}"),
            EncTo { key_id, pk_algo } => write!(f, "ENC_TO {key_id} {pk_algo} 0"),
            CardCtrl { aid } => write!(f, "CARDCTRL 3 {aid}"),
            KeyConsidered { fpr } => write!(f, "KEY_CONSIDERED {fpr} 0"),
            BeginSigning(hash) => write!(f, "BEGIN_SIGNING H{hash}"),
            Failure { location, code } => write!(f, "FAILURE {location} {code}"),
            SigCreated {
                kind,
                pk_algo,
                hash_algo,
                class,
                created,
                fpr,
            } => write!(
                f,
                "SIG_CREATED {kind} {pk_algo} {hash_algo} {class:02X} {created} {fpr}"
            ),
            NeedPassphrasePin { aid } => write!(f, "NEED_PASSPHRASE_PIN OPENPGP 2 {aid}"),
            GetHidden(what) => write!(f, "GET_HIDDEN {what}"),
            GotIt => write!(f, "GOT_IT"),
            ScOpFailure(code) => write!(f, "SC_OP_FAILURE {code}"),
            NoSeckey { key_id } => write!(f, "NO_SECKEY {key_id}"),
            // gpg prints the primary key second; clients use the first.
            DecryptionKey { fpr, primary_fpr } => {
                write!(f, "DECRYPTION_KEY {fpr} {primary_fpr} u")
            }
            BeginDecryption => write!(f, "BEGIN_DECRYPTION"),
            DecryptionInfo {
                mdc_method,
                sym_algo,
                aead_algo: Some(aead),
            } => write!(f, "DECRYPTION_INFO {mdc_method} {sym_algo} {aead}"),
            DecryptionInfo {
                mdc_method,
                sym_algo,
                aead_algo: None,
            } => write!(f, "DECRYPTION_INFO {mdc_method} {sym_algo} 0"),
            Plaintext { format, date, name } => {
                let kind = match format {
                    b't' => 74,
                    b'u' => 75,
                    _ => 62,
                };
                write!(f, "PLAINTEXT {kind} {date} {}", percent_escape(name))
            }
            PlaintextLength(n) => write!(f, "PLAINTEXT_LENGTH {n}"),
            NewSig => write!(f, "NEWSIG"),
            GoodSig { key_id, user_id } => write!(f, "GOODSIG {key_id} {}", escape_text(user_id)),
            BadSig { key_id, user_id } => write!(f, "BADSIG {key_id} {}", escape_text(user_id)),
            ErrSig {
                key_id,
                pk_algo,
                hash_algo,
                sig_class,
                created,
                rc,
                fpr,
            } => write!(
                f,
                "ERRSIG {key_id} {pk_algo} {hash_algo} {sig_class:02X} {created} {rc} {fpr}"
            ),
            ValidSig {
                fpr,
                date,
                created,
                expires,
                version,
                pk_algo,
                hash_algo,
                sig_class,
                primary_fpr,
            } => write!(
                f,
                "VALIDSIG {fpr} {date} {created} {expires} {version} 0 {pk_algo} {hash_algo} \
                 {sig_class:02X} {primary_fpr}"
            ),
            NoPubkey { key_id } => write!(f, "NO_PUBKEY {key_id}"),
            // No web of trust here: a certificate handed to us is not validated.
            TrustUndefined => write!(f, "TRUST_UNDEFINED 0 pgp"),
            DecryptionFailed => write!(f, "DECRYPTION_FAILED"),
            SessionKey(key) => write!(f, "SESSION_KEY {key}"),
            DecryptionOkay => write!(f, "DECRYPTION_OKAY"),
            GoodMdc => write!(f, "GOODMDC"),
            EndDecryption => write!(f, "END_DECRYPTION"),
        }
    }
}

/// Status lines on a descriptor, or nowhere.
pub struct StatusWriter {
    sink: Option<Box<dyn Write>>,
}

impl StatusWriter {
    /// Lines on file descriptor `fd` (1 and 2 are stdout and stderr), or nowhere.
    pub fn open(fd: Option<i32>) -> Result<Self> {
        let sink: Option<Box<dyn Write>> = match fd {
            None => None,
            Some(1) => Some(Box::new(std::io::stdout())),
            Some(2) => Some(Box::new(std::io::stderr())),
            Some(n) => Some(Box::new(crate::paths::open_fd(n, true).map_err(|e| {
                Error::io(format!("cannot write status lines to fd {n}"), e)
            })?)),
        };
        Ok(StatusWriter { sink })
    }

    /// Lines into any writer (tests, a buffer).
    pub fn to(sink: Box<dyn Write>) -> Self {
        StatusWriter { sink: Some(sink) }
    }

    /// Whether lines go anywhere.
    pub fn is_open(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one line. A reader that went away is not our failure: the decrypt's outcome
    /// stands either way.
    pub fn write(&mut self, line: &Status) {
        if let Some(sink) = &mut self.sink {
            let _ = writeln!(sink, "[GNUPG:] {line}");
            let _ = sink.flush();
        }
    }

    /// Lines another gpg wrote (without their prefix), passed on as they are.
    pub fn write_raw(&mut self, lines: &[String]) {
        if let Some(sink) = &mut self.sink {
            for line in lines {
                let _ = writeln!(sink, "[GNUPG:] {line}");
            }
            let _ = sink.flush();
        }
    }

    pub fn write_all(&mut self, lines: &[Status]) {
        for line in lines {
            self.write(line);
        }
    }
}

/// gpg's escaping for free text such as user ids: control characters and '%'.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch < ' ' || ch == '%' {
            out.push_str(&format!("%{:02X}", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

/// gpg's escaping for status arguments: %XX for bytes below 0x20, space, '%' and 0x7F+.
fn percent_escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b <= b' ' || b == b'%' || b >= 0x7f {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_spelled_as_gpg_spells_them() {
        let name = Status::Plaintext {
            format: b'b',
            date: 1_700_000_000,
            name: b"my file%.txt".to_vec(),
        };
        assert_eq!(name.to_string(), "PLAINTEXT 62 1700000000 my%20file%25.txt");
        let uid = Status::GoodSig {
            key_id: "11".into(),
            user_id: "A\n%".into(),
        };
        assert_eq!(uid.to_string(), "GOODSIG 11 A%0A%25");
        let v2 = Status::DecryptionInfo {
            mdc_method: 0,
            sym_algo: 9,
            aead_algo: Some(2),
        };
        assert_eq!(v2.to_string(), "DECRYPTION_INFO 0 9 2");
    }
}
