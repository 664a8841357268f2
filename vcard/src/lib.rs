//! A virtual OpenPGP card for cardecrypt's tests and demo: Nitrokey's `opcard` running on
//! trussed's software platform.
//!
//! **Test use only.** trussed's virtual platform seeds its RNG with a constant, so keys
//! generated on this card are predictable.
//!
//! The card runs on a thread of its own; [`VirtualCard::transmit`] hands it an APDU and waits
//! for the answer. [`VirtualCard::backend`] wraps that as a `card_backend::CardBackend`, so the
//! whole openpgp-card client stack runs against it in-process, and the `cardecrypt-vcard`
//! binary bridges it to pcscd through vsmartcard's vpcd driver.

mod brainpool;
mod dispatch;
mod framing;
pub mod vpcd;

use std::{
    cell::RefCell,
    path::PathBuf,
    rc::Rc,
    sync::{mpsc, Arc},
    thread,
};

use card_backend::{CardBackend, CardCaps, CardTransaction, PinType, SmartcardError};
use dispatch::{BackendKind, CardDispatch, CardDispatchContext, BACKENDS};
use framing::{Framer, Step, MAX_RESPONSE};
use trussed::{
    pipe::{ServiceEndpoint, TrussedChannel},
    platform::Syscall,
    service::Service,
    types::CoreContext,
    virt::{self, StorageConfig, StoreConfig},
    ClientImplementation,
};

/// ATR of the virtual card (T=1, with the card's historical bytes).
pub const ATR: &[u8] = &[
    0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01,
    0x60, 0x00, 0x90, 0x00, 0x1C,
];

/// Manufacturer id 0xFFFE: "for test cards" in the OpenPGP card spec's range.
pub const MANUFACTURER: u16 = 0xFFFE;

/// How to start a virtual card.
#[derive(Clone, Debug)]
pub struct Config {
    pub serial: u32,
    /// Keep keys, PINs and data in files here, so they survive a restart. `None`: RAM only.
    pub state_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            serial: 1,
            state_dir: None,
        }
    }
}

impl Config {
    /// The card's identity as openpgp-card and gpg print it, `FFFE:0000000N`.
    pub fn ident(&self) -> String {
        format!("{MANUFACTURER:04X}:{:08X}", self.serial)
    }
}

enum Request {
    Apdu(Vec<u8>, mpsc::Sender<Vec<u8>>),
    PowerCycle(mpsc::Sender<()>),
}

/// A running virtual card. Dropping it stops the card's thread.
pub struct VirtualCard {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<thread::JoinHandle<()>>,
    ident: String,
}

impl VirtualCard {
    pub fn start(config: Config) -> std::io::Result<Self> {
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir)?;
        }
        let ident = config.ident();
        let (requests, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("vcard-{ident}"))
            .spawn(move || run_card(config, inbox))?;
        Ok(VirtualCard {
            requests: Some(requests),
            thread: Some(thread),
            ident,
        })
    }

    pub fn ident(&self) -> &str {
        &self.ident
    }

    /// Sends one APDU, returns the response with its status word. A card that died answers
    /// 6F00 (no precise diagnosis).
    pub fn transmit(&self, apdu: &[u8]) -> Vec<u8> {
        let (reply, answer) = mpsc::channel();
        let sent = self
            .requests
            .as_ref()
            .map(|r| r.send(Request::Apdu(apdu.to_vec(), reply)));
        match sent {
            Some(Ok(())) => answer.recv().unwrap_or_else(|_| vec![0x6F, 0x00]),
            _ => vec![0x6F, 0x00],
        }
    }

    /// Power off and on: the card forgets verified PINs and its selected application.
    pub fn power_cycle(&self) {
        let (reply, done) = mpsc::channel();
        if let Some(r) = &self.requests {
            if r.send(Request::PowerCycle(reply)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    /// A `CardBackend` for openpgp-card. Several may be open at once, like PC/SC shared mode.
    pub fn backend(self: &Arc<Self>) -> InProcessBackend {
        InProcessBackend {
            card: Arc::clone(self),
        }
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs trussed's service inline, inside the client's syscall: no polling thread, no sleep.
struct InlineSyscall<'a>(Rc<RefCell<Machine<'a>>>);

type Platform<'a> = virt::Platform<'a>;

struct Machine<'a> {
    service: Service<Platform<'a>, CardDispatch>,
    endpoints: Vec<ServiceEndpoint<'static, BackendKind, CardDispatchContext>>,
}

impl Syscall for InlineSyscall<'_> {
    fn syscall(&mut self) {
        let machine = &mut *self.0.borrow_mut();
        machine.service.process(&mut machine.endpoints);
    }
}

fn store_config(state_dir: &Option<PathBuf>) -> StoreConfig<'static> {
    match state_dir {
        None => StoreConfig::ram(),
        Some(dir) => StoreConfig {
            internal: StorageConfig::filesystem(dir.join("internal.littlefs")),
            external: StorageConfig::filesystem(dir.join("external.littlefs")),
            volatile: StorageConfig::ram(),
        },
    }
}

