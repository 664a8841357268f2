//! The PC/SC transport: shared access, short transactions, disconnect without reset.
//!
//! card-backend-pcsc disconnects through `pcsc::Card`'s `Drop`, which uses SCARD_RESET_CARD:
//! every run would reset the card, forgetting a verified PIN and disturbing other programs
//! (scdaemon sees a reset). This backend leaves the card as it is on disconnect, and on
//! "card was reset" reconnects and re-selects the application.

use std::ffi::{CStr, CString};

use card_backend::{CardBackend, CardCaps, CardTransaction, PinType, SmartcardError};

use super::forget::Verified;
use crate::error::Error;

const REMOVED: &str = "the card was removed";

/// One card in one reader, connected in shared mode.
pub struct PcscCard {
    card: Option<pcsc::Card>,
    reader: String,
    /// Where accepted VERIFYs are noted, for the PINs to be forgotten when the command ends.
    verified: Verified,
}

/// What happened when connecting to a reader.
pub enum Connect {
    Card(PcscCard),
    Empty,
    Busy,
}

/// Opens a PC/SC context and lists the readers.
pub fn readers() -> Result<(pcsc::Context, Vec<CString>), Error> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(service_error)?;
    let readers = match ctx.list_readers_owned() {
        Ok(r) => r,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(service_error(e)),
    };
    Ok((ctx, readers))
}

fn service_error(e: pcsc::Error) -> Error {
    match e {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
            Error::NoService("pcscd is not running".into())
        }
        other => Error::NoService(other.to_string()),
    }
}

impl PcscCard {
    /// Connects in shared mode; accepted VERIFYs are noted in `verified`.
    pub fn connect(
        ctx: &pcsc::Context,
        reader: &CStr,
        verified: &Verified,
    ) -> Result<Connect, Error> {
        let name = reader.to_string_lossy().into_owned();
        match ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(card) => Ok(Connect::Card(PcscCard {
                card: Some(card),
                reader: name,
                verified: verified.clone(),
            })),
            Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => Ok(Connect::Empty),
            Err(pcsc::Error::SharingViolation) => Ok(Connect::Busy),
            Err(pcsc::Error::UnpoweredCard | pcsc::Error::UnresponsiveCard) => Ok(Connect::Empty),
            Err(e) => Err(service_error(e)),
        }
    }

    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Closes the connection, then makes the card forget `pins` (see
    /// [`super::forget::forget_in_reader`]).
    pub fn close_forgetting(mut self, pins: &[u8]) -> Option<super::forget::Forgot> {
        let card = self.card.take()?;
        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        super::forget::forget_in_reader(&self.reader, pins)
    }
}

impl Drop for PcscCard {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            // Leave the card as it is: a reset would forget the verified PIN.
            let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        }
    }
}

fn transmit_error(e: pcsc::Error) -> SmartcardError {
    match e {
        pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard => {
            SmartcardError::SmartCardConnectionError(REMOVED.into())
        }
        other => SmartcardError::Error(other.to_string()),
    }
}

/// Maps transport errors to ours.
pub fn classify(e: &SmartcardError) -> Error {
    match e {
        SmartcardError::SmartCardConnectionError(s) if s == REMOVED => Error::CardRemoved,
        SmartcardError::ContextError(s) => Error::NoService(s.clone()),
        SmartcardError::NoReaderFoundError => Error::NoReader,
        other => Error::Card(other.to_string()),
    }
}

impl CardBackend for PcscCard {
    fn limit_card_caps(&self, card_caps: CardCaps) -> CardCaps {
        card_caps
    }

    fn transaction(
        &mut self,
        reselect_application: Option<&[u8]>,
    ) -> Result<Box<dyn CardTransaction + Send + Sync + '_>, SmartcardError> {
        let card = self
            .card
            .as_mut()
            .ok_or_else(|| SmartcardError::SmartCardConnectionError(REMOVED.into()))?;
        let verified = &self.verified;
        let reader = self.reader.as_str();
        let mut was_reset = false;
        let mut card = card;
        let tx = loop {
            match card.transaction2() {
                Ok(tx) => break tx,
                // Reconnect once: a card that keeps resetting is a card in trouble.
                Err((again, pcsc::Error::ResetCard)) if !was_reset => {
                    was_reset = true;
                    again
                        .reconnect(
                            pcsc::ShareMode::Shared,
                            pcsc::Protocols::ANY,
                            pcsc::Disposition::LeaveCard,
                        )
                        .map_err(transmit_error)?;
                    card = again;
                }
                Err((_, e)) => return Err(transmit_error(e)),
            }
        };
        if was_reset {
            verified.card_reset(reader);
        }
        let mut tx = PcscTransaction {
            tx,
            was_reset,
            verified,
            reader,
            sent: Vec::new(),
        };
        if was_reset {
            if let Some(app) = reselect_application {
                let res = tx.select(app)?;
                if !res.ends_with(&[0x90, 0x00]) {
                    return Err(SmartcardError::Error(
                        "the card was reset and the OpenPGP application could not be selected \
                         again"
                            .into(),
                    ));
                }
            }
        }
        Ok(Box::new(tx))
    }
}

struct PcscTransaction<'a> {
    tx: pcsc::Transaction<'a>,
    was_reset: bool,
    verified: &'a Verified,
    reader: &'a str,
    /// PINs this transaction verified.
    sent: Vec<u8>,
}

impl Drop for PcscTransaction<'_> {
    /// The PINs this transaction verified are forgotten before it ends (see [`super::forget`]),
    /// unless the user asked to keep them. A card that refuses keeps them noted, for the end
    /// of the command to reset it; a card gone has forgotten by itself.
    fn drop(&mut self) {
        let pins: Vec<u8> = std::mem::take(&mut self.sent)
            .into_iter()
            .filter(|pin| self.verified.forget_in_transaction(*pin))
            .collect();
        let mut buf = [0u8; 258];
        for pin in pins {
            let cmd = [0x00, 0x20, 0xFF, pin];
            match self.tx.transmit(&cmd, &mut buf) {
                Ok(resp) => {
                    self.verified.observe(self.reader, &cmd, resp);
                }
                Err(_) => break,
            }
        }
    }
}

impl CardTransaction for PcscTransaction<'_> {
    fn transmit(&mut self, cmd: &[u8], buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        // The answer to PSO:DECIPHER is a session key or an ECDH secret: the receive buffer
        // is wiped when it goes (the returned copy is openpgp-card's to handle).
        let mut buf =
            zeroize::Zeroizing::new(vec![0; buf_size.max(pcsc::MAX_BUFFER_SIZE_EXTENDED)]);
        let resp = self.tx.transmit(cmd, &mut buf).map_err(transmit_error)?;
        // Every card answer ends in a status word. Nothing at all is what vpcd (and some
        // readers) hand back for a card that went away mid-command: say so, not "unexpected
        // response length".
        if resp.len() < 2 {
            return Err(SmartcardError::SmartCardConnectionError(REMOVED.into()));
        }
        if let Some(pin) = self.verified.observe(self.reader, cmd, resp) {
            if !self.sent.contains(&pin) {
                self.sent.push(pin);
            }
        }
        Ok(resp.to_vec())
    }

    fn feature_pinpad_verify(&self) -> bool {
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
        Err(SmartcardError::Error(
            "PIN pad readers are not supported yet".into(),
        ))
    }

    fn pinpad_modify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error(
            "PIN pad readers are not supported yet".into(),
        ))
    }

    fn was_reset(&self) -> bool {
        self.was_reset
    }
}
