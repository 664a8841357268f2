//! Interaction with the person at the keyboard, kept behind one trait so the core never
//! touches a terminal: the CLI asks on the controlling terminal, tests answer from data.

use secrecy::SecretString;

use crate::error::{Error, Result};

pub trait Interaction {
    /// The user PIN for card `ident`, which has `tries_left` tries left.
    fn user_pin(&mut self, ident: &str, tries_left: u8) -> Result<SecretString>;
    /// The card waits for a touch before it decrypts.
    fn touch(&mut self, ident: &str);
    /// Something the user should know that is not an error.
    fn note(&mut self, message: &str);
}

/// Prompts on the controlling terminal (never stdin: mail clients own it); notes on stderr.
pub struct Terminal;

impl Interaction for Terminal {
    fn user_pin(&mut self, ident: &str, tries_left: u8) -> Result<SecretString> {
        let prompt = format!("PIN for card {ident} ({tries_left} tries left): ");
        match rpassword::prompt_password(prompt) {
            Ok(pin) => Ok(SecretString::from(pin)),
            Err(e) => Err(Error::PinUnavailable(format!(
                "and there is no terminal to ask for it ({e})"
            ))),
        }
    }

    fn touch(&mut self, ident: &str) {
        eprintln!("cardecrypt: touch your card {ident} to decrypt");
    }

    fn note(&mut self, message: &str) {
        eprintln!("cardecrypt: {message}");
    }
}
