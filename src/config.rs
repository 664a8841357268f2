//! Defaults a user sets once: `$XDG_CONFIG_HOME/cardecrypt/config` (or the file named by
//! `CARDECRYPT_CONFIG`). Command-line options and environment variables win over it.
//!
//! ```text
//! # cardecrypt config
//! keep-unlocked = 10m
//! signer-certs = ~/.config/cardecrypt/contacts.pgp
//! pinentry = /usr/bin/pinentry-gnome3
//! real-gpg = /usr/bin/gpg          # for cardecrypt-gpg: the gpg everything else goes to
//! max-plaintext = 1G               # mail and inspect: the most plaintext held in memory
//! ```

use std::{path::PathBuf, time::Duration};

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct Config {
    /// Default for `--keep-unlocked`.
    pub keep_unlocked: Option<Duration>,
    /// Keyrings always used to check signatures, before any `--signer-certs`.
    pub signer_certs: Vec<PathBuf>,
    /// The pinentry program to ask for PINs with (`PINENTRY_PROGRAM` wins).
    pub pinentry: Option<PathBuf>,
    /// The real gpg, for the gpg front end (`CARDECRYPT_REAL_GPG` wins).
    pub real_gpg: Option<PathBuf>,
    /// The most plaintext decrypted into memory, in bytes (`CARDECRYPT_MAX_PLAINTEXT` wins).
    pub max_plaintext: Option<u64>,
}

impl Config {
    /// Where the configuration is read from, if there is a place at all.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CARDECRYPT_CONFIG") {
            return Some(PathBuf::from(p));
        }
        Some(crate::paths::config_dir()?.join("config"))
    }

    /// The configuration, or the defaults when there is no file.
    pub fn load() -> Result<Config> {
        let Some(path) = Self::path() else {
            return Ok(Config::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Self::parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {}: expected `key = value`", n + 1));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "keep-unlocked" => {
                    config.keep_unlocked = Some(
                        crate::time::parse_duration(value)
                            .map_err(|e| format!("line {}: {e}", n + 1))?,
                    )
                }
                "signer-certs" => config.signer_certs.push(crate::paths::expand_home(value)),
                "pinentry" => config.pinentry = Some(crate::paths::expand_home(value)),
                "real-gpg" => config.real_gpg = Some(crate::paths::expand_home(value)),
                "max-plaintext" => {
                    config.max_plaintext =
                        Some(parse_size(value).map_err(|e| format!("line {}: {e}", n + 1))?)
                }
                other => {
                    return Err(format!(
                        "line {}: unknown setting `{other}` (known: keep-unlocked, signer-certs, \
                         pinentry, real-gpg, max-plaintext)",
                        n + 1
                    ))
                }
            }
        }
        Ok(config)
    }

    /// The in-memory plaintext limit: `CARDECRYPT_MAX_PLAINTEXT`, else the config's, else
    /// the default.
    pub fn max_plaintext(&self) -> Result<u64> {
        match std::env::var("CARDECRYPT_MAX_PLAINTEXT") {
            Ok(v) if !v.is_empty() => {
                parse_size(&v).map_err(|e| Error::Usage(format!("CARDECRYPT_MAX_PLAINTEXT: {e}")))
            }
            _ => Ok(self
                .max_plaintext
                .unwrap_or(crate::engine::memory::DEFAULT_LIMIT)),
        }
    }
}

/// A size as typed: bytes, or a number with K, M or G (binary units, an optional `iB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        _ => return Err(format!("`{text}` is not a size (like 300M or 1G)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (like 300M or 1G)"))?;
    n.checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_comments_and_errors() {
        let c = Config::parse("# x\n\nkeep-unlocked = 10m\nsigner-certs=/a\nsigner-certs = /b\n")
            .expect("parse");
        assert_eq!(c.keep_unlocked, Some(Duration::from_secs(600)));
        assert_eq!(c.signer_certs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(matches!(Config::parse("colour = red"), Err(e) if e.contains("line 1")));
        assert!(Config::parse("keep-unlocked = soon").is_err());
        assert!(Config::parse("just words").is_err());
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(parse_size("300M"), Ok(300 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
        let c = Config::parse("max-plaintext = 512M").expect("parse");
        assert_eq!(c.max_plaintext, Some(512 << 20));
    }
}
