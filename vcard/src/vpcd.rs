//! The card side of vsmartcard's vpcd protocol: pcscd's vpcd driver listens on TCP, the
//! virtual card connects to it and answers.
//!
//! Wire format: each message is a big-endian u16 length and a payload. A one-byte payload is a
//! control code (0 power off, 1 power on, 2 reset, 4 get ATR); anything longer is an APDU,
//! answered with the response APDU.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    time::Duration,
};

use crate::{VirtualCard, ATR};

const POWER_OFF: u8 = 0;
const POWER_ON: u8 = 1;
const RESET: u8 = 2;
const GET_ATR: u8 = 4;

/// Serves `card` to the vpcd driver at `addr` until the connection closes.
pub fn serve(card: &VirtualCard, addr: &str, hooks: &mut Hooks) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    (hooks.on_connected)();
    loop {
        quick_ack(&stream);
        let mut len = [0u8; 2];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut payload = vec![0u8; u16::from_be_bytes(len) as usize];
        quick_ack(&stream);
        stream.read_exact(&mut payload)?;
        let answer = match payload[..] {
            [POWER_OFF] | [RESET] => {
                card.power_cycle();
                continue;
            }
            [POWER_ON] => continue,
            [GET_ATR] => ATR.to_vec(),
            [_] => continue,
            _ => {
                let answer = match (hooks.before_apdu)(&payload) {
                    Some(instead) => instead,
                    None => card.transmit(&payload),
                };
                (hooks.on_apdu)();
                answer
            }
        };
        let mut message = Vec::with_capacity(answer.len() + 2);
        message.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        message.extend_from_slice(&answer);
        stream.write_all(&message)?;
    }
}

/// Called with each APDU before the card answers it; an answer it returns is given instead of
/// the card's (tests: a card of an older specification).
pub type ApduHook<'a> = dyn FnMut(&[u8]) -> Option<Vec<u8>> + 'a;

/// What the caller wants to hear about.
pub struct Hooks<'a> {
    pub on_connected: Box<dyn FnMut() + 'a>,
    /// Before the card answers an APDU (tests: a card pulled out at that moment, or one that
    /// answers some command differently).
    pub before_apdu: Box<ApduHook<'a>>,
    /// After each APDU the card answered.
    pub on_apdu: Box<dyn FnMut() + 'a>,
}

/// Serves `card` forever, reconnecting when pcscd (and with it vpcd) restarts.
pub fn serve_forever(card: &VirtualCard, addr: &str, mut hooks: Hooks) -> ! {
    loop {
        if let Err(e) = serve(card, addr, &mut hooks) {
            if e.kind() != io::ErrorKind::ConnectionRefused {
                eprintln!("cardecrypt-vcard: connection to vpcd at {addr} lost: {e}");
            }
        }
        // A card pulled out of the reader loses its PIN state.
        card.power_cycle();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// vpcd sends the length and the APDU in two writes; without an immediate ACK from us, Nagle's
/// algorithm on its side holds the second write for a delayed-ACK period (~40 ms).
fn quick_ack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int of the size
        // we pass.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
