//! Which keys of a secret key file go into which card slot: the newest valid key for each of
//! decryption, signing and authentication, or only the keys named with `--subkey`.
//!
//! A key is its owner's: like gpg's keytocard, self-signatures made with SHA-1 (every key
//! from before ~2016) and expired subkeys are accepted, with a warning. A key on a curve this
//! build's crypto backend cannot verify signatures on (brainpool) has its binding signatures
//! read unchecked, also with a warning: the card does the key's arithmetic, not the host.

use openpgp_card::ocard::KeyType;
use sequoia_openpgp::{
    crypto::mpi,
    packet::{
        key::{SecretParts, UnspecifiedRole},
        Key,
    },
    policy::StandardPolicy,
    types::KeyFlags,
    Cert, Fingerprint,
};

use std::time::SystemTime;

use crate::error::{Error, Result};

/// A slot, the key for it, and what to say about it.
pub type Chosen = (KeyType, Key<SecretParts, UnspecifiedRole>, Option<String>);

/// The keys of `cert` for the card's slots (only those named in `only`, if any).
pub fn keys(cert: &Cert, only: &[String]) -> Result<Vec<Chosen>> {
    let candidates = match checked(cert) {
        Ok(candidates) => candidates,
        Err(_) if unverifiable_curve(cert) => unchecked(cert),
        Err(e) => return Err(Error::Usage(format!("the key is not valid: {e}"))),
    };
    let wanted = |fp: &str| {
        only.is_empty()
            || only
                .iter()
                .any(|o| o.replace(' ', "").eq_ignore_ascii_case(fp))
    };
    let mut chosen: Vec<Chosen> = Vec::new();
    for (key, flags, warning) in candidates {
        if !wanted(&key.fingerprint().to_hex()) {
            continue;
        }
        let slot = if flags.for_storage_encryption() || flags.for_transport_encryption() {
            KeyType::Decryption
        } else if flags.for_signing() {
            KeyType::Signing
        } else if flags.for_authentication() {
            KeyType::Authentication
        } else {
            continue;
        };
        match chosen.iter_mut().find(|(s, _, _)| *s == slot) {
            Some(entry) if entry.1.creation_time() < key.creation_time() => {
                *entry = (slot, key, warning)
            }
            Some(_) => {}
            None => chosen.push((slot, key, warning)),
        }
    }
    if chosen.is_empty() {
        return Err(Error::Usage(if only.is_empty() {
            "the file holds no usable secret key".into()
        } else {
            "none of the keys named with --subkey is a usable secret key in the file".into()
        }));
    }
    Ok(chosen)
}

type Candidate = (Key<SecretParts, UnspecifiedRole>, KeyFlags, Option<String>);
/// When a key's newest binding was made, and what it says the key is for.
type Newest = (SystemTime, KeyFlags);

/// The secret keys valid under a policy that accepts SHA-1 bindings, with their flags.
fn checked(cert: &Cert) -> anyhow::Result<Vec<Candidate>> {
    let strict = StandardPolicy::new();
    let mut policy = StandardPolicy::new();
    policy.accept_hash(sequoia_openpgp::types::HashAlgorithm::SHA1);
    let valid = cert.with_policy(&policy, None)?;
    let weak_binding = |fp: &Fingerprint| -> bool {
        cert.with_policy(&strict, None)
            .map(|v| !v.keys().any(|k| k.key().fingerprint() == *fp))
            .unwrap_or(true)
    };
    let mut out = Vec::new();
    for ka in valid.keys().secret() {
        let key = ka.key().clone().role_into_unspecified();
        let fp = key.fingerprint().to_hex();
        let warning = if weak_binding(&key.fingerprint()) {
            Some(format!(
                "warning: key {fp} is bound to its certificate with a SHA-1 signature, which \
                 current OpenPGP programs reject: it goes on the card, but refresh the \
                 certificate's self-signatures (gpg --quick-set-expire, sq key expire) and \
                 publish it again"
            ))
        } else if ka.alive().is_err() {
            Some(format!(
                "warning: key {fp} has expired: it goes on the card and decrypts old mail, \
                 but senders with a current certificate will not encrypt to it"
            ))
        } else {
            None
        };
        let flags = ka.key_flags().unwrap_or_else(KeyFlags::empty);
        out.push((key, flags, warning));
    }
    Ok(out)
}

/// Whether the certificate's primary key is on a curve whose signatures this build cannot
/// check.
fn unverifiable_curve(cert: &Cert) -> bool {
    match cert.primary_key().key().mpis() {
        mpi::PublicKey::ECDSA { curve, .. } | mpi::PublicKey::EdDSA { curve, .. } => {
            !curve.is_supported()
        }
        _ => false,
    }
}

/// The secret keys with the flags of their newest binding signature (a subkey's binding,
/// the primary key's direct-key signature or user ID self-certification), read from the
/// certificate's packets unchecked: sequoia keeps signatures it cannot verify out of its
/// views.
fn unchecked(cert: &Cert) -> Vec<Candidate> {
    use sequoia_openpgp::{types::SignatureType as T, Packet};
    // The keys in order, each with the creation time and flags of its newest binding.
    let mut keys: Vec<(Key<SecretParts, UnspecifiedRole>, Option<Newest>)> = Vec::new();
    // Signatures that follow bind: this key (index), or a user ID (the primary key).
    let mut binds: Option<usize> = None;
    for packet in cert.clone().into_tsk().into_packets() {
        let bound = match packet {
            Packet::SecretKey(k) => {
                keys.push((k.role_into_unspecified(), None));
                binds = Some(keys.len() - 1);
                continue;
            }
            Packet::SecretSubkey(k) => {
                keys.push((k.role_into_unspecified(), None));
                binds = Some(keys.len() - 1);
                continue;
            }
            Packet::UserID(_) => {
                binds = (!keys.is_empty()).then_some(0);
                continue;
            }
            Packet::Signature(sig) => match sig.typ() {
                T::SubkeyBinding
                | T::DirectKey
                | T::PositiveCertification
                | T::GenericCertification
                | T::CasualCertification
                | T::PersonaCertification => sig,
                _ => continue,
            },
            _ => {
                binds = None;
                continue;
            }
        };
        let (Some(i), Some(flags), Some(at)) =
            (binds, bound.key_flags(), bound.signature_creation_time())
        else {
            continue;
        };
        let entry = &mut keys[i].1;
        if entry.as_ref().is_none_or(|(t, _)| *t <= at) {
            *entry = Some((at, flags));
        }
    }
    keys.into_iter()
        .filter_map(|(key, newest)| {
            let (_, flags) = newest?;
            let warning = Some(format!(
                "warning: key {} is on a curve whose signatures this build cannot check \
                 (brainpool): what it is for is read from its binding signature unchecked",
                key.fingerprint().to_hex()
            ));
            Some((key, flags, warning))
        })
        .collect()
}
