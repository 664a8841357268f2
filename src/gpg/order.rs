//! What makes cardecrypt-gpg's status lines read as gpg's: the primary key's fingerprint
//! beside the card's subkey (DECRYPTION_KEY, KEY_CONSIDERED), and gpg's order when status
//! lines and plaintext share one descriptor (aerc runs `--status-fd 1` and reads both from
//! it): the opening lines, the plaintext, then the closing ones.

use std::{
    io::Write,
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::Command,
};

use super::{args::DecryptCall, real};
use crate::{
    error::{Error, Result},
    gpg_status::{Status, StatusWriter},
};

/// The fingerprint of the primary key whose subkey `fpr` is, as gpg names it: from a cache
/// (the relation never changes), else from the user's keyring through the real gpg, once.
/// `None` when the keyring does not hold the certificate.
pub fn primary_of(call: &DecryptCall, real_gpg: &Path, fpr: &str) -> Option<String> {
    let cached = cache_file(fpr);
    if let Some(text) = cached
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
    {
        let text = text.trim();
        if is_fingerprint(text) {
            return Some(text.to_string());
        }
    }
    let out = Command::new(real_gpg)
        .env(real::RUNNING_REAL, "1")
        .args(["--batch", "--no-tty", "--with-colons"])
        .args(&call.verify_options)
        .args(["--list-keys", "--"])
        .arg(fpr)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let primary = primary_in_listing(&listing)?;
    if let Some(file) = cached {
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(file, format!("{primary}\n"));
    }
    Some(primary)
}

fn cache_file(fpr: &str) -> Option<PathBuf> {
    is_fingerprint(fpr).then_some(())?;
    Some(
        crate::card::pubkey::default_cache_dir()?
            .join("primary")
            .join(fpr.to_ascii_uppercase()),
    )
}

fn is_fingerprint(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first `fpr` record after the `pub` record of a `--with-colons` listing.
fn primary_in_listing(listing: &str) -> Option<String> {
    let mut lines = listing.lines().skip_while(|l| !l.starts_with("pub:"));
    lines.next()?;
    let fpr = lines.find(|l| l.starts_with("fpr:"))?.split(':').nth(9)?;
    is_fingerprint(fpr).then(|| fpr.to_ascii_uppercase())
}

/// Whether status lines go where the plaintext goes: `--status-fd 1`, or a descriptor for
/// the same pipe or file as standard output (not a terminal, where order is only cosmetic).
pub fn status_shares_output(call: &DecryptCall, output: Option<&Path>) -> bool {
    if output.is_some() || call.unwrap {
        return false;
    }
    match call.status_fd {
        None => false,
        Some(1) => true,
        Some(fd) => {
            let Ok(status) = crate::paths::open_fd(fd, true) else {
                return false;
            };
            let stdout = std::io::stdout();
            match (
                rustix::fs::fstat(&status),
                rustix::fs::fstat(stdout.as_fd()),
            ) {
                (Ok(a), Ok(b)) => {
                    let device = rustix::fs::FileType::from_raw_mode(a.st_mode)
                        == rustix::fs::FileType::CharacterDevice;
                    !device && a.st_dev == b.st_dev && a.st_ino == b.st_ino
                }
                _ => false,
            }
        }
    }
}

/// Our lines before DECRYPTION_OKAY without the literal data's (the real gpg's describe
/// the literal data; ours the packet stream around it), and the lines from DECRYPTION_OKAY
/// on.
pub fn split(lines: &[Status]) -> (Vec<&Status>, &[Status]) {
    let okay = lines
        .iter()
        .position(|l| matches!(l, Status::DecryptionOkay))
        .unwrap_or(lines.len());
    let (head, tail) = lines.split_at(okay);
    let ours = head
        .iter()
        .filter(|l| !matches!(l, Status::Plaintext { .. } | Status::PlaintextLength(_)))
        .collect();
    (ours, tail)
}

/// Our lines with the real gpg's in gpg's order on one descriptor: ours up to
/// DECRYPTION_INFO, the PLAINTEXT lines, the plaintext, the signature lines, then ours from
/// DECRYPTION_OKAY on.
pub fn write_in_order(
    call: &DecryptCall,
    lines: &[Status],
    inner_lines: &[String],
    plaintext: &[u8],
) -> Result<()> {
    let mut status = StatusWriter::open(call.status_fd)?;
    let (head, tail) = split(lines);
    for line in head {
        status.write(line);
    }
    let (literal, signatures): (Vec<String>, Vec<String>) = inner_lines
        .iter()
        .cloned()
        .partition(|l| l.starts_with("PLAINTEXT"));
    status.write_raw(&literal);
    let mut out = std::io::stdout().lock();
    out.write_all(plaintext)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))?;
    drop(out);
    status.write_raw(&signatures);
    status.write_all(tail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_is_the_first_fingerprint_after_pub() {
        let listing = "tru::1:0:0:0:0:0\n\
            pub:u:255:22:7BC04DD0BECCEA44:1:::u:::scESC:::::ed25519:::0:\n\
            fpr:::::::::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:\n\
            uid:u::::1::X::cv25519 <cv25519@cardecrypt.test>::::::::::0:\n\
            sub:u:255:18:1111111111111111:1::::::e:::::cv25519::\n\
            fpr:::::::::F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44:\n";
        assert_eq!(
            primary_in_listing(listing).as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        );
        assert_eq!(primary_in_listing("nothing"), None);
    }
}
