//! Key-encryption keys: read from a file or the environment, never stored in the database.
//!
//! The text holds one key a line, `ID BASE64` (32 bytes, standard base64), `#` starting a
//! comment. The first key wraps new data keys; the others only unwrap keys wrapped before a
//! rotation (`ticketd keys rotate` re-wraps every data key under a new first key, then drops
//! the old lines).

use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, OsRng, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("line {line} of the key-encryption keys: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("no key-encryption key given")]
    Empty,
    #[error("key-encryption key id '{0}' appears twice")]
    Duplicate(String),
    #[error("data key {ticket} is wrapped by key-encryption key '{kek_id}', which the key file does not hold")]
    Unknown { ticket: uuid::Uuid, kek_id: String },
    #[error("data key {0} does not unwrap: the key file is not the one it was wrapped with, or the row was altered")]
    Unwrap(uuid::Uuid),
    #[error("{0}")]
    Io(String),
}

/// One key-encryption key.
pub struct Kek {
    pub id: String,
    cipher: XChaCha20Poly1305,
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The key-encryption keys, the current one first.
#[derive(Debug)]
pub struct Keks {
    keys: Vec<Kek>,
}

const WRAP_CONTEXT: &str = "ticketd data key v1";

impl Keks {
    pub fn parse(text: &str) -> Result<Self, KekError> {
        let mut keys: Vec<Kek> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let syntax = |reason: &str| KekError::Syntax { line: index + 1, reason: reason.to_owned() };
            let mut parts = line.split_whitespace();
            let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(syntax("expected `ID BASE64`"));
            };
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || id.len() > 64 {
                return Err(syntax("an id is 1 to 64 letters, digits, '-', '_' or '.'"));
            }
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| syntax("the key is not base64"))?,
            );
            let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| syntax("a key is 32 bytes"))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KekError::Duplicate(id.to_owned()));
            }
            keys.push(Kek::new(id.to_owned(), bytes));
        }
        if keys.is_empty() {
            return Err(KekError::Empty);
        }
        Ok(Self { keys })
    }

    /// A new random key named `id`.
    pub fn generate(id: &str) -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self { keys: vec![Kek::new(id.to_owned(), bytes)] }
    }

    /// These keys with a new random current key in front (for a rotation).
    pub fn with_new_current(self, id: &str) -> Result<Self, KekError> {
        if self.keys.iter().any(|k| k.id == id) {
            return Err(KekError::Duplicate(id.to_owned()));
        }
        let mut keys = Self::generate(id).keys;
        keys.extend(self.keys);
        Ok(Self { keys })
    }

    /// The current key and those `in_use` still names (after a rotation re-wrapped every data
    /// key it found: a running instance may have wrapped new ones under an old key meanwhile).
    pub fn retaining(mut self, in_use: &[String]) -> Self {
        let mut index = 0;
        self.keys.retain(|key| {
            index += 1;
            index == 1 || in_use.contains(&key.id)
        });
        self
    }

    /// The text form, to write to the key file.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# ticketd key-encryption keys: ID BASE64, the current one first. Keep this file out of\n\
             # the database's backups; without it no personal data can be read.\n",
        );
        for key in &self.keys {
            text.push_str(&key.id);
            text.push(' ');
            text.push_str(&base64::engine::general_purpose::STANDARD.encode(*key.bytes));
            text.push('\n');
        }
        text
    }

    pub fn current(&self) -> &Kek {
        &self.keys[0]
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn get(&self, id: &str) -> Option<&Kek> {
        self.keys.iter().find(|k| k.id == id)
    }
}

impl Kek {
    fn new(id: String, bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self { id, cipher: XChaCha20Poly1305::new((&*bytes).into()), bytes }
    }

    /// Wraps a ticket's data key: nonce (24 bytes) then ciphertext, bound to the ticket.
    pub fn wrap(&self, ticket: uuid::Uuid, data_key: &[u8; 32]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let aad = format!("{WRAP_CONTEXT}\n{ticket}\n{}", self.id);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: data_key, aad: aad.as_bytes() })
            .expect("XChaCha20-Poly1305 encrypts any 32 bytes");
        let mut wrapped = nonce.to_vec();
        wrapped.extend(sealed);
        wrapped
    }

    pub fn unwrap(&self, ticket: uuid::Uuid, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, KekError> {
        if wrapped.len() < 24 {
            return Err(KekError::Unwrap(ticket));
        }
        let (nonce, sealed) = wrapped.split_at(24);
        let aad = format!("{WRAP_CONTEXT}\n{ticket}\n{}", self.id);
        let opened = Zeroizing::new(
            self.cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: aad.as_bytes() })
                .map_err(|_| KekError::Unwrap(ticket))?,
        );
        let key: [u8; 32] = opened.as_slice().try_into().map_err(|_| KekError::Unwrap(ticket))?;
        Ok(Zeroizing::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text_and_wrap_what_they_unwrap() {
        let keks = Keks::generate("k1").with_new_current("k2").unwrap();
        let text = keks.to_text();
        let read = Keks::parse(&text).unwrap();
        assert_eq!(read.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        let ticket = uuid::Uuid::now_v7();
        let wrapped = read.current().wrap(ticket, &[7; 32]);
        assert_eq!(*keks.current().unwrap(ticket, &wrapped).unwrap(), [7; 32]);
        // Bound to the ticket and to the key: another ticket's row or another key fails.
        assert!(keks.current().unwrap(uuid::Uuid::now_v7(), &wrapped).is_err());
        assert!(keks.get("k1").unwrap().unwrap(ticket, &wrapped).is_err());
    }

    #[test]
    fn bad_key_text_is_refused_with_its_line() {
        assert!(matches!(Keks::parse("# nothing\n"), Err(KekError::Empty)));
        assert!(matches!(Keks::parse("k1 notbase64!\n"), Err(KekError::Syntax { line: 1, .. })));
        assert!(matches!(Keks::parse("\nk1 AAAA\n"), Err(KekError::Syntax { line: 2, .. })));
        let line = Keks::generate("a").to_text();
        let key_line = line.lines().last().unwrap();
        assert!(matches!(Keks::parse(&format!("{key_line}\n{key_line}\n")), Err(KekError::Duplicate(_))));
    }
}
