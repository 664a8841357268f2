//! What mail clients need around decryption: gpg-style status lines, and whole messages
//! (PGP/MIME, inline PGP, header protection).

pub mod message;
pub mod mime;
pub mod status;
