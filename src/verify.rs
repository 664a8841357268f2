//! Signatures inside encrypted messages: which certificates to check them against, and what
//! each check found, in a form both people (one line each) and status lines can use.
//!
//! A signature never decides whether plaintext is shown: decryption authenticates the
//! message; the signature says who wrote it, and a bad one is reported, not hidden.

use std::path::{Path, PathBuf};

use sequoia_openpgp::{
    self as openpgp,
    cert::{amalgamation::ValidAmalgamation, CertParser},
    packet::Signature,
    parse::{
        stream::{
            DetachedVerifierBuilder, GoodChecksum, MessageLayer, MessageStructure,
            VerificationError, VerificationHelper, VerificationResult,
        },
        Parse,
    },
    policy::StandardPolicy,
    Cert, KeyHandle, KeyID,
};

use crate::{
    error::{Error, Result},
    gpg_status::Status,
};

/// What checking one signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Made by a key of a given certificate over exactly this content.
    Good,
    /// The key is known and the signature does not match the content: altered or forged.
    Bad,
    /// No certificate given holds the signing key.
    NoCert,
    /// The key is known but cannot vouch for anything now (expired, revoked, not bound,
    /// weak algorithm), or the signature itself is malformed.
    Unusable(String),
}

/// One signature and its verdict, with the fields gpg's status lines carry.
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    pub verdict: Verdict,
    /// The key id (16 hex digits) the signature names, or that made it.
    pub key_id: String,
    /// Fingerprint of the signing (sub)key and of its certificate's primary key, when known.
    pub signer_fingerprint: Option<String>,
    pub primary_fingerprint: Option<String>,
    /// The certificate's primary user id, when known and valid.
    pub user_id: Option<String>,
    /// Creation and expiry times, seconds since the epoch (0: absent).
    pub created: u64,
    pub expires: u64,
    pub version: u8,
    pub pk_algo: u8,
    pub hash_algo: u8,
    pub sig_type: u8,
}

impl SignatureCheck {
    pub fn from_result(result: &VerificationResult<'_>) -> Self {
        match result {
            Ok(GoodChecksum { sig, ka }) => Self::by(sig, ka, Verdict::Good),
            Err(VerificationError::MissingKey { sig }) => Self::bare(sig, Verdict::NoCert),
            Err(VerificationError::BadSignature { sig, ka, .. }) => Self::by(sig, ka, Verdict::Bad),
            Err(VerificationError::BadKey { sig, ka, error }) => {
                Self::by(sig, ka, Verdict::Unusable(root_cause(error)))
            }
            Err(VerificationError::UnboundKey { sig, cert, error }) => {
                let mut check = Self::bare(sig, Verdict::Unusable(root_cause(error)));
                check.primary_fingerprint = Some(cert.fingerprint().to_hex());
                check
            }
            Err(VerificationError::MalformedSignature { sig, error }) => {
                Self::bare(sig, Verdict::Unusable(root_cause(error)))
            }
            Err(VerificationError::UnknownSignature { sig }) => {
                Self::unreadable(&sig.error().to_string())
            }
            // VerificationError is non-exhaustive.
            Err(other) => Self::unreadable(&other.to_string()),
        }
    }

    /// gpg's status lines for this signature (NEWSIG, then GOODSIG + VALIDSIG + TRUST_*,
    /// BADSIG, or ERRSIG with NO_PUBKEY when the certificate is missing).
    pub fn status_lines(&self) -> Vec<Status> {
        let user_id = self.user_id.clone().unwrap_or_else(|| "[?]".into());
        let fpr = self
            .signer_fingerprint
            .clone()
            .unwrap_or_else(|| "-".into());
        let key_id = self.key_id.clone();
        let mut lines = vec![Status::NewSig];
        match &self.verdict {
            Verdict::Good => lines.extend([
                Status::GoodSig { key_id, user_id },
                Status::ValidSig {
                    date: crate::time::utc_date(self.created),
                    created: self.created,
                    expires: self.expires,
                    version: self.version,
                    pk_algo: self.pk_algo,
                    hash_algo: self.hash_algo,
                    sig_class: self.sig_type,
                    primary_fpr: self.primary_fingerprint.clone().unwrap_or(fpr.clone()),
                    fpr,
                },
                Status::TrustUndefined,
            ]),
            Verdict::Bad => lines.push(Status::BadSig { key_id, user_id }),
            Verdict::NoCert | Verdict::Unusable(_) => {
                let missing = self.verdict == Verdict::NoCert;
                lines.push(Status::ErrSig {
                    key_id: key_id.clone(),
                    pk_algo: self.pk_algo,
                    hash_algo: self.hash_algo,
                    sig_class: self.sig_type,
                    created: self.created,
                    rc: if missing { 9 } else { 4 },
                    fpr,
                });
                if missing {
                    lines.push(Status::NoPubkey { key_id });
                }
            }
        }
        lines
    }

