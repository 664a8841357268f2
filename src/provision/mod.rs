//! Putting keys on a card and managing it: everything that needs the admin PIN.
//! - [`upload`]: keys from a secret key file onto the card ([`choose`]: which key goes where)
//! - [`generate`]: keys generated on the card
//! - [`admin`]: PINs, cardholder data, touch policies, KDF, factory reset

pub mod admin;
pub mod choose;
pub mod generate;
pub mod upload;

pub use admin::{change_pin, enable_kdf, factory_reset, set, PinChange, Setting};
pub use generate::{generate, slot_keys, supported_algorithms, KeyAlgo};
pub use upload::*;
