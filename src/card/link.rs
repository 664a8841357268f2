//! The link every APDU passes through: counts APDUs, traces them with secrets redacted,
//! and caches the application related data to spare redundant round trips.
//!
//! openpgp-card reads the application related data (GET DATA 6E) when it opens a card, again
//! when it starts a transaction and again to read a public key. Only state-changing commands
//! can change it, so the wrapper answers repeated reads from the last one until such a
//! command is sent. The first read goes out with extended Le: the answer is longer than a
//! short APDU can carry (it would need GET RESPONSE), and cards of spec 3.x take extended
//! APDUs; a card that refuses gets the short form.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use card_backend::{CardBackend, CardCaps, CardTransaction, PinType, SmartcardError};

/// Counts APDUs sent to a card, across transactions.
#[derive(Clone, Default)]
pub struct ApduCounter(Arc<AtomicUsize>);

impl ApduCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct CardLink {
    inner: Box<dyn CardBackend + Send + Sync>,
    counter: ApduCounter,
    trace: bool,
    /// The last GET DATA 6E answer, valid until a command that may change card state.
    last_ard: Option<Vec<u8>>,
}

impl CardLink {
    pub fn new(
        inner: Box<dyn CardBackend + Send + Sync>,
        counter: ApduCounter,
        trace: bool,
    ) -> Self {
        CardLink {
            inner,
            counter,
            trace,
            last_ard: None,
        }
    }
}

impl CardBackend for CardLink {
    fn limit_card_caps(&self, card_caps: CardCaps) -> CardCaps {
        self.inner.limit_card_caps(card_caps)
    }

    fn transaction(
        &mut self,
        reselect_application: Option<&[u8]>,
    ) -> Result<Box<dyn CardTransaction + Send + Sync + '_>, SmartcardError> {
        let inner = self.inner.transaction(reselect_application)?;
        if inner.was_reset() {
            self.last_ard = None;
        }
        Ok(Box::new(MeteredTransaction {
            inner,
            counter: &self.counter,
            trace: self.trace,
            last_ard: &mut self.last_ard,
        }))
    }
}

struct MeteredTransaction<'a> {
    inner: Box<dyn CardTransaction + Send + Sync + 'a>,
    counter: &'a ApduCounter,
    trace: bool,
    last_ard: &'a mut Option<Vec<u8>>,
}

fn is_get_ard(cmd: &[u8]) -> bool {
    cmd.len() >= 4 && cmd[0] & 0xF0 == 0 && cmd[1] == 0xCA && cmd[2] == 0x00 && cmd[3] == 0x6E
}

/// Commands whose data or answer must never reach a log: PINs, key material, session keys.
fn redact_command(ins: u8) -> bool {
    matches!(ins, 0x20 | 0x24 | 0x2C | 0xDB | 0xDA) // VERIFY, CHANGE, RESET RC, PUT DATA
}

fn redact_response(ins: u8) -> bool {
    ins == 0x2A // PSO: DECIPHER answers with the session key or the shared secret
}

const SHORT_GET_ARD: [u8; 5] = [0x00, 0xCA, 0x00, 0x6E, 0x00];
const EXTENDED_GET_ARD: [u8; 7] = [0x00, 0xCA, 0x00, 0x6E, 0x00, 0x00, 0x00];

/// Commands that only read: SELECT, GET DATA, GET RESPONSE, read public key.
fn is_read_only(cmd: &[u8]) -> bool {
    matches!(
        (cmd.get(1), cmd.get(2)),
        (Some(0xA4 | 0xCA | 0xC0), _) | (Some(0x47), Some(0x81))
    )
}

impl MeteredTransaction<'_> {
    fn send(&mut self, cmd: &[u8], buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        self.counter.0.fetch_add(1, Ordering::Relaxed);
        let ins = cmd.get(1).copied().unwrap_or(0);
        if self.trace {
            if redact_command(ins) {
                eprintln!(
                    "cardecrypt: apdu > {} [data redacted]",
                    hex(&cmd[..cmd.len().min(4)])
                );
            } else {
                eprintln!("cardecrypt: apdu > {}", hex(cmd));
            }
        }
        let resp = self.inner.transmit(cmd, buf_size)?;
        if self.trace {
            if redact_response(ins) && resp.len() > 2 {
                eprintln!(
                    "cardecrypt: apdu < [{} bytes redacted] {}",
                    resp.len() - 2,
                    hex(&resp[resp.len() - 2..])
                );
            } else {
                eprintln!("cardecrypt: apdu < {}", hex(&resp));
            }
        }
        Ok(resp)
    }
}

impl CardTransaction for MeteredTransaction<'_> {
    fn transmit(&mut self, cmd: &[u8], buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        if is_get_ard(cmd) {
            if let Some(ard) = self.last_ard.as_ref() {
                if self.trace {
                    eprintln!("cardecrypt: apdu GET DATA 6E answered from the previous read");
                }
                return Ok(ard.clone());
            }
            if cmd == SHORT_GET_ARD {
                let resp = self.send(&EXTENDED_GET_ARD, buf_size.max(0x10000))?;
                if resp.ends_with(&[0x90, 0x00]) {
                    *self.last_ard = Some(resp.clone());
                    return Ok(resp);
                }
            }
        }
        if !is_read_only(cmd) {
            self.last_ard.take();
        }
        let resp = self.send(cmd, buf_size)?;
        if is_get_ard(cmd) && resp.ends_with(&[0x90, 0x00]) {
            *self.last_ard = Some(resp.clone());
        }
        Ok(resp)
    }

    fn max_cmd_len(&self) -> Option<usize> {
        self.inner.max_cmd_len()
    }

    fn feature_pinpad_verify(&self) -> bool {
        self.inner.feature_pinpad_verify()
    }

    fn feature_pinpad_modify(&self) -> bool {
        self.inner.feature_pinpad_modify()
    }

    fn pinpad_verify(
        &mut self,
        pin: PinType,
        card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        self.last_ard.take();
        self.inner.pinpad_verify(pin, card_caps)
    }

    fn pinpad_modify(
        &mut self,
        pin: PinType,
        card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        self.last_ard.take();
        self.inner.pinpad_modify(pin, card_caps)
    }

    fn was_reset(&self) -> bool {
        self.inner.was_reset()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_and_decipher_are_recognised_as_secret() {
        assert!(redact_command(0x20));
        assert!(redact_command(0xDB));
        assert!(!redact_command(0xCA));
        assert!(redact_response(0x2A));
    }

    #[test]
    fn only_reads_keep_the_cached_ard() {
        assert!(is_read_only(&[0x00, 0xCA, 0x00, 0xF9, 0x00]));
        assert!(is_read_only(&[0x00, 0x47, 0x81, 0x00, 0x02, 0xB8, 0x00]));
        assert!(!is_read_only(&[0x00, 0x47, 0x80, 0x00, 0x02, 0xB8, 0x00]));
        assert!(!is_read_only(&[0x00, 0x20, 0x00, 0x82]));
        assert!(!is_read_only(&[0x00, 0xDA, 0x00, 0xC4]));
    }

    #[test]
    fn get_ard_is_recognised_with_and_without_extended_le() {
        assert!(is_get_ard(&[0x00, 0xCA, 0x00, 0x6E, 0x00]));
        assert!(is_get_ard(&[0x00, 0xCA, 0x00, 0x6E, 0x00, 0x00, 0x00]));
        assert!(!is_get_ard(&[0x00, 0xCA, 0x00, 0xC4, 0x00]));
    }
}
