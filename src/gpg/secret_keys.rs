//! `--list-secret-keys --with-colons` with the keys on present cards listed as gpg lists card
//! stubs (`sec`/`ssb` records, the card's serial number in field 15), without scdaemon and
//! without `gpg --card-status` having made stubs: GPGME's `gpgme_get_key(FPR, secret=1)`,
//! which Thunderbird and neomutt call before they sign, then finds the card's key. Keys of a
//! card certificate that are not on the card are marked `#` (not available).

use std::{ffi::OsString, io::Write, path::Path};

use openpgp_card::ocard::KeyType;

use super::real;
use crate::card::{self, link::ApduCounter, PcscSource};

/// A present card: its application identifier as gpg writes it, and the key ids (the last
/// 16 hex digits of the fingerprints) of the keys in its slots.
struct CardKeys {
    aid: String,
    key_ids: Vec<String>,
}

/// Lists secret keys as the real gpg does, with the certificates whose keys are on a present
/// card added as card keys. Returns the exit code.
pub fn run(args: &[OsString], real_gpg: &Path) -> u8 {
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let as_str: Vec<&str> = text.iter().map(String::as_str).collect();
    let (status, secret) = match real::output(real_gpg, &as_str) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("cardecrypt-gpg: {e}");
            return 2;
        }
    };
    let mut code = status.code().map_or(2, |c| c.clamp(0, 255) as u8);
    let cards = present_cards();
    let mut listing = String::from_utf8_lossy(&secret).into_owned();
    if !cards.is_empty() {
        let public: Vec<&str> = as_str
            .iter()
            .map(|a| match *a {
                "--list-secret-keys" | "-K" => "--list-keys",
                other => other,
            })
            .filter(|a| *a != "--with-secret")
            .collect();
        if let Ok((_, public_out)) = real::output(real_gpg, &public) {
            let merged = merge(&listing, &String::from_utf8_lossy(&public_out), &cards);
            if merged.len() > listing.len() {
                code = 0;
            }
            listing = merged;
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(listing.as_bytes()).and_then(|()| out.flush());
    code
}

/// The cards present and their keys; none when pcscd cannot be asked.
fn present_cards() -> Vec<CardKeys> {
    let mut source = PcscSource::default();
    let counter = ApduCounter::default();
    let mut found = Vec::new();
    for mut open in card::open_all(&mut source, &counter, false).unwrap_or_default() {
        let Ok(mut tx) = open.card.transaction() else {
            continue;
        };
        let Ok(aid) = tx.application_identifier() else {
            continue;
        };
        let key_ids = [
            KeyType::Signing,
            KeyType::Decryption,
            KeyType::Authentication,
        ]
        .into_iter()
        .filter_map(|slot| card::slot_info(&mut tx, slot).ok().flatten())
        .map(|s| {
            let hex: String = s
                .fingerprint
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            hex[hex.len().saturating_sub(16)..].to_string()
        })
        .collect();
        found.push(CardKeys {
            aid: card::aid_hex(&aid),
            key_ids,
        });
    }
    found
}

/// The real gpg's secret listing, with every certificate of the public listing that has a
/// key on a card added as card keys (replacing the real gpg's own block for it, if any).
fn merge(secret: &str, public: &str, cards: &[CardKeys]) -> String {
    let (header, secret_blocks) = blocks(secret);
    let (_, public_blocks) = blocks(public);
    let carded: Vec<String> = public_blocks
        .iter()
        .filter_map(|block| as_card_block(block, cards))
        .collect();
    let mut out = header;
    for block in secret_blocks {
        let id = primary_id(&block);
        if !carded.iter().any(|c| primary_id(c) == id) {
            out.push_str(&block);
        }
    }
    for block in &carded {
        out.push_str(block);
    }
    out
}

/// The lines before the first key, and each key's block (from its `pub`/`sec` record on).
fn blocks(listing: &str) -> (String, Vec<String>) {
    let mut header = String::new();
    let mut all: Vec<String> = Vec::new();
    for line in listing.split_inclusive('\n') {
        if line.starts_with("pub:") || line.starts_with("sec:") {
            all.push(String::new());
        }
        match all.last_mut() {
            Some(block) => block.push_str(line),
            None => header.push_str(line),
        }
    }
    (header, all)
}

fn primary_id(block: &str) -> Option<&str> {
    block.lines().next()?.split(':').nth(4)
}

/// A public key block as a secret one with card keys, if one of its keys is on a card.
fn as_card_block(block: &str, cards: &[CardKeys]) -> Option<String> {
    let on_card = |key_id: &str| {
        cards
            .iter()
            .find(|c| c.key_ids.iter().any(|k| k.eq_ignore_ascii_case(key_id)))
    };
    let mut any = false;
    let mut out = String::with_capacity(block.len());
    for line in block.split_inclusive('\n') {
        let kind = line.split(':').next().unwrap_or_default();
        let secret_kind = match kind {
            "pub" => "sec",
            "sub" => "ssb",
            _ => {
                out.push_str(line);
                continue;
            }
        };
        let body = line.trim_end_matches('\n');
        let mut fields: Vec<String> = body.split(':').map(str::to_string).collect();
        fields[0] = secret_kind.to_string();
        while fields.len() < 15 {
            fields.push(String::new());
        }
        let card = on_card(&fields[4]);
        any |= card.is_some();
        fields[14] = card.map_or_else(|| "#".to_string(), |c| c.aid.clone());
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = "tru::1:0:0:0:0:0\n\
        pub:u:255:22:40CB9B99FBF17354:1735689600:::u:::scESC:::::ed25519:::0:\n\
        fpr:::::::::CA83C0D43C598D12841A582340CB9B99FBF17354:\n\
        uid:u::::1735689600::H::cv25519 <cv25519@cardecrypt.test>::::::::::0:\n\
        sub:u:255:18:7BC04DD0BECCEA44:1735689600::::::e:::::cv25519::\n\
        fpr:::::::::F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44:\n\
        pub:u:255:22:1111111111111111:1735689600:::u:::scESC:::::ed25519:::0:\n\
        fpr:::::::::0000000000000000000000001111111111111111:\n";

    #[test]
    fn a_certificate_with_card_keys_is_listed_as_card_stubs() {
        let cards = [CardKeys {
            aid: "D2760001240103040006123456780000".into(),
            key_ids: vec!["7BC04DD0BECCEA44".into()],
        }];
        let merged = merge("", PUBLIC, &cards);
        let lines: Vec<&str> = merged.lines().collect();
        assert!(lines[0].starts_with("sec:u:255:22:40CB9B99FBF17354:"));
        assert_eq!(
            lines[0].split(':').nth(14),
            Some("#"),
            "primary not on the card"
        );
        let ssb = lines.iter().find(|l| l.starts_with("ssb:")).expect("ssb");
        assert_eq!(
            ssb.split(':').nth(14),
            Some("D2760001240103040006123456780000")
        );
        assert!(
            !merged.contains("1111111111111111"),
            "only card certificates"
        );
        assert_eq!(merge("", PUBLIC, &[]), "");
    }
}