    /// A signature we could not even read.
    fn unreadable(why: &str) -> Self {
        SignatureCheck {
            verdict: Verdict::Unusable(format!("unreadable signature: {why}")),
            key_id: KeyID::wildcard().to_hex(),
            signer_fingerprint: None,
            primary_fingerprint: None,
            user_id: None,
            created: 0,
            expires: 0,
            version: 0,
            pk_algo: 0,
            hash_algo: 0,
            sig_type: 0,
        }
    }

    /// A signature whose signing key was found in `ka`.
    fn by(
        sig: &Signature,
        ka: &openpgp::cert::amalgamation::key::ValidErasedKeyAmalgamation<
            '_,
            openpgp::packet::key::PublicParts,
        >,
        verdict: Verdict,
    ) -> Self {
        let mut check = Self::bare(sig, verdict);
        check.know_signer(ka.key().fingerprint(), ka.cert().fingerprint());
        check.user_id = ka
            .valid_cert()
            .primary_userid()
            .ok()
            .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned());
        check
    }

    fn bare(sig: &Signature, verdict: Verdict) -> Self {
        let secs = |t: Option<std::time::SystemTime>| t.map_or(0, crate::time::to_secs);
        let created = sig.signature_creation_time();
        let expires = match (created, sig.signature_validity_period()) {
            (Some(c), Some(p)) => secs(Some(c + p)),
            _ => 0,
        };
        let key_id = sig
            .get_issuers()
            .first()
            .map(|h| match h {
                KeyHandle::KeyID(id) => id.to_hex(),
                KeyHandle::Fingerprint(fp) => KeyID::from(fp).to_hex(),
            })
            .unwrap_or_else(|| KeyID::wildcard().to_hex());
        SignatureCheck {
            verdict,
            key_id,
            signer_fingerprint: sig.issuer_fingerprints().next().map(|f| f.to_hex()),
            primary_fingerprint: None,
            user_id: None,
            created: secs(created),
            expires,
            version: sig.version(),
            pk_algo: u8::from(sig.pk_algo()),
            hash_algo: u8::from(sig.hash_algo()),
            sig_type: u8::from(sig.typ()),
        }
    }

    fn know_signer(&mut self, key: openpgp::Fingerprint, primary: openpgp::Fingerprint) {
        self.key_id = KeyID::from(&key).to_hex();
        self.signer_fingerprint = Some(key.to_hex());
        self.primary_fingerprint = Some(primary.to_hex());
    }

    /// The signer as a person reads it: user id and fingerprint, or the bare key id.
    fn signer(&self) -> String {
        let key = self
            .primary_fingerprint
            .as_deref()
            .or(self.signer_fingerprint.as_deref())
            .unwrap_or(&self.key_id);
        match &self.user_id {
            Some(uid) => format!("{uid} ({key})"),
            None => format!("key {key}"),
        }
    }

    /// One line for standard error; `have_certs` is whether any certificate was given.
    pub fn summary(&self, have_certs: bool) -> String {
        match &self.verdict {
            Verdict::Good => format!(
                "good signature by {}, made {}",
                self.signer(),
                crate::time::utc_minute(self.created)
            ),
            Verdict::Bad => format!(
                "BAD SIGNATURE claiming to be by {}: the signed content was altered or the \
                 signature is forged; do not trust who this message says it is from",
                self.signer()
            ),
            Verdict::NoCert if have_certs => format!(
                "signature by key {} NOT checked: no certificate given holds that key \
                 (add the signer's with --signer-certs FILE)",
                self.key_id
            ),
            Verdict::NoCert => format!(
                "signature by key {} NOT checked: give the signer's certificate with \
                 --signer-certs FILE",
                self.key_id
            ),
            Verdict::Unusable(why) => {
                format!("signature by {} cannot be trusted: {why}", self.signer())
            }
        }
    }
}

