//! Which PINs this process verified on which card, and making the cards forget them.
//!
//! A card keeps a verified PIN until it loses power or is reset, and pcscd keeps it powered
//! while any program holds a connection: scdaemon with `pcsc-shared`, OpenSC, KeePassXC. So
//! "done with the card" is not enough; we tell the card. Every VERIFY that carried a PIN and
//! was accepted is noted per reader; at the end of the command the card is asked to forget
//! those PINs (VERIFY with P1=FF, OpenPGP card 3.x), and a card that refuses is reset. A PIN
//! we did not send (a card another program unlocked, or our holder keeps unlocked) is left
//! as it is.

use std::{
    collections::BTreeMap,
    ffi::CString,
    sync::{Arc, Mutex},
};

/// PIN references of OpenPGP cards, as VERIFY's P2 names them.
pub const PW1_SIGN: u8 = 0x81;
pub const PW1: u8 = 0x82;
pub const PW3: u8 = 0x83;

const OPENPGP_SELECT: [u8; 11] = [
    0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01,
];

/// The PINs verified per reader, shared by every connection a command opens.
#[derive(Clone, Default)]
pub struct Verified(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl Verified {
    /// Notes what one command and its answer did to the PIN state of the card in `reader`.
    pub fn observe(&self, reader: &str, cmd: &[u8], resp: &[u8]) {
        let Some(change) = pin_change(cmd, resp) else {
            return;
        };
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        let pins = map.entry(reader.to_string()).or_default();
        pins.retain(|p| *p != change.reference);
        if change.verified {
            pins.push(change.reference);
        }
    }

    /// Whether a PIN is noted as verified in `reader`.
    pub fn any_in(&self, reader: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|map| map.get(reader).is_some_and(|p| !p.is_empty()))
    }

    /// The card in `reader` was reset: it forgot every PIN.
    pub fn card_reset(&self, reader: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(reader);
        }
    }

    /// Takes what is noted (leaving nothing), for each reader the PINs in `keep` left out.
    pub fn take(&self, keep: &[u8]) -> Vec<(String, Vec<u8>)> {
        let Ok(mut map) = self.0.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *map)
            .into_iter()
            .map(|(reader, pins)| {
                (
                    reader,
                    pins.into_iter()
                        .filter(|p| !keep.contains(p))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, pins)| !pins.is_empty())
            .collect()
    }
}

struct PinChange {
    reference: u8,
    verified: bool,
}

/// What a VERIFY did: a PIN sent and accepted verifies its reference; P1=FF accepted resets it.
/// An empty VERIFY (the status query) changes nothing.
fn pin_change(cmd: &[u8], resp: &[u8]) -> Option<PinChange> {
    let ok = resp.ends_with(&[0x90, 0x00]);
    match cmd {
        [_, 0x20, 0x00, reference, _, ..] if ok => Some(PinChange {
            reference: *reference,
            verified: true,
        }),
        [_, 0x20, 0xFF, reference, ..] if ok => Some(PinChange {
            reference: *reference,
            verified: false,
        }),
        _ => None,
    }
}

/// How a card was made to forget its PINs.
#[derive(Debug, PartialEq, Eq)]
pub enum Forgot {
    /// VERIFY P1=FF for each PIN.
    Reset,
    /// The card refused that: it was reset, and every program's session with it.
    CardReset,
    /// The card is gone or was reset meanwhile: it forgot by itself.
    Gone,
}

/// Asks the card in `card` to forget `pins`; resets it (disconnect with reset) if it refuses.
pub fn forget_on(mut card: pcsc::Card, pins: &[u8]) -> Forgot {
    let (disposition, forgot) = match send_resets(&mut card, pins) {
        Ok(true) => (pcsc::Disposition::LeaveCard, Forgot::Reset),
        Ok(false) => (pcsc::Disposition::ResetCard, Forgot::CardReset),
        Err(()) => (pcsc::Disposition::LeaveCard, Forgot::Gone),
    };
    let _ = card.disconnect(disposition);
    forgot
}

/// Ok(true): every PIN reset; Ok(false): the card refused; Err: the card went or was reset.
fn send_resets(card: &mut pcsc::Card, pins: &[u8]) -> Result<bool, ()> {
    let tx = card.transaction().map_err(|_| ())?;
    let mut buf = [0u8; 258];
    let select = tx.transmit(&OPENPGP_SELECT, &mut buf).map_err(|_| ())?;
    if !select.ends_with(&[0x90, 0x00]) {
        return Ok(false);
    }
    for pin in pins {
        let resp = tx
            .transmit(&[0x00, 0x20, 0xFF, *pin], &mut buf)
            .map_err(|_| ())?;
        if !resp.ends_with(&[0x90, 0x00]) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Connects to `reader` again and makes its card forget `pins`. `None` when there is no
/// card to connect to (it forgot by losing power).
pub fn forget_in_reader(reader: &str, pins: &[u8]) -> Option<Forgot> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).ok()?;
    let name = CString::new(reader).ok()?;
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .ok()?;
    Some(forget_on(card, pins))
}

/// The one line for a card that had to be reset, or nothing.
pub fn note(reader: &str, forgot: &Forgot) -> Option<String> {
    (*forgot == Forgot::CardReset).then(|| {
        format!(
            "note: the card in \"{reader}\" cannot forget a PIN by itself (VERIFY P1=FF), so it \
             was reset: other programs using it (scdaemon, OpenSC) lost their session too"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFY_PW1: [u8; 11] = [0x00, 0x20, 0x00, PW1, 0x06, 1, 2, 3, 4, 5, 6];
    const VERIFY_PW3: [u8; 13] = [0x00, 0x20, 0x00, PW3, 0x08, 1, 2, 3, 4, 5, 6, 7, 8];
    const OK: [u8; 2] = [0x90, 0x00];

    #[test]
    fn accepted_verify_with_pin_is_noted_and_reset_clears_it() {
        let v = Verified::default();
        v.observe("r", &VERIFY_PW1, &OK);
        v.observe("r", &VERIFY_PW3, &[0x63, 0xC2]);
        v.observe("r", &[0x00, 0x20, 0x00, PW1_SIGN], &[0x90, 0x00]);
        assert_eq!(v.take(&[]), vec![("r".to_string(), vec![PW1])]);
        assert!(v.take(&[]).is_empty());
        v.observe("r", &VERIFY_PW1, &OK);
        v.observe("r", &[0x00, 0x20, 0xFF, PW1], &[0x90, 0x00]);
        assert!(v.take(&[]).is_empty());
    }

    #[test]
    fn kept_pins_are_left_out() {
        let v = Verified::default();
        v.observe("r", &VERIFY_PW1, &OK);
        v.observe("r", &VERIFY_PW3, &OK);
        assert_eq!(v.take(&[PW1]), vec![("r".to_string(), vec![PW3])]);
        v.observe("s", &VERIFY_PW1, &OK);
        v.card_reset("s");
        assert!(v.take(&[]).is_empty());
    }
}
