//! The message path: armor, packets, PKESKs (software keys stand in for the card), SEIPD v1
//! and v2, the tag-20 packet, compression, signatures. Whatever the input, no panic, and
//! plaintext only for a message that authenticated.
#![no_main]

use cardecrypt::engine::{self, Dest, Facts, Input, Settings};
use cardecrypt_fuzz::SoftKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let settings = Settings {
        spool_dir: None,
        signer_certs: Vec::new(),
        unwrap: data.first().is_some_and(|b| b & 1 == 1),
        progress: None,
        export_session_key: false,
    };
    let mut plaintext = zeroize::Zeroizing::new(Vec::new());
    let mut facts = Facts::default();
    let input = Input::Stream(Box::new(std::io::Cursor::new(data.to_vec())));
    let result = engine::decrypt(
        input,
        Dest::Memory(&mut plaintext, cardecrypt::engine::memory::DEFAULT_LIMIT),
        &mut SoftKeys,
        &settings,
        &mut facts,
    );
    if result.is_err() {
        // Dest::Memory is the caller's to drop on error; nothing else was released.
        plaintext.clear();
    }
});
