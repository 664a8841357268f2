//! Whole messages (RFC 5322): PGP/MIME, inline PGP, header protection.

pub mod message;
pub mod mime;
