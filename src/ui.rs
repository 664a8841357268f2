//! Interaction with the person at the keyboard, kept behind one trait so the core never
//! touches a terminal. The CLI's implementation (pinentry, the terminal, gpg's loopback
//! protocol) is the `prompt` module; tests answer from data.

use secrecy::SecretString;

use crate::error::Result;

pub trait Interaction {
    /// The user PIN for card `ident`, which has `tries_left` tries left.
    fn user_pin(&mut self, ident: &str, tries_left: u8) -> Result<SecretString>;
    /// The card waits for a touch before it decrypts.
    fn touch(&mut self, ident: &str);
    /// The card answered after [`touch`](Self::touch): whatever asked for it can go.
    fn touch_done(&mut self) {}
    /// Something the user should know that is not an error.
    fn note(&mut self, message: &str);
}
