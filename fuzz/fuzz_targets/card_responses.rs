//! A card (or a fake USB device) can answer anything: status, the card side of a decrypt,
//! and reading the slots' keys, against fuzzed APDU responses.
#![no_main]

use cardecrypt::{
    card::{
        self,
        pin::{PinPolicy, PinSource},
        Backend, CardSource,
    },
    decrypt::{self, DecryptOptions},
    ui::Interaction,
};
use cardecrypt_fuzz::FuzzedCard;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

struct OneCard(Option<Vec<u8>>);

impl CardSource for OneCard {
    fn backends(&mut self) -> cardecrypt::Result<Vec<(String, Backend)>> {
        Ok(self
            .0
            .take()
            .map(|d| vec![("fuzz".to_string(), Box::new(FuzzedCard::new(&d)) as Backend)])
            .unwrap_or_default())
    }
}

struct Answers;

impl Interaction for Answers {
    fn user_pin(&mut self, _ident: &str, _tries_left: u8) -> cardecrypt::Result<SecretString> {
        Ok(SecretString::from("123456"))
    }
    fn touch(&mut self, _ident: &str) {}
    fn note(&mut self, _message: &str) {}
}

const MESSAGE: &[u8] = include_bytes!("../../tests/data/base_seipd1.gpg");

fuzz_target!(|data: &[u8]| {
    // Status, as `card status` reads it.
    let mut backend = FuzzedCard::new(data);
    if let Ok(mut open) = openpgp_card::Card::<openpgp_card::state::Open>::new(Box::new(
        std::mem::replace(&mut backend, FuzzedCard::new(&[])),
    ) as Backend)
    {
        if let Ok(mut tx) = open.transaction() {
            let _ = card::CardInfo::read(&mut tx);
            let _ = card::report::read(&mut tx, "fuzz");
        }
    }
    // The card side of a decrypt: selection, key data, PIN, PSO:DECIPHER.
    let options = DecryptOptions {
        card: None,
        pin: PinPolicy {
            source: PinSource::Ask,
            batch: false,
            allow_last_try: true,
            memory: Default::default(),
        },
        trace: false,
        key_cache: None,
        signer_certs: Vec::new(),
        spool_dir: None,
        unwrap: false,
        progress: None,
        max_plaintext: cardecrypt::engine::memory::DEFAULT_LIMIT,
        show_session_key: false,
        session_key: None,
    };
    let _ = decrypt::decrypt(
        &mut &MESSAGE[..],
        &mut OneCard(Some(data.to_vec())),
        &mut Answers,
        &options,
    );
});
