//! Benchmark helper (not shipped): encrypts standard input to a certificate with Sequoia,
//! as SEIPD v2 with the AEAD mode given (ocb, eax, gcm), to standard output.
//!
//!   cargo run --release --example seal -- CERT ocb < plain > message.pgp
//!
//! With `SEAL_SESSION_KEY=HEX` (32 bytes), AES-256 with that session key, so that the
//! engine can be timed without a card (`cardecrypt --override-session-key-fd`).

use std::io::{self, Write};

use sequoia_openpgp::{
    cert::prelude::*,
    parse::Parse,
    policy::StandardPolicy,
    serialize::stream::{Encryptor, LiteralWriter, Message, Recipient},
    types::AEADAlgorithm,
    Cert,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cert), Some(mode)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: seal CERT ocb|eax|gcm < plain > message");
    };
    let cert = Cert::from_file(cert)?;
    let aead = match mode.as_str() {
        "ocb" => AEADAlgorithm::OCB,
        "eax" => AEADAlgorithm::EAX,
        "gcm" => AEADAlgorithm::GCM,
        m => anyhow::bail!("unknown mode {m}"),
    };
    let policy = StandardPolicy::new();
    let recipients: Vec<Recipient> = cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .for_transport_encryption()
        .map(|ka| Recipient::new(ka.valid_cert().features(), ka.key().key_handle(), ka.key()))
        .collect();
    let message = Message::new(io::BufWriter::with_capacity(1 << 20, io::stdout()));
    let encryptor = match std::env::var("SEAL_SESSION_KEY") {
        Ok(hex) => {
            let key: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                .collect::<Result<_, _>>()?;
            Encryptor::with_session_key(
                message,
                sequoia_openpgp::types::SymmetricAlgorithm::AES256,
                key.into(),
            )?
            .add_recipients(recipients)
        }
        Err(_) => Encryptor::for_recipients(message, recipients),
    };
    let message = encryptor.aead_algo(aead).build()?;
    let mut literal = LiteralWriter::new(message).build()?;
    io::copy(&mut io::stdin().lock(), &mut literal)?;
    literal.finalize()?;
    io::stdout().flush()?;
    Ok(())
}
