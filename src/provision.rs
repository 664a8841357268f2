//! Putting keys on a card (needs the admin PIN).
//!
//! The glue between Sequoia's secret key material and openpgp-card's upload format lives
//! here: openpgp-card-sequoia used to provide it, but it is deprecated and tied to Sequoia 1.

use std::time::UNIX_EPOCH;

use num_bigint_dig::BigUint;
use openpgp_card::ocard::{
    crypto::{CardUploadableKey, EccKey, EccType, PrivateKeyMaterial, RSAKey},
    data::{Fingerprint, KeyGenerationTime},
};
use sequoia_openpgp::{
    crypto::mpi,
    packet::{
        key::{SecretParts, UnspecifiedRole},
        Key,
    },
    types::Curve,
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A secret (sub)key with unencrypted secret material, ready for upload.
pub struct Uploadable {
    fingerprint: Fingerprint,
    created: KeyGenerationTime,
    material: Material,
}

enum Material {
    Rsa(RsaParts),
    Ecc(EccParts),
}

struct RsaParts {
    e: Vec<u8>,
    n: Vec<u8>,
    p: Zeroizing<Vec<u8>>,
    q: Zeroizing<Vec<u8>>,
    pq: Zeroizing<Vec<u8>>,
    dp1: Zeroizing<Vec<u8>>,
    dq1: Zeroizing<Vec<u8>>,
}

#[derive(Clone)]
struct EccParts {
    oid: Vec<u8>,
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
    kind: EccType,
}

impl Uploadable {
    pub fn new(key: &Key<SecretParts, UnspecifiedRole>) -> Result<Self> {
        let fp = key.fingerprint();
        let fingerprint = Fingerprint::try_from(fp.as_bytes()).map_err(|_| {
            Error::Usage(format!(
                "key {fp} is a v6 key (RFC 9580), and cardecrypt puts \
                 only v4 keys on cards: OpenPGP cards 3.x keep a 20-byte v4 fingerprint and \
                 creation time per slot, and that is how cardecrypt finds and rebuilds the \
                 card's key; keep this key in software (gpg 2.5, sq) or give the card a v4 \
                 key"
            ))
        })?;
        let created = key
            .creation_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let secret = match key.optional_secret() {
            Some(sequoia_openpgp::packet::key::SecretKeyMaterial::Unencrypted(u)) => u,
            _ => {
                return Err(Error::Usage(format!(
                    "the secret of key {fp} is still encrypted"
                )))
            }
        };
        let material = secret.map(|s| material(key.mpis(), s))?;
        Ok(Uploadable {
            fingerprint,
            created: created.into(),
            material,
        })
    }
}

fn material(public: &mpi::PublicKey, secret: &mpi::SecretKeyMaterial) -> Result<Material> {
    match (public, secret) {
        (mpi::PublicKey::RSA { e, n }, mpi::SecretKeyMaterial::RSA { d, p, q, u }) => {
            // OpenPGP keeps p < q and u = p^-1 mod q. The card wants PQ = q'^-1 mod p', so
            // hand it the primes swapped: p' = q, q' = p, and PQ is OpenPGP's u.
            let (card_p, card_q) = (q.value(), p.value());
            let d = BigUint::from_bytes_be(d.value());
            let one = BigUint::from(1u8);
            let dp1 = &d % (BigUint::from_bytes_be(card_p) - &one);
            let dq1 = &d % (BigUint::from_bytes_be(card_q) - &one);
            Ok(Material::Rsa(RsaParts {
                e: e.value().to_vec(),
                n: n.value().to_vec(),
                p: Zeroizing::new(card_p.to_vec()),
                q: Zeroizing::new(card_q.to_vec()),
                pq: Zeroizing::new(u.value().to_vec()),
                dp1: Zeroizing::new(dp1.to_bytes_be()),
                dq1: Zeroizing::new(dq1.to_bytes_be()),
            }))
        }
        (mpi::PublicKey::ECDH { curve, q, .. }, mpi::SecretKeyMaterial::ECDH { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::ECDH)
        }
        (mpi::PublicKey::ECDSA { curve, q }, mpi::SecretKeyMaterial::ECDSA { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::ECDSA)
        }
        (mpi::PublicKey::EdDSA { curve, q }, mpi::SecretKeyMaterial::EdDSA { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::EdDSA)
        }
        _ => Err(Error::Usage(
            "this key algorithm cannot be put on an OpenPGP card".into(),
        )),
    }
}

fn ecc(curve: &Curve, q: &[u8], scalar: &[u8], kind: EccType) -> Result<Material> {
    let field = curve
        .field_size()
        .map_err(|_| Error::Usage(format!("curve {curve} is not supported")))?;
    // MPIs drop leading zeros; the card wants the scalar at full length.
    let mut private = Zeroizing::new(vec![0u8; field.saturating_sub(scalar.len())]);
    private.extend_from_slice(scalar);
    // Cards take the scalar as OpenPGP stores it (for X25519 big-endian, unlike RFC 7748: the
    // card reverses it itself) and the public point with OpenPGP's 0x40 prefix, as gpg sends.
    let public = q.to_vec();
    Ok(Material::Ecc(EccParts {
        oid: curve.oid().to_vec(),
        private,
        public,
        kind,
    }))
}

impl CardUploadableKey for Uploadable {
    fn private_key(&self) -> Result<PrivateKeyMaterial, openpgp_card::Error> {
        Ok(match &self.material {
            Material::Rsa(r) => PrivateKeyMaterial::R(Box::new(RsaParts {
                e: r.e.clone(),
                n: r.n.clone(),
                p: r.p.clone(),
                q: r.q.clone(),
                pq: r.pq.clone(),
                dp1: r.dp1.clone(),
                dq1: r.dq1.clone(),
            })),
            Material::Ecc(e) => PrivateKeyMaterial::E(Box::new(e.clone())),
        })
    }

    fn timestamp(&self) -> KeyGenerationTime {
        self.created.get().into()
    }

    fn fingerprint(&self) -> Result<Fingerprint, openpgp_card::Error> {
        Ok(self.fingerprint.clone())
    }
}

impl RSAKey for RsaParts {
    fn e(&self) -> &[u8] {
        &self.e
    }
    fn p(&self) -> &[u8] {
        &self.p
    }
    fn q(&self) -> &[u8] {
        &self.q
    }
    fn pq(&self) -> &[u8] {
        &self.pq
    }
    fn dp1(&self) -> &[u8] {
        &self.dp1
    }
    fn dq1(&self) -> &[u8] {
        &self.dq1
    }
    fn n(&self) -> &[u8] {
        &self.n
    }
}

impl EccKey for EccParts {
    fn oid(&self) -> &[u8] {
        &self.oid
    }
    fn private(&self) -> &[u8] {
        &self.private
    }
    fn public(&self) -> &[u8] {
        &self.public
    }
    fn ecc_type(&self) -> EccType {
        self.kind
    }
}

/// Reads a secret key file (armored or binary). Signatures with non-minimal MPIs, which
/// sequoia refuses and gpg reads, are mended first ([`crate::lenient`]).
pub fn read_key(path: &std::path::Path) -> Result<sequoia_openpgp::Cert> {
    use sequoia_openpgp::parse::Parse;
    use std::io::Read;
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut binary = Vec::new();
    let dearmored = sequoia_openpgp::armor::Reader::from_bytes(
        &bytes,
        sequoia_openpgp::armor::ReaderMode::Tolerant(None),
    )
    .read_to_end(&mut binary);
    let binary = if dearmored.is_ok() && !binary.is_empty() {
        binary
    } else {
        bytes
    };
    let mended = crate::lenient::keyring(&binary);
    sequoia_openpgp::Cert::from_bytes(mended.as_deref().unwrap_or(&binary)).map_err(|e| {
        Error::Usage(format!(
            "cannot read a secret key from {}: {e}",
            path.display()
        ))
    })
}

/// Which key goes to which slot.
pub struct Planned {
    pub slot: openpgp_card::ocard::KeyType,
    pub fingerprint: String,
    pub key: Uploadable,
    /// Said once when the key goes on the card: its binding is weak (SHA-1) or it expired.
    pub warning: Option<String>,
}

/// Picks the keys of `cert` for the card's slots: the newest valid key for each of
/// decryption, signing and authentication, or only the keys named in `only`.
pub fn plan(
    cert: &sequoia_openpgp::Cert,
    only: &[String],
    password: Option<&sequoia_openpgp::crypto::Password>,
) -> Result<Vec<Planned>> {
    use openpgp_card::ocard::KeyType;
    use sequoia_openpgp::policy::StandardPolicy;

    // A key is its owner's: like gpg's keytocard, accept self-signatures made with SHA-1
    // (every key from before ~2016) and expired subkeys, and say so. The strict policy
    // decides only what the warning says.
    let strict = StandardPolicy::new();
    let mut policy = StandardPolicy::new();
    policy.accept_hash(sequoia_openpgp::types::HashAlgorithm::SHA1);
    let valid = cert
        .with_policy(&policy, None)
        .map_err(|e| Error::Usage(format!("the key is not valid: {e}")))?;
    let weak_binding = |fp: &sequoia_openpgp::Fingerprint| -> bool {
        cert.with_policy(&strict, None)
            .map(|v| !v.keys().any(|k| k.key().fingerprint() == *fp))
            .unwrap_or(true)
    };
    let wanted = |fp: &str| {
        only.is_empty()
            || only
                .iter()
                .any(|o| o.replace(' ', "").eq_ignore_ascii_case(fp))
    };
    let mut chosen: Vec<(KeyType, Key<SecretParts, UnspecifiedRole>, Option<String>)> = Vec::new();
    for ka in valid.keys().secret() {
        let fp = ka.key().fingerprint().to_hex();
        if !wanted(&fp) {
            continue;
        }
        let slot = if ka.for_storage_encryption() || ka.for_transport_encryption() {
            KeyType::Decryption
        } else if ka.for_signing() {
            KeyType::Signing
        } else if ka.for_authentication() {
            KeyType::Authentication
        } else {
            continue;
        };
        let key = ka.key().clone().role_into_unspecified();
        let mut warning = None;
        if weak_binding(&key.fingerprint()) {
            warning = Some(format!(
                "warning: key {fp} is bound to its certificate with a SHA-1 signature, which \
                 current OpenPGP programs reject: it goes on the card, but refresh the \
                 certificate's self-signatures (gpg --quick-set-expire, sq key expire) and \
                 publish it again"
            ));
        } else if ka.alive().is_err() {
            warning = Some(format!(
                "warning: key {fp} has expired: it goes on the card and decrypts old mail, \
                 but senders with a current certificate will not encrypt to it"
            ));
        }
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
    chosen
        .into_iter()
        .map(|(slot, key, warning)| {
            let fingerprint = key.fingerprint().to_hex();
            let key = if key.has_unencrypted_secret() {
                key
            } else {
                let password = password.ok_or_else(|| {
                    Error::PinUnavailable(
                        "the key is protected by a passphrase; give it with --passphrase-file"
                            .into(),
                    )
                })?;
                key.decrypt_secret(password)
                    .map_err(|e| secret_key_error(&e, &fingerprint))?
            };
            Ok(Planned {
                slot,
                fingerprint,
                key: Uploadable::new(&key)?,
                warning,
            })
        })
        .collect()
}

/// A passphrase that does not unlock the key, or secret key material that cannot be read
/// once unlocked (non-canonical MPIs, as GnuPG 2.1.5 wrote): two different things to say.
fn secret_key_error(e: &anyhow::Error, fingerprint: &str) -> Error {
    let text = e.to_string();
    if text.contains("MPI") || text.contains("Malformed") {
        Error::Usage(format!(
            "the passphrase is right, but the secret key material of {fingerprint} is \
             malformed ({text}); export the key again with a current gpg \
             (gpg --export-secret-keys) and import that"
        ))
    } else {
        Error::Usage(format!("wrong passphrase for key {fingerprint}"))
    }
}

// ---------------------------------------------------------------- card management

use openpgp_card::{
    ocard::{
        algorithm::AlgoSimple,
        data::{Lang, TouchPolicy},
        KeyType,
    },
    state::Transaction,
    Card,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    card::{
        pin::{check_tries, pin_failure},
        pubkey,
    },
    certify::{SlotKeys, SLOTS},
};

fn card_err(e: openpgp_card::Error) -> Error {
    Error::from_card(e)
}

/// Verifies the admin PIN after checking its retry counter.
fn admin<'b, 'a>(
    tx: &'b mut Card<Transaction<'a>>,
    admin_pin: SecretString,
    allow_last_try: bool,
) -> Result<Card<openpgp_card::state::Admin<'a, 'b>>> {
    let tries = tx.pw_status_bytes().map_err(card_err)?.err_count_pw3();
    check_tries(tries, allow_last_try)?;
    tx.as_admin_card(admin_pin)
        .map_err(|e| pin_failure(e, tries))
}

/// Key algorithms `card generate` offers.
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

impl KeyAlgo {
    fn simple(self) -> AlgoSimple {
        match self {
            KeyAlgo::Cv25519 => AlgoSimple::Curve25519,
            KeyAlgo::Nistp256 => AlgoSimple::NIST256,
            KeyAlgo::Nistp384 => AlgoSimple::NIST384,
            KeyAlgo::Nistp521 => AlgoSimple::NIST521,
            KeyAlgo::Rsa2048 => AlgoSimple::RSA2k,
            KeyAlgo::Rsa3072 => AlgoSimple::RSA3k,
            KeyAlgo::Rsa4096 => AlgoSimple::RSA4k,
        }
    }
}

/// Generates keys in all three slots on the card; returns their public keys.
pub fn generate(
    tx: &mut Card<Transaction<'_>>,
    admin_pin: SecretString,
    allow_last_try: bool,
    algo: KeyAlgo,
) -> Result<SlotKeys> {
    let mut admin = admin(tx, admin_pin, allow_last_try)?;
    let mut keys = Vec::new();
    for slot in SLOTS {
        if let Err(e) = admin.set_algorithm(slot, algo.simple()) {
            let supported = supported_algorithms(admin.as_transaction(), slot);
            return Err(Error::Card(format!(
                "the card cannot hold {algo:?} keys in its {slot:?} slot ({e}); it supports: \
                 {supported}"
            )));
        }
        let (material, created) = admin
            .generate_key(pubkey::fingerprint_of_new_key, slot)
            .map_err(card_err)?;
        let attrs = match &material {
            openpgp_card::ocard::crypto::PublicKeyMaterial::E(ecc) => ecc.algo().clone(),
            _ => openpgp_card::ocard::algorithm::AlgorithmAttributes::Unknown(Vec::new()),
        };
        keys.push(pubkey::new_key(&material, &attrs, created.get())?);
    }
    let mut keys = keys.into_iter();
    Ok(SlotKeys {
        signing: keys
            .next()
            .ok_or_else(|| Error::Other("no signing key".into()))?,
        decryption: keys.next(),
        authentication: keys.next(),
    })
}

/// What the card says it supports in `slot` (its algorithm information), for error messages.
pub fn supported_algorithms(tx: &mut Card<Transaction<'_>>, slot: KeyType) -> String {
    match tx.algorithm_information() {
        Ok(Some(info)) => {
            let list: Vec<String> = info
                .for_keytype(slot)
                .iter()
                .map(|a| a.to_string())
                .collect();
            list.join(", ")
        }
        _ => "unknown (the card does not list its algorithms)".into(),
    }
}

/// The public keys of the keys already on the card (a signature key is required).
pub fn slot_keys(tx: &mut Card<Transaction<'_>>) -> Result<SlotKeys> {
    let mut found = Vec::new();
    for slot in SLOTS {
        found.push(match crate::card::slot_info(tx, slot)? {
            Some(info) => Some(pubkey::slot_key(tx, slot, &info, None)?),
            None => None,
        });
    }
    let mut found = found.into_iter();
    Ok(SlotKeys {
        signing: found.next().flatten().ok_or_else(|| {
            Error::Usage("the card has no signature key to certify its keys with".into())
        })?,
        decryption: found.next().flatten(),
        authentication: found.next().flatten(),
    })
}

/// Which PIN operation, and with which secrets.
pub enum PinChange {
    User {
        current: SecretString,
        new: SecretString,
    },
    Admin {
        current: SecretString,
        new: SecretString,
    },
    ResetCode {
        admin: SecretString,
        new: SecretString,
    },
    UnblockWithResetCode {
        reset_code: SecretString,
        new: SecretString,
    },
    UnblockWithAdmin {
        admin: SecretString,
        new: SecretString,
    },
}

pub fn change_pin(
    tx: &mut Card<Transaction<'_>>,
    change: PinChange,
    allow_last_try: bool,
) -> Result<()> {
    let status = tx.pw_status_bytes().map_err(card_err)?;
    match change {
        PinChange::User { current, new } => {
            check_tries(status.err_count_pw1(), allow_last_try)?;
            min_len(&new, 6, "user PIN")?;
            tx.change_user_pin(current, new)
                .map_err(|e| pin_failure(e, status.err_count_pw1()))
        }
        PinChange::Admin { current, new } => {
            check_tries(status.err_count_pw3(), allow_last_try)?;
            min_len(&new, 8, "admin PIN")?;
            tx.change_admin_pin(current, new)
                .map_err(|e| pin_failure(e, status.err_count_pw3()))
        }
        PinChange::ResetCode { admin: a, new } => {
            min_len(&new, 8, "resetting code")?;
            admin(tx, a, allow_last_try)?
                .set_resetting_code(new)
                .map_err(card_err)
        }
        PinChange::UnblockWithResetCode { reset_code, new } => {
            check_tries(status.err_count_rc(), allow_last_try)?;
            min_len(&new, 6, "user PIN")?;
            tx.reset_user_pin(reset_code, new)
                .map_err(|e| pin_failure(e, status.err_count_rc()))
        }
        PinChange::UnblockWithAdmin { admin: a, new } => {
            min_len(&new, 6, "user PIN")?;
            admin(tx, a, allow_last_try)?
                .reset_user_pin(new)
                .map_err(card_err)
        }
    }
}

fn min_len(pin: &SecretString, min: usize, what: &str) -> Result<()> {
    if pin.expose_secret().chars().count() < min {
        return Err(Error::Usage(format!(
            "the new {what} must have at least {min} characters"
        )));
    }
    Ok(())
}

/// Card data an admin may set.
pub enum Setting {
    Name(String),
    Url(String),
    Lang(String),
    Touch(KeyType, TouchPolicy),
}

pub fn set(
    tx: &mut Card<Transaction<'_>>,
    admin_pin: SecretString,
    allow_last_try: bool,
    setting: Setting,
) -> Result<()> {
    let mut admin = admin(tx, admin_pin, allow_last_try)?;
    match setting {
        Setting::Name(name) => {
            // The spec's format: surname<<given names, with '<' for spaces.
            let formatted = match name.rsplit_once(' ') {
                Some((given, surname)) => format!("{surname}<<{}", given.replace(' ', "<")),
                None => name,
            };
            admin.set_cardholder_name(&formatted).map_err(card_err)
        }
        Setting::Url(url) => admin.set_url(&url).map_err(card_err),
        Setting::Lang(lang) => {
            let langs: Vec<Lang> = lang
                .split(',')
                .map(|l| {
                    let b = l.trim().as_bytes();
                    if b.len() == 2 && b.iter().all(u8::is_ascii_lowercase) {
                        Ok(Lang::from(&[b[0], b[1]]))
                    } else {
                        Err(Error::Usage(format!(
                            "{l:?} is not a two-letter language code (ISO 639-1, e.g. en)"
                        )))
                    }
                })
                .collect::<Result<_>>()?;
            admin.set_lang(&langs).map_err(card_err)
        }
        Setting::Touch(slot, policy) => admin
            .set_touch_policy(slot, policy)
            .map_err(|e| Error::Card(format!("the card does not take this touch policy: {e}"))),
    }
}

/// Switches PIN handling to the KDF-DO (iterated and salted SHA-256): from then on the card
/// stores and compares only hashes of the PINs. The current PINs are re-set as their hashes.
pub fn enable_kdf(
    tx: &mut Card<Transaction<'_>>,
    user_pin: SecretString,
    admin_pin: SecretString,
    allow_last_try: bool,
) -> Result<()> {
    use openpgp_card::ocard::data::KdfDo;
    use secrecy::SecretBox;
    use sequoia_openpgp::crypto::{Password, S2K};

    if !tx.extended_capabilities().map_err(card_err)?.kdf_do() {
        return Err(Error::Card("this card does not support the KDF-DO".into()));
    }
    if tx.kdf_do().is_ok_and(|k| k.kdf_algo() != 0) {
        return Err(Error::Usage("KDF is already enabled on this card".into()));
    }
    let status = tx.pw_status_bytes().map_err(card_err)?;
    check_tries(status.err_count_pw1(), allow_last_try)?;
    check_tries(status.err_count_pw3(), allow_last_try)?;
    let raw = |p: &SecretString| SecretBox::<[u8]>::from(p.expose_secret().as_bytes().to_vec());
    // Check both PINs before changing anything, so a typo cannot leave the card half-switched.
    tx.card()
        .verify_pw1_user(raw(&user_pin))
        .map_err(card_err)?;
    tx.card().verify_pw3(raw(&admin_pin)).map_err(card_err)?;

    let mut salts = [[0u8; 8]; 3];
    for salt in &mut salts {
        sequoia_openpgp::crypto::random(salt).map_err(|e| Error::Other(e.to_string()))?;
    }
    let kdf = KdfDo::iter_salted(
        0x08,
        salts[0].to_vec(),
        salts[1].to_vec(),
        salts[2].to_vec(),
    )
    .map_err(card_err)?;
    let hash = |pin: &SecretString, salt: [u8; 8]| -> Result<SecretBox<[u8]>> {
        let s2k = S2K::Iterated {
            hash: sequoia_openpgp::types::HashAlgorithm::SHA256,
            salt,
            hash_bytes: kdf.iter_count().unwrap_or(0x0300_0000),
        };
        let key = s2k
            .derive_key(&Password::from(pin.expose_secret()), 32)
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok(SecretBox::from(key.to_vec()))
    };
    let user_hash = hash(&user_pin, salts[0])?;
    let admin_hash = hash(&admin_pin, salts[2])?;
    tx.card().set_kdf_do(&kdf).map_err(card_err)?;
    tx.card()
        .change_pw1(raw(&user_pin), user_hash)
        .map_err(card_err)?;
    tx.card()
        .change_pw3(raw(&admin_pin), admin_hash)
        .map_err(card_err)?;
    tx.invalidate_cache().map_err(card_err)?;
    Ok(())
}

/// Wipes the card: keys, PINs (back to defaults), card data.
pub fn factory_reset(tx: &mut Card<Transaction<'_>>) -> Result<()> {
    tx.factory_reset().map_err(card_err)
}
