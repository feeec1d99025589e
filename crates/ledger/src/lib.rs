//! The tamper-evident ledger's pure parts, with no database: what an auditor's own tool needs.
//!
//! - [`leaf`]: the canonical form of a stored event (RFC 8785 JSON of every envelope field and
//!   the payload as stored) and its leaf hash.
//! - [`tree`]: the RFC 6962 Merkle tree over the global order, kept as its right frontier;
//!   which stored hashes a proof needs; proofs from hashes read elsewhere.
//! - [`checkpoint`]: signed checkpoints in the C2SP signed-note format (ed25519), the key file.
//! - [`bundle`]: the proof bundles the API exports, and their offline check.
//!
//! Hashing, the stored-hash layout and the proofs are `tlog_tiles` (a port of Go's
//! `golang.org/x/mod/sumdb/tlog`, the code behind the Go checksum database); the notes are
//! `signed_note` (a port of `golang.org/x/mod/sumdb/note`). Both are Cloudflare's (`azul`).

pub mod bundle;
pub mod checkpoint;
pub mod leaf;
pub mod tree;

pub use tlog_tiles::{EMPTY_HASH, Hash};

/// A hash as text: standard base64, as in checkpoints.
pub fn hash_text(hash: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash.0)
}

/// A hash from its base64 text.
pub fn parse_hash(text: &str) -> Result<Hash, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("'{text}' is not a base64 hash: {e}"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| format!("'{text}' is not a 32-byte hash"))?;
    Ok(Hash(bytes))
}

/// A hash from bytes read back from a database column.
pub fn hash_from_bytes(bytes: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(bytes).ok().map(Hash)
}
