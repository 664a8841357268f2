//! `cardecrypt mail`'s MIME rewriting: PGP/MIME, inline blocks, header protection, on any
//! bytes; encrypted pieces go through the engine with software keys. The same bytes as an
//! email and as an mbox for `inspect --mailbox`: split, counted and reported.
#![no_main]

use cardecrypt::{
    decrypt::Report,
    engine::{self, Dest, Facts, Input, Settings},
    mail::message,
};
use cardecrypt_fuzz::SoftKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decrypt = |armored: &[u8]| {
        let settings = Settings {
            spool_dir: None,
            signer_certs: Vec::new(),
            unwrap: false,
            progress: None,
            export_session_key: false,
        };
        let mut plaintext = zeroize::Zeroizing::new(Vec::new());
        let mut facts = Facts::default();
        let input = Input::Stream(Box::new(std::io::Cursor::new(armored.to_vec())));
        engine::decrypt(
            input,
            Dest::Memory(&mut plaintext, cardecrypt::engine::memory::DEFAULT_LIMIT),
            &mut SoftKeys,
            &settings,
            &mut facts,
        )?;
        Ok((plaintext, Report::default()))
    };
    let _ = message::decrypt_message(data, &mut decrypt, &[]);
    survey(data);
});

fn survey(data: &[u8]) {
    use cardecrypt::inspect::mailbox::{html, source, text, Tally};
    let mut tally = Tally::new(&Default::default());
    tally.add(
        &source::Message {
            location: "fuzz".into(),
            bytes: data.to_vec(),
            size: data.len() as u64,
        },
        false,
    );
    let _ = source::split_mbox(data, std::path::Path::new("fuzz"), &mut |m| match m {
        Ok(m) => tally.add(&m, true),
        Err((location, why)) => tally.unreadable(location, why),
    });
    let survey = tally.finish(vec!["fuzz".into()]);
    let _ = text::render(&survey);
    let _ = html::render(&survey);
}
