//! Signed checkpoints: the tree's size and root hash at an instant, in the C2SP `tlog-checkpoint`
//! format, signed as a C2SP signed note with ed25519.
//!
//! ```text
//! ticketd.example/ledger          <- origin: the key's name
//! 1048576                         <- tree size
//! 2p0i0aQ…=                       <- root hash, base64
//! time 2026-12-01T16:00:00.000000Z   <- extension line: when it was signed
//!
//! — ticketd.example/ledger Az3g…  <- signature line(s)
//! ```
//!
//! The private key file holds the note signer key (`PRIVATE+KEY+<name>+<id>+<base64>`); the
//! public verifier key (`<name>+<id>+<base64>`) is what auditors keep.

use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::Hash;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the public key is not a signed-note verifier key (<name>+<id>+<base64>): {0}")]
    PublicKey(String),
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint's signature does not verify with this public key: {0}")]
    Signature(String),
}

/// The ledger's signing key.
pub struct LedgerKey {
    signer: StandardSigner,
    name: String,
    public: String,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerKey").field("name", &self.name).field("public", &self.public).finish_non_exhaustive()
    }
}

impl LedgerKey {
    /// A new key named `name` (the checkpoints' origin, e.g. `support.example.com/ledger`):
    /// the private signer key text and the public verifier key text.
    pub fn generate(name: &str) -> Result<(String, String), CheckpointError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(CheckpointError::KeyFile {
                path: name.into(),
                reason: "a key name must be non-empty, without spaces or '+'".into(),
            });
        }
        Ok(signed_note::generate_key(&mut rand_core::OsRng, name))
    }

    /// The key from its private signer key text.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let signer = StandardSigner::new(text).map_err(|e| format!("not a signed-note private key: {e}"))?;
        // PRIVATE+KEY+<name>+<id>+<base64 of 0x01 || seed>: the public key is derived from the seed.
        let mut parts = text.splitn(5, '+');
        let (name, seed) = (parts.nth(2).unwrap_or_default(), parts.nth(1).unwrap_or_default());
        let bytes = base64::engine::general_purpose::STANDARD.decode(seed).map_err(|e| e.to_string())?;
        let seed: [u8; 32] = bytes.get(1..).and_then(|s| s.try_into().ok()).ok_or("not an ed25519 key")?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = signed_note::new_ed25519_verifier_key(name, &signing.verifying_key());
        Ok(Self { signer, name: name.to_owned(), public })
    }

    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let error = |reason: String| CheckpointError::KeyFile { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Self::from_text(&text).map_err(error)
    }

    /// The checkpoints' origin line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key auditors keep.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// A signed checkpoint of the tree of `size` leaves with `root`, at `at`.
    pub fn sign(&self, size: u64, root: Hash, at: DateTime<Utc>) -> String {
        let extension = format!("time {}\n", crate::leaf::instant_text(at));
        let checkpoint = tlog_tiles::Checkpoint::new(&self.name, size, root, &extension)
            .expect("a valid key name is a valid origin");
        let mut note = Note::new(&checkpoint.to_bytes(), &[]).expect("a checkpoint is a valid note text");
        note.add_sigs(&[&self.signer]).expect("a valid key name signs");
        String::from_utf8(note.to_bytes()).expect("a note is text")
    }
}

/// A checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// When it was signed (`None` for a checkpoint without our `time` line).
    pub signed_at: Option<DateTime<Utc>>,
    /// The signed note as it was given.
    pub note: String,
}

/// Checks a signed checkpoint against a verifier key and reads it.
pub fn open(note_text: &str, public_key: &str) -> Result<Checkpoint, CheckpointError> {
    let verifier = StandardVerifier::new(public_key.trim()).map_err(|e| CheckpointError::PublicKey(e.to_string()))?;
    let origin = signed_note::Verifier::name(&verifier).to_owned();
    // As kept by people: from a mail (CRLF line ends, the last line break dropped) or a file.
    // Only the text above the blank line is signed, so this changes nothing that is checked.
    let kept = format!("{}\n", note_text.replace("\r\n", "\n").trim_end());
    let note = Note::from_bytes(kept.as_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)])).map_err(|e| CheckpointError::Signature(e.to_string()))?;
    let checkpoint =
        tlog_tiles::Checkpoint::from_bytes(note.text()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if checkpoint.origin() != origin {
        return Err(CheckpointError::Malformed(format!(
            "its origin is '{}', the key's name '{origin}'",
            checkpoint.origin()
        )));
    }
    let signed_at = checkpoint
        .extension()
        .lines()
        .find_map(|line| line.strip_prefix("time "))
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc));
    Ok(Checkpoint { origin, size: checkpoint.size(), root: *checkpoint.hash(), signed_at, note: note_text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_with_its_public_key_only() {
        let (private, public) = LedgerKey::generate("support.example/ledger").unwrap();
        let key = LedgerKey::from_text(&private).unwrap();
        assert_eq!(key.public_key(), public, "the public key is derived from the private one");
        let at = DateTime::from_timestamp_micros(1_764_600_000_000_000).unwrap();
        let root = tlog_tiles::record_hash(b"x");
        let note = key.sign(42, root, at);
        assert!(note.starts_with("support.example/ledger\n42\n"), "{note}");
        assert!(note.contains("\ntime 2025-12-01T14:40:00.000000Z\n\n\u{2014} support.example/ledger "), "{note}");
        let opened = open(&note, &public).unwrap();
        assert_eq!((opened.size, opened.root, opened.signed_at), (42, root, Some(at)));

        let (_, other) = LedgerKey::generate("support.example/ledger").unwrap();
        assert!(open(&note, &other).is_err(), "another key of the same name does not verify it");
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(open(&forged, &public), Err(CheckpointError::Signature(_))));
    }
}
