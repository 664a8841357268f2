//! Which PINs this process verified on which card, and making the cards forget them.
//!
//! A card keeps a verified PIN until it loses power or is reset, and pcscd keeps it powered
//! while any program holds a connection: scdaemon with `pcsc-shared`, OpenSC, KeePassXC. So
//! "done with the card" is not enough; we tell the card. Every VERIFY that carried a PIN and
//! was accepted is noted per reader, and the card is asked to forget it (VERIFY with P1=FF,
//! OpenPGP card 3.x) before the transaction that sent it ends: no other program ever finds
//! the card unlocked by us, and no PIN another program verifies meanwhile is undone behind
//! its back (scdaemon would go on believing its PIN verified and fail with "Bad PIN"). Only
//! a PIN the user asked to keep unlocked outlives its transaction. Whatever is still noted
//! when the command ends (kept but not handed to a holder, or refused by a card) is forgotten
//! then, and a card that refuses is reset. A PIN we did not send (a card another program
//! unlocked, or our holder keeps unlocked) is left as it is.

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
pub struct Verified(Arc<Mutex<Noted>>);

#[derive(Default)]
struct Noted {
    pins: BTreeMap<String, Vec<u8>>,
    /// PINs that outlive their transaction: the user asked to keep the card unlocked.
    kept: Vec<u8>,
}

impl Verified {
    /// PINs in `pins` stay verified after their transaction, for the rest of the command.
    pub fn keep_after_transactions(&self, pins: &[u8]) {
        if let Ok(mut noted) = self.0.lock() {
            noted.kept = pins.to_vec();
        }
    }

    /// Whether `pin` must be forgotten before the transaction that verified it ends.
    pub fn forget_in_transaction(&self, pin: u8) -> bool {
        self.0
            .lock()
            .map_or(true, |noted| !noted.kept.contains(&pin))
    }

    /// Notes what one command and its answer did to the PIN state of the card in `reader`.
    /// Returns the PIN reference a PIN was accepted for.
    pub fn observe(&self, reader: &str, cmd: &[u8], resp: &[u8]) -> Option<u8> {
        let change = pin_change(cmd, resp)?;
        let mut noted = self.0.lock().ok()?;
        let pins = noted.pins.entry(reader.to_string()).or_default();
        pins.retain(|p| *p != change.reference);
        if change.verified {
            pins.push(change.reference);
        }
        change.verified.then_some(change.reference)
    }

    /// Whether a PIN is noted as verified in `reader`.
    pub fn any_in(&self, reader: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|noted| noted.pins.get(reader).is_some_and(|p| !p.is_empty()))
    }

    /// The card in `reader` was reset: it forgot every PIN.
    pub fn card_reset(&self, reader: &str) {
        if let Ok(mut noted) = self.0.lock() {
            noted.pins.remove(reader);
        }
    }

    /// Takes what is noted (leaving nothing), for each reader the PINs in `keep` left out.
    pub fn take(&self, keep: &[u8]) -> Vec<(String, Vec<u8>)> {
        let Ok(mut noted) = self.0.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut noted.pins)
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
    /// No PIN was verified any more.
    NotVerified,
    /// The card refused VERIFY P1=FF: it was reset, and every program's session with it.
    CardReset,
    /// Other programs were connected: the card was reset, so that they see it (see
    /// [`forget_in_reader`]).
    SharedReset,
    /// The card is gone or was reset meanwhile: it forgot by itself.
    Gone,
}

/// What [`send_resets`] found and did.
enum Step {
    Done,
    Nothing,
    Refused,
    Shared,
}

/// Makes the card in `card` forget those of `pins` still verified: VERIFY P1=FF, or a reset
/// (disconnect with reset) when it refuses, or when `others` (other programs connected)
/// may believe a PIN of theirs verified.
pub fn forget_on(mut card: pcsc::Card, pins: &[u8], others: bool) -> Forgot {
    let (disposition, forgot) = match send_resets(&mut card, pins, others) {
        Ok(Step::Done) => (pcsc::Disposition::LeaveCard, Forgot::Reset),
        Ok(Step::Nothing) => (pcsc::Disposition::LeaveCard, Forgot::NotVerified),
        Ok(Step::Refused) => (pcsc::Disposition::ResetCard, Forgot::CardReset),
        Ok(Step::Shared) => (pcsc::Disposition::ResetCard, Forgot::SharedReset),
        Err(()) => (pcsc::Disposition::LeaveCard, Forgot::Gone),
    };
    let _ = card.disconnect(disposition);
    forgot
}

/// In one transaction: which of `pins` are verified (an empty VERIFY answers 9000), and
/// VERIFY P1=FF for them unless `others` calls for a reset. Err: the card went or was reset.
fn send_resets(card: &mut pcsc::Card, pins: &[u8], others: bool) -> Result<Step, ()> {
    let tx = card.transaction().map_err(|_| ())?;
    let mut buf = [0u8; 258];
    let select = tx.transmit(&OPENPGP_SELECT, &mut buf).map_err(|_| ())?;
    if !select.ends_with(&[0x90, 0x00]) {
        return Ok(Step::Refused);
    }
    let mut verified = Vec::new();
    for pin in pins {
        let resp = tx
            .transmit(&[0x00, 0x20, 0x00, *pin], &mut buf)
            .map_err(|_| ())?;
        if resp.ends_with(&[0x90, 0x00]) {
            verified.push(*pin);
        }
    }
    if verified.is_empty() {
        return Ok(Step::Nothing);
    }
    if others {
        return Ok(Step::Shared);
    }
    for pin in verified {
        let resp = tx
            .transmit(&[0x00, 0x20, 0xFF, pin], &mut buf)
            .map_err(|_| ())?;
        if !resp.ends_with(&[0x90, 0x00]) {
            return Ok(Step::Refused);
        }
    }
    Ok(Step::Done)
}

/// Connects to `reader` again and makes its card forget `pins` (`cardecrypt lock`, a
/// holder's time running out, the end of a command). The caller's own connection must be
/// closed: when other programs are still connected, one of them may have verified a PIN
/// while it was unlocked and go on believing so (scdaemon does, and would answer "Bad PIN"
/// until restarted), so the card is reset, which every program notices and recovers from.
/// `None` when there is no card to connect to (it forgot by losing power).
pub fn forget_in_reader(reader: &str, pins: &[u8]) -> Option<Forgot> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).ok()?;
    let name = CString::new(reader).ok()?;
    let others = in_use(&ctx, &name);
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .ok()?;
    let forgot = forget_on(card, pins, others);
    if matches!(forgot, Forgot::SharedReset | Forgot::CardReset) {
        super::scdaemon::tell_of_reset();
    }
    Some(forgot)
}

/// Whether any program holds a connection to the card in `reader`.
fn in_use(ctx: &pcsc::Context, reader: &CString) -> bool {
    let mut state = [pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
    ctx.get_status_change(std::time::Duration::ZERO, &mut state)
        .is_ok_and(|()| state[0].event_state().contains(pcsc::State::INUSE))
}

/// The one line for a card that had to be reset, or nothing.
pub fn note(reader: &str, forgot: &Forgot) -> Option<String> {
    match forgot {
        Forgot::CardReset => Some(format!(
            "note: the card in \"{reader}\" cannot forget a PIN by itself (VERIFY P1=FF), so it \
             was reset: other programs using it (scdaemon, OpenSC) lost their session too"
        )),
        Forgot::SharedReset => Some(format!(
            "note: other programs use the card in \"{reader}\", so it was reset to lock it: \
             they ask for the PIN again (scdaemon included)"
        )),
        _ => None,
    }
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
