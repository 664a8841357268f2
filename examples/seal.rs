//! Benchmark helper (not shipped): encrypts standard input to a certificate with Sequoia,
//! as SEIPD v2 with the AEAD mode given (ocb, eax, gcm), to standard output.
//!
//!   cargo run --release --example seal -- CERT ocb < plain > message.pgp

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
    let message = Encryptor::for_recipients(message, recipients)
        .aead_algo(aead)
        .build()?;
    let mut literal = LiteralWriter::new(message).build()?;
    io::copy(&mut io::stdin().lock(), &mut literal)?;
    literal.finalize()?;
    io::stdout().flush()?;
    Ok(())
}
