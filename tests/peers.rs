//! Other implementations' own test vectors (`../shared/peer-vectors`: Sequoia, OpenPGP.js,
//! rPGP and the interop suite it bundles, GnuPG, gopenpgp). Each case's secret key is put on
//! a fresh virtual card with the same code as `cardecrypt card import`, and its message is
//! decrypted through the card: the plaintext must have the expected sha256, or, for a FAIL
//! case, decryption must fail with no plaintext. The cases cardecrypt does not support are
//! listed below with the reason, and must fail with the error given there.

mod common;

use std::{collections::BTreeMap, path::PathBuf};

use cardecrypt::Error;
use common::*;
use sequoia_openpgp::crypto::Password;
use sha2::{Digest, Sha256};

struct Case {
    id: String,
    message: PathBuf,
    key: PathBuf,
    passphrase: Option<String>,
    expected: Vec<String>,
}

fn cases(dir: PathBuf) -> Vec<Case> {
    let table = std::fs::read_to_string(dir.join("cases.tsv")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the peer vectors live beside the repository)",
            dir.display()
        )
    });
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Case {
                id: f[0].to_string(),
                message: dir.join(f[2]),
                key: dir.join(f[3]),
                passphrase: (f[4] != "-").then(|| f[4].to_string()),
                expected: f[5].split('|').map(str::to_string).collect(),
            }
        })
        .collect()
}

/// Cases cardecrypt refuses on purpose: (id prefix, why, text the error must contain).
const REFUSED: &[(&str, &str, &str)] = &[(
    "rpgp-rfc9580-v6-cv25519legacy",
    "a v6 key with the legacy Curve25519 encoding, which RFC 9580 section 9.2 forbids (rPGP \
         and OpenPGP.js refuse the key too)",
    "which RFC 9580 forbids for v6 keys",
)];

/// Imports the case's key onto a fresh card and decrypts; the plaintext's sha256.
fn run(case: &Case) -> Result<String, Error> {
    let cert = cardecrypt::provision::read_key(&case.key)?;
    let password = case.passphrase.as_deref().map(Password::from);
    let mut cards = Cards::one();
    cards.import_cert(0, &cert, password.as_ref())?;
    let message = std::fs::read(&case.message).expect("message");
    let (plain, _) = decrypt_prompting(&mut cards, &message)?;
    Ok(format!("{:x}", Sha256::digest(&plain)))
}

fn suite(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

#[test]
fn every_peer_vector_decrypts_or_is_refused_for_its_stated_reason() {
    let mut passed: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let Some(dir) = peer_corpus("every_peer_vector_decrypts") else {
        return;
    };
    for case in cases(dir) {
        let entry = passed.entry(suite(&case.id).to_string()).or_default();
        entry.1 += 1;
        let refused = REFUSED
            .iter()
            .find(|(prefix, _, _)| case.id.starts_with(prefix));
        let outcome = run(&case);
        let ok = match (&outcome, refused) {
            // The reason in the message, and a hint that does not blame damage for what is
            // not damage.
            (Err(e), Some((_, _, needle))) => {
                e.to_string().contains(needle)
                    && !e.hint().is_some_and(|h| h.contains("damaged or altered"))
            }
            (_, Some(_)) => false,
            (Ok(sha), None) => case.expected.iter().any(|x| x == sha),
            (Err(_), None) => case.expected == ["FAIL"],
        };
        if ok {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{}: {:?}",
                case.id,
                outcome.map_err(|e| e.to_string())
            ));
        }
    }
    for (suite, (ok, all)) in &passed {
        eprintln!("peer suite {suite}: {ok}/{all}");
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// GnuPG 2.1.5's key with padded secret MPIs is read with the right passphrase (above), and a
/// wrong one still says so: the checksum decides, not the MPI mending.
#[test]
fn padded_secret_mpis_still_need_the_right_passphrase() {
    let Some(dir) = peer_corpus("padded_secret_mpis") else {
        return;
    };
    let case = cases(dir)
        .into_iter()
        .find(|c| c.id == "interop-gnupg-v2-1-5-001")
        .expect("the GnuPG 2.1.5 case");
    let cert = cardecrypt::provision::read_key(&case.key).expect("read");
    let wrong = Password::from("not the passphrase");
    let err = cardecrypt::provision::plan(&cert, &[], Some(&wrong))
        .err()
        .expect("a wrong passphrase is refused");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}
