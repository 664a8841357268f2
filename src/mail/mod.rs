//! What mail clients need around decryption: gpg-style status lines (PGP/MIME handling and
//! header protection come later).

pub mod status;