fn run_card(config: Config, inbox: mpsc::Receiver<Request>) {
    let store = store_config(&config.state_dir);
    virt::with_platform(store, |platform| {
        // One channel per card for the whole process life: leaking it gives the 'static
        // lifetime trussed's endpoints want.
        let channel: &'static TrussedChannel = Box::leak(Box::new(TrussedChannel::new()));
        let (requester, responder) = channel.split().expect("fresh channel");
        let context = CoreContext::new("opcard".try_into().expect("valid client id"));
        let machine = Rc::new(RefCell::new(Machine {
            service: Service::with_dispatch(platform, CardDispatch::new()),
            endpoints: vec![ServiceEndpoint::new(responder, context, BACKENDS)],
        }));
        let client: ClientImplementation<'static, InlineSyscall<'_>, CardDispatch> =
            ClientImplementation::new(requester, InlineSyscall(machine), None);

        let mut options = opcard::Options::default();
        options.manufacturer = MANUFACTURER.to_be_bytes();
        options.serial = config.serial.to_be_bytes();
        options.storage = trussed_core::types::Location::Internal;
        // Brainpool runs in software here (src/brainpool.rs); P-512 does not.
        let brainpool = opcard::AllowedAlgorithms::BRAINPOOL_P256R1
            | opcard::AllowedAlgorithms::BRAINPOOL_P384R1;
        options.allowed_imports |= brainpool;
        options.allowed_generation |= brainpool;
        let mut card = opcard::Card::new(client, options);
        let mut framer = Framer::default();
        let mut response = heapless::Vec::<u8, MAX_RESPONSE>::new();

        for request in inbox {
            match request {
                Request::PowerCycle(done) => {
                    card.reset();
                    framer.reset();
                    let _ = done.send(());
                }
                Request::Apdu(apdu, reply) => {
                    let answer = match framer.accept(&apdu) {
                        Step::Reply(answer) => answer,
                        Step::Card {
                            command,
                            max_response,
                        } => {
                            response.clear();
                            let sw = match iso7816::command::CommandView::try_from(&command[..]) {
                                Ok(view) => match card.handle(view, response.as_mut_view()) {
                                    Ok(()) => 0x9000,
                                    Err(status) => u16::from(status),
                                },
                                Err(_) => 0x6700,
                            };
                            framer.respond(response.to_vec(), sw, max_response)
                        }
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    });
}

/// The in-process `CardBackend`: every transmit is a round trip to the card thread.
pub struct InProcessBackend {
    card: Arc<VirtualCard>,
}

impl InProcessBackend {
    pub fn card(&self) -> &Arc<VirtualCard> {
        &self.card
    }
}

impl CardBackend for InProcessBackend {
    fn limit_card_caps(&self, card_caps: CardCaps) -> CardCaps {
        card_caps
    }

    fn transaction(
        &mut self,
        _reselect_application: Option<&[u8]>,
    ) -> Result<Box<dyn CardTransaction + Send + Sync + '_>, SmartcardError> {
        Ok(Box::new(InProcessTransaction { card: &self.card }))
    }
}

struct InProcessTransaction<'a> {
    card: &'a Arc<VirtualCard>,
}

impl CardTransaction for InProcessTransaction<'_> {
    fn transmit(&mut self, cmd: &[u8], _buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        Ok(self.card.transmit(cmd))
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
            "the virtual card has no PIN pad".into(),
        ))
    }

    fn pinpad_modify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error(
            "the virtual card has no PIN pad".into(),
        ))
    }

    fn was_reset(&self) -> bool {
        false
    }
}