/// Checks a detached signature (PGP/MIME `multipart/signed`) over `data`, which must
/// already be in canonical form (CRLF line endings). An unreadable signature yields one
/// `Unusable` check rather than an error: the message is shown either way.
pub fn detached(data: &[u8], signature: &[u8], certs: &[Cert]) -> Vec<SignatureCheck> {
    struct Collect<'c> {
        certs: &'c [Cert],
        checks: Vec<SignatureCheck>,
    }
    impl VerificationHelper for Collect<'_> {
        fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
            Ok(certs_for(self.certs, ids))
        }
        fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
            collect(structure, &mut self.checks);
            Ok(())
        }
    }
    let policy = StandardPolicy::new();
    let helper = Collect {
        certs,
        checks: Vec::new(),
    };
    let result = DetachedVerifierBuilder::from_bytes(signature)
        .and_then(|b| b.with_policy(&policy, None, helper))
        .and_then(|mut v| {
            v.verify_bytes(data)?;
            Ok(v.into_helper().checks)
        });
    match result {
        Ok(checks) if !checks.is_empty() => checks,
        Ok(_) => vec![SignatureCheck::unreadable(
            "no signature in the signature part",
        )],
        Err(e) => vec![SignatureCheck::unreadable(&root_cause(&e))],
    }
}

/// The certificates that hold one of the keys `ids` names (all of them when the signature
/// names none): a big keyring is not copied whole for every message.
pub fn certs_for(certs: &[Cert], ids: &[KeyHandle]) -> Vec<Cert> {
    certs
        .iter()
        .filter(|c| {
            ids.is_empty()
                || c.keys()
                    .any(|k| ids.iter().any(|id| k.key().key_handle().aliases(id)))
        })
        .cloned()
        .collect()
}

/// Every signature verdict in a verified message's structure, in order, added to `checks`.
pub fn collect(structure: MessageStructure, checks: &mut Vec<SignatureCheck>) {
    for layer in structure {
        if let MessageLayer::SignatureGroup { results } = layer {
            checks.extend(results.iter().map(SignatureCheck::from_result));
        }
    }
}

fn root_cause(e: &anyhow::Error) -> String {
    e.root_cause().to_string()
}

/// Reads every certificate in `paths` (armored or binary keyrings).
pub fn load_certs(paths: &[PathBuf]) -> Result<Vec<Cert>> {
    let mut certs = Vec::new();
    for path in paths {
        certs.extend(load_file(path)?);
    }
    Ok(certs)
}

fn load_file(path: &Path) -> Result<Vec<Cert>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read certificates {}", path.display()), e))?;
    let parser = CertParser::from_bytes(&bytes).map_err(|e| {
        Error::Usage(format!(
            "{} holds no OpenPGP certificates: {e}",
            path.display()
        ))
    })?;
    let mut certs = Vec::new();
    for cert in parser {
        let cert = cert.map_err(|e| {
            Error::Usage(format!(
                "{} holds a broken certificate: {e}",
                path.display()
            ))
        })?;
        certs.push(cert.strip_secret_key_material());
    }
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{} holds no OpenPGP certificates",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_certificates_holding_the_named_key_are_handed_out() {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys");
        let certs = load_certs(&[keys.join("rsa2048.pub.asc"), keys.join("nistp256.pub.asc")])
            .expect("certs");
        let nistp256 = &certs[1];
        let subkey = nistp256
            .keys()
            .subkeys()
            .next()
            .expect("subkey")
            .key()
            .keyid();
        let found = certs_for(&certs, &[KeyHandle::from(subkey)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fingerprint(), nistp256.fingerprint());
        let unknown = KeyHandle::from(KeyID::from(0x0123_4567_89AB_CDEF_u64));
        assert!(certs_for(&certs, &[unknown]).is_empty());
        assert_eq!(certs_for(&certs, &[]).len(), 2);
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk");
        std::fs::write(&path, b"hello").expect("write");
        assert!(matches!(load_certs(&[path]), Err(Error::Usage(_))));
    }
}
