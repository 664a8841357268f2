//! Turns the APDUs a reader delivers into the complete commands opcard handles.
//!
//! `opcard::Card::handle` wants one whole command and writes one whole response. Readers and
//! clients may instead send a command in pieces (command chaining, CLA bit 0x10) and fetch a
//! long response in pieces (status 61xx, then GET RESPONSE). This layer does both, the way a
//! card's operating system would.

use iso7816::command::CommandView;

/// Largest response opcard produces (a cardholder certificate or an RSA 4096 public key fit).
pub const MAX_RESPONSE: usize = 7609;

const INS_GET_RESPONSE: u8 = 0xC0;
const CLA_CHAINING: u8 = 0x10;

/// What is left over between APDUs: a command being chained, a response being fetched.
#[derive(Default)]
pub struct Framer {
    chained: Option<Chained>,
    pending: Vec<u8>,
}

struct Chained {
    header: [u8; 4],
    data: Vec<u8>,
}

/// A complete command for the card, or an answer the framer gives itself.
pub enum Step {
    Card {
        command: Vec<u8>,
        max_response: usize,
    },
    Reply(Vec<u8>),
}

impl Framer {
    /// Forgets any half-sent command or half-read response (card reset / power cycle).
    pub fn reset(&mut self) {
        *self = Framer::default();
    }

    pub fn accept(&mut self, apdu: &[u8]) -> Step {
        if apdu.len() < 4 {
            return Step::Reply(status(0x6700));
        }
        if apdu[1] == INS_GET_RESPONSE && self.chained.is_none() {
            let le = apdu
                .get(4)
                .map_or(256, |&b| if b == 0 { 256 } else { b as usize });
            if self.pending.is_empty() {
                return Step::Reply(status(0x6985));
            }
            let rest = self.pending.split_off(le.min(self.pending.len()));
            let chunk = std::mem::replace(&mut self.pending, rest);
            return Step::Reply(self.with_remaining(chunk));
        }
        self.pending.clear();

        let view = match CommandView::try_from(apdu) {
            Ok(view) => view,
            Err(_) => {
                self.chained = None;
                return Step::Reply(status(0x6700));
            }
        };
        let header = [apdu[0] & !CLA_CHAINING, apdu[1], apdu[2], apdu[3]];
        if apdu[0] & CLA_CHAINING != 0 {
            let chained = self.chained.get_or_insert_with(|| Chained {
                header,
                data: Vec::new(),
            });
            if chained.header != header {
                self.chained = None;
                return Step::Reply(status(0x6883));
            }
            chained.data.extend_from_slice(view.data());
            return Step::Reply(status(0x9000));
        }

        let extended = is_extended(apdu);
        let max_response = match (extended, view.expected()) {
            (true, _) => 65536,
            (false, 0) => 256,
            (false, n) => n,
        };
        match self.chained.take() {
            None => Step::Card {
                command: apdu.to_vec(),
                max_response,
            },
            Some(mut chained) => {
                chained.data.extend_from_slice(view.data());
                Step::Card {
                    command: extended_command(header, &chained.data),
                    max_response,
                }
            }
        }
    }

    /// Packs the card's answer, keeping what does not fit for GET RESPONSE.
    pub fn respond(&mut self, mut data: Vec<u8>, sw: u16, max_response: usize) -> Vec<u8> {
        if data.len() > max_response && sw == 0x9000 {
            self.pending = data.split_off(max_response);
            return self.with_remaining(data);
        }
        data.extend_from_slice(&sw.to_be_bytes());
        data
    }

    fn with_remaining(&self, mut chunk: Vec<u8>) -> Vec<u8> {
        if self.pending.is_empty() {
            chunk.extend_from_slice(&[0x90, 0x00]);
        } else {
            chunk.extend_from_slice(&[0x61, self.pending.len().min(255) as u8]);
        }
        chunk
    }
}

fn status(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

/// An extended APDU has a zero byte where a short one has Lc or Le.
fn is_extended(apdu: &[u8]) -> bool {
    apdu.len() > 6 && apdu[4] == 0
}

fn extended_command(header: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut cmd = Vec::with_capacity(data.len() + 9);
    cmd.extend_from_slice(&header);
    cmd.push(0);
    cmd.extend_from_slice(&(data.len() as u16).to_be_bytes());
    cmd.extend_from_slice(data);
    cmd.extend_from_slice(&[0, 0]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_command(step: Step) -> (Vec<u8>, usize) {
        match step {
            Step::Card {
                command,
                max_response,
            } => (command, max_response),
            Step::Reply(r) => panic!("expected a card command, got reply {r:02x?}"),
        }
    }

    #[test]
    fn chained_command_is_joined_into_one_extended_command() {
        let mut f = Framer::default();
        let Step::Reply(r) = f.accept(&[0x10, 0x2a, 0x80, 0x86, 2, 0xaa, 0xbb]) else {
            panic!("chained part went to the card")
        };
        assert_eq!(r, [0x90, 0x00]);
        let (cmd, max) = card_command(f.accept(&[0x00, 0x2a, 0x80, 0x86, 1, 0xcc, 0x00]));
        assert_eq!(
            cmd,
            [0x00, 0x2a, 0x80, 0x86, 0, 0, 3, 0xaa, 0xbb, 0xcc, 0, 0]
        );
        assert_eq!(max, 256);
    }

    #[test]
    fn long_response_is_fetched_with_get_response() {
        let mut f = Framer::default();
        let (_, max) = card_command(f.accept(&[0x00, 0xca, 0x00, 0x6e, 0x00]));
        let first = f.respond(vec![7; 300], 0x9000, max);
        assert_eq!(first.len(), 258);
        assert_eq!(&first[256..], [0x61, 44]);
        let Step::Reply(rest) = f.accept(&[0x00, 0xc0, 0x00, 0x00, 0x00]) else {
            panic!("GET RESPONSE went to the card")
        };
        assert_eq!(rest.len(), 46);
        assert_eq!(&rest[44..], [0x90, 0x00]);
    }

    #[test]
    fn mismatched_chain_is_refused() {
        let mut f = Framer::default();
        f.accept(&[0x10, 0x2a, 0x80, 0x86, 1, 0xaa]);
        let Step::Reply(r) = f.accept(&[0x10, 0xdb, 0x3f, 0xff, 1, 0xbb]) else {
            panic!()
        };
        assert_eq!(r, [0x68, 0x83]);
    }
}
