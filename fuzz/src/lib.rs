//! What the fuzz targets share: a software stand-in for the card (the test keys, unlocked
//! in memory) and a card backend that answers with fuzzed bytes.

use std::sync::OnceLock;

use card_backend::{CardBackend, CardCaps, CardTransaction, PinType, SmartcardError};
use cardecrypt::engine::SessionKeys;
use sequoia_openpgp::{
    crypto::{KeyPair, SessionKey},
    packet::{PKESK, SKESK},
    parse::Parse,
    policy::StandardPolicy,
    types::SymmetricAlgorithm,
    Cert,
};

/// The test keys of `tests/data/keys`, as key pairs.
fn keypairs() -> &'static Vec<KeyPair> {
    static PAIRS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/keys");
        let policy = StandardPolicy::new();
        ["cv25519", "rsa2048", "nistp256"]
            .iter()
            .flat_map(|algo| {
                let cert = Cert::from_file(format!("{dir}/{algo}.sec.asc")).expect("test key");
                cert.keys()
                    .with_policy(&policy, None)
                    .for_transport_encryption()
                    .secret()
                    .filter_map(|k| k.key().clone().into_keypair().ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// Unwraps session keys in software with the test keys, as a card holding them would.
pub struct SoftKeys;

impl SessionKeys for SoftKeys {
    fn unwrap(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> cardecrypt::Result<(Option<SymmetricAlgorithm>, SessionKey)> {
        for pkesk in pkesks {
            for pair in keypairs() {
                let mut pair = pair.clone();
                if let Some((algo, key)) = pkesk.decrypt(&mut pair, sym_algo) {
                    if fits(algo, &key) {
                        return Ok((algo, key));
                    }
                }
            }
        }
        Err(cardecrypt::Error::NoMatchingKey {
            recipients: Vec::new(),
            cards: Vec::new(),
        })
    }
}

/// A card that answers every APDU with the next length-prefixed chunk of the fuzz input
/// (one length byte, then that many bytes); when the input runs out, with 6F00.
pub struct FuzzedCard {
    data: Vec<u8>,
    at: usize,
}

impl FuzzedCard {
    pub fn new(data: &[u8]) -> FuzzedCard {
        FuzzedCard {
            data: data.to_vec(),
            at: 0,
        }
    }
}

impl CardBackend for FuzzedCard {
    fn limit_card_caps(&self, card_caps: CardCaps) -> CardCaps {
        card_caps
    }

    fn transaction(
        &mut self,
        _reselect: Option<&[u8]>,
    ) -> Result<Box<dyn CardTransaction + Send + Sync + '_>, SmartcardError> {
        Ok(Box::new(FuzzedTransaction { card: self }))
    }
}

struct FuzzedTransaction<'c> {
    card: &'c mut FuzzedCard,
}

impl CardTransaction for FuzzedTransaction<'_> {
    fn transmit(&mut self, _cmd: &[u8], _buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        let c = &mut *self.card;
        let Some(&len) = c.data.get(c.at) else {
            return Ok(vec![0x6F, 0x00]);
        };
        let start = c.at + 1;
        let end = (start + usize::from(len)).min(c.data.len());
        c.at = end;
        Ok(c.data[start..end].to_vec())
    }

    fn feature_pinpad_verify(&self) -> bool {
        false
    }

    fn was_reset(&self) -> bool {
        false
    }

    fn feature_pinpad_modify(&self) -> bool {
        false
    }

    fn pinpad_verify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error("no pinpad".into()))
    }

    fn pinpad_modify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error("no pinpad".into()))
    }
}
