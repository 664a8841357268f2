//! What an OpenPGP message shows without its key: recipients, the container, armor headers,
//! sizes and framing. Read with sequoia's packet parser; nothing is decrypted.

use std::io::{BufRead, BufReader, Read};

use sequoia_openpgp::{
    packet::{header::BodyLength, Packet, Tag, SEIP},
    parse::{PacketParser, PacketParserBuilder, PacketParserResult, Parse},
    types::PublicKeyAlgorithm,
    KeyHandle, KeyID,
};
use serde::Serialize;

use crate::{
    engine::{aead, armor, symmetric},
    error::{Error, Result},
};

/// One encrypted session key.
#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    /// 16 hex digits; `None` for a hidden recipient (wildcard key id).
    pub key_id: Option<String>,
    /// v6 PKESKs name the whole fingerprint.
    pub fingerprint: Option<String>,
    pub algorithm: String,
    pub pkesk_version: u8,
    /// The ident of a present card whose decryption key this is.
    pub on_card: Option<String>,
}

/// The encrypted container.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// "SED", "SEIPDv1", "SEIPDv2" or "OCB (GnuPG, tag 20)".
    pub kind: String,
    /// "none", "MDC (SHA-1)" or "AEAD".
    pub integrity: String,
    /// Public for SEIPDv2 and tag 20; for SEIPDv1 it is inside the encrypted session key.
    pub cipher: Option<String>,
    pub aead: Option<String>,
    pub chunk_size: Option<u64>,
    /// Bytes of encrypted data.
    pub length: u64,
    /// Sent in partial-length chunks (written as a stream, size not known up front).
    pub partial_framing: bool,
}

/// Everything the outside of one OpenPGP message tells.
#[derive(Debug, Clone, Serialize)]
pub struct MessageFacts {
    pub armored: bool,
    /// Armor headers (`Version:`, `Comment:`, ...): they travel in the clear.
    pub armor_headers: Vec<(String, String)>,
    pub recipients: Vec<Recipient>,
    /// Password-encrypted session keys (SKESK).
    pub passwords: usize,
    pub container: Option<Container>,
    /// Size of the message as given (armored or binary).
    pub size: u64,
    /// Upper bound of the (possibly compressed) plaintext, from the container's length.
    pub plaintext_at_most: Option<u64>,
    /// Whether pcscd could be asked which cards are present (`on_card` is meaningful).
    pub cards_checked: bool,
}

/// Reads the outside of the message in `bytes`.
pub fn read(bytes: &[u8]) -> Result<MessageFacts> {
    read_from(bytes)
}

/// Reads the outside of the message `input` as it streams by, in bounded memory at any size
/// (the container's body is counted, not kept); `size` is every byte of the input.
pub fn read_from(input: impl Read + Send + Sync) -> Result<MessageFacts> {
    let mut counted = Counted { inner: input, n: 0 };
    let mut facts = read_counted(&mut counted)?;
    // What follows the container counts too.
    std::io::copy(&mut counted, &mut std::io::sink())
        .map_err(|e| Error::io("cannot read the message", e))?;
    facts.size = counted.n;
    Ok(facts)
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn read_counted<R: Read + Send + Sync>(input: &mut Counted<R>) -> Result<MessageFacts> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let armored = {
        let buf = input
            .fill_buf()
            .map_err(|e| Error::io("cannot read the message", e))?;
        looks_armored(buf)
    };
    let mut headers = Vec::new();
    let binary: Box<dyn Read + Send + Sync + '_> = if armored {
        let mut dearmor = armor::Dearmor::new(input);
        dearmor.read_headers()?;
        if !dearmor.kind.starts_with("MESSAGE") {
            return Err(Error::NotOpenPgp(format!(
                "the armor holds a PGP {}, not an encrypted message",
                dearmor.kind.trim_end_matches('-')
            )));
        }
        headers = dearmor.headers.clone();
        Box::new(DamagedArmor(dearmor))
    } else {
        Box::new(input)
    };
    let bad = |e: anyhow::Error| Error::BadMessage(e.to_string());
    let mut ppr = PacketParserBuilder::from_reader(binary)
        .and_then(|b| b.dearmor(sequoia_openpgp::parse::Dearmor::Disabled).build())
        .map_err(bad)?;
    let mut facts = MessageFacts {
        armored,
        armor_headers: headers,
        recipients: Vec::new(),
        passwords: 0,
        container: None,
        size: 0,
        plaintext_at_most: None,
        cards_checked: false,
    };
    while let PacketParserResult::Some(mut pp) = ppr {
        match &pp.packet {
            Packet::PKESK(p) => facts.recipients.push(recipient(p)),
            Packet::SKESK(_) => facts.passwords += 1,
            Packet::SEIP(_) | Packet::Unknown(_)
                if matches!(pp.header().ctb().tag(), Tag::SEIP | Tag::AED | Tag::SED) =>
            {
                facts.container = Some(container(&mut pp)?);
                break;
            }
            Packet::Literal(_) | Packet::CompressedData(_) | Packet::OnePassSig(_) => {
                return Err(Error::Unencrypted)
            }
            _ => {}
        }
        ppr = pp.next().map_err(bad)?.1;
    }
    let Some(container) = &facts.container else {
        return Err(Error::BadMessage(
            "the message holds no encrypted data".into(),
        ));
    };
    facts.plaintext_at_most = Some(container.length.saturating_sub(overhead(container)));
    Ok(facts)
}

