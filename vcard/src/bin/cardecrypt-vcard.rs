//! Attaches a virtual OpenPGP card to pcscd through vsmartcard's vpcd driver.
//!
//! Test use only: the card's RNG is seeded with a constant.

use std::{path::PathBuf, process::ExitCode};

use cardecrypt_vcard::{vpcd, Config, VirtualCard};
use clap::Parser;

/// Attach a virtual OpenPGP card (opcard, test keys only) to pcscd via vpcd. Runs until killed.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Keep keys, PINs and card data in this folder across restarts (default: RAM only)
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Card serial number, 8 hex digits; the card's ident becomes FFFE:<serial>
    #[arg(long, value_name = "HEX8", default_value = "00000001", value_parser = parse_serial)]
    serial: u32,
    /// vpcd's TCP port on 127.0.0.1
    #[arg(long, value_name = "N", default_value_t = 35963)]
    port: u16,
    /// Keep the number of APDUs answered so far in FILE (for benchmarks)
    #[arg(long, value_name = "FILE")]
    count_apdus: Option<PathBuf>,
    /// Fault tests: exit (as a card pulled out of the reader) when an APDU with this
    /// instruction byte arrives, before answering it; e.g. 2A for PSO:DECIPHER
    #[arg(long, value_name = "HEX2", value_parser = parse_ins)]
    vanish_at_ins: Option<u8>,
    /// Behave like an OpenPGP card before 3.0 on one point: refuse VERIFY with P1=FF (reset
    /// a PIN's verified state) with 6A86
    #[arg(long)]
    no_pin_reset: bool,
    /// Answer PSO (decrypt, sign) only after MS milliseconds, as a card does that waits for
    /// its owner's touch
    #[arg(long, value_name = "MS")]
    touch_delay_ms: Option<u64>,
}

fn parse_ins(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s, 16).map_err(|e| e.to_string())
}

fn parse_serial(s: &str) -> Result<u32, String> {
    if s.len() != 8 {
        return Err("expected exactly 8 hex digits".into());
    }
    u32::from_str_radix(s, 16).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        serial: args.serial,
        state_dir: args.state,
    };
    let card = match VirtualCard::start(config) {
        Ok(card) => card,
        Err(e) => {
            eprintln!("cardecrypt-vcard: cannot start the card: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = format!("127.0.0.1:{}", args.port);
    let message = format!(
        "cardecrypt-vcard: card {} attached to vpcd at {addr}",
        card.ident()
    );
    let mut announced = false;
    let mut count: u64 = 0;
    let count_file = args.count_apdus;
    let vanish = args.vanish_at_ins;
    let no_pin_reset = args.no_pin_reset;
    let touch_delay = args.touch_delay_ms.map(std::time::Duration::from_millis);
    let hooks = vpcd::Hooks {
        before_apdu: Box::new(move |apdu: &[u8]| {
            if vanish.is_some() && apdu.get(1).copied() == vanish {
                eprintln!("cardecrypt-vcard: vanishing at INS {:02X}", apdu[1]);
                std::process::exit(0);
            }
            if let (Some(delay), Some(0x2A)) = (touch_delay, apdu.get(1).copied()) {
                std::thread::sleep(delay);
            }
            let pin_reset = apdu.get(1..3) == Some(&[0x20, 0xFF][..]);
            (no_pin_reset && pin_reset).then(|| vec![0x6A, 0x86])
        }),
        on_connected: Box::new(move || {
            if !announced {
                eprintln!("{message}");
                announced = true;
            }
        }),
        on_apdu: Box::new(move || {
            count += 1;
            if let Some(f) = &count_file {
                let _ = std::fs::write(f, count.to_string());
            }
        }),
    };
    vpcd::serve_forever(&card, &addr, hooks)
}