/// The armor reader, its errors worded as what they are.
struct DamagedArmor<R>(R);

impl<R: Read> Read for DamagedArmor<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("the armor is damaged: {e}")))
    }
}

fn looks_armored(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b & 0x80 == 0)
}

fn recipient(p: &sequoia_openpgp::packet::PKESK) -> Recipient {
    let (key_id, fingerprint) = match p.recipient() {
        Some(KeyHandle::KeyID(id)) if id.is_wildcard() => (None, None),
        Some(KeyHandle::KeyID(id)) => (Some(id.to_hex()), None),
        Some(KeyHandle::Fingerprint(fp)) => (Some(KeyID::from(&fp).to_hex()), Some(fp.to_hex())),
        None => (None, None),
    };
    Recipient {
        key_id,
        fingerprint,
        algorithm: algorithm_name(p.pk_algo()),
        pkesk_version: p.version(),
        on_card: None,
    }
}

fn algorithm_name(algo: PublicKeyAlgorithm) -> String {
    #[allow(deprecated)]
    match algo {
        PublicKeyAlgorithm::RSAEncryptSign | PublicKeyAlgorithm::RSAEncrypt => "RSA".into(),
        PublicKeyAlgorithm::ECDH => "ECDH".into(),
        PublicKeyAlgorithm::X25519 => "X25519".into(),
        PublicKeyAlgorithm::X448 => "X448".into(),
        PublicKeyAlgorithm::ElGamalEncrypt | PublicKeyAlgorithm::ElGamalEncryptSign => {
            "ElGamal".into()
        }
        other => other.to_string(),
    }
}

/// The container's public parameters, and its length (read through for partial framing).
fn container(pp: &mut PacketParser<'_>) -> Result<Container> {
    let partial = matches!(pp.header().length(), BodyLength::Partial(_));
    let tag = pp.header().ctb().tag();
    let mut c = Container {
        kind: String::new(),
        integrity: String::new(),
        cipher: None,
        aead: None,
        chunk_size: None,
        length: 0,
        partial_framing: partial,
    };
    let mut consumed = 0u64;
    match (&pp.packet, tag) {
        (_, Tag::SED) => {
            c.kind = "SED".into();
            c.integrity = "none".into();
        }
        (Packet::SEIP(SEIP::V1(_)), _) => {
            c.kind = "SEIPDv1".into();
            c.integrity = "MDC (SHA-1)".into();
        }
        (Packet::SEIP(SEIP::V2(v2)), _) => {
            c.kind = "SEIPDv2".into();
            c.integrity = "AEAD".into();
            c.cipher = Some(symmetric::name(u8::from(v2.symmetric_algo())));
            c.aead = Some(aead::aead_name(u8::from(v2.aead())));
            c.chunk_size = Some(v2.chunk_size());
        }
        _ => {
            // Tag 20: version, cipher, AEAD mode, chunk size octet, then the nonce.
            let mut head = [0u8; 4];
            pp.read_exact(&mut head)
                .map_err(|_| Error::BadMessage("the OCB packet is truncated".into()))?;
            consumed = 4;
            c.kind = "OCB (GnuPG, tag 20)".into();
            c.integrity = "AEAD".into();
            c.cipher = Some(symmetric::name(head[1]));
            c.aead = Some(aead::aead_name(head[2]));
            c.chunk_size = 1u64.checked_shl(u32::from(head[3]) + 6);
        }
    }
    // The body's length: known up front, or counted by reading it (partial chunks).
    let mut reader = BufReader::new(pp);
    loop {
        let n = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf.len(),
            Err(e) => {
                return Err(Error::BadMessage(format!(
                    "the encrypted data is damaged: {e}"
                )))
            }
        };
        reader.consume(n);
        consumed += n as u64;
    }
    c.length = consumed;
    Ok(c)
}

/// Bytes of the container that are not (compressed) plaintext.
fn overhead(c: &Container) -> u64 {
    match c.kind.as_str() {
        // Random prefix (block + 2, taken as AES's) and the 22-byte MDC packet.
        "SEIPDv1" => 18 + 22,
        "SED" => 18,
        // One 16-byte tag per chunk plus the final tag; tag 20 also carries its nonce in
        // the body (SEIPD v2's salt is in the header).
        kind => {
            let chunk = c.chunk_size.unwrap_or(1 << 12).max(1);
            let chunks = c.length / (chunk + 16) + 1;
            let nonce = if kind == "SEIPDv2" { 0 } else { 15 };
            nonce + 16 * (chunks + 1)
        }
    }
}
