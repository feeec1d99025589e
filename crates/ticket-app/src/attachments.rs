//! Files customers send: stored content-addressed (by SHA-256) in a folder outside the event
//! store, so events stay small and the same file sent twice is kept once. Events carry an
//! [`AttachmentRef`]. Only allowed types, by what the bytes are (not what the sender claims),
//! and only up to a size cap, get in.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use ticket_domain::vocabulary::AttachmentRef;

/// Why a file was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is {size} bytes; at most {max} are allowed")]
    TooLarge { size: usize, max: usize },
    #[error("files of type {media_type} are not accepted; allowed: {allowed}")]
    TypeNotAllowed { media_type: String, allowed: String },
    #[error("the file is empty")]
    Empty,
    #[error("the file could not be stored: {0}")]
    Io(String),
}

/// The default allow-list: documents and pictures customers send with complaints.
pub const ALLOWED_TYPES_DEFAULT: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "text/plain",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

pub const ATTACHMENT_BYTES_MAX_DEFAULT: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct AttachmentStore {
    root: PathBuf,
    pub max_bytes: usize,
    pub allowed: Vec<String>,
}

impl AttachmentStore {
    pub fn new(root: impl Into<PathBuf>, max_bytes: usize, allowed: Vec<String>) -> Self {
        Self { root: root.into(), max_bytes, allowed }
    }

    /// What the bytes are: their signature decides, never the sender's claim; text is text
    /// only if it is UTF-8 without NULs; a ZIP is an Office document only if it says so inside.
    pub fn media_type(bytes: &[u8]) -> String {
        let starts = |magic: &[u8]| bytes.starts_with(magic);
        if starts(b"%PDF-") {
            "application/pdf".into()
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            "image/png".into()
        } else if starts(b"\xff\xd8\xff") {
            "image/jpeg".into()
        } else if starts(b"GIF87a") || starts(b"GIF89a") {
            "image/gif".into()
        } else if starts(b"PK\x03\x04") {
            let inside = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            if inside(b"word/") {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into()
            } else if inside(b"xl/") {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into()
            } else {
                "application/zip".into()
            }
        } else if std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0) {
            "text/plain".into()
        } else {
            "application/octet-stream".into()
        }
    }

    /// Checks and stores a file; the same bytes are stored once.
    pub async fn put(&self, file_name: &str, bytes: &[u8]) -> Result<AttachmentRef, AttachmentError> {
        if bytes.is_empty() {
            return Err(AttachmentError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(AttachmentError::TooLarge { size: bytes.len(), max: self.max_bytes });
        }
        let media_type = Self::media_type(bytes);
        if !self.allowed.iter().any(|allowed| *allowed == media_type) {
            return Err(AttachmentError::TypeNotAllowed { media_type, allowed: self.allowed.join(", ") });
        }
        let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let path = self.path(&sha256);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let io = |e: std::io::Error| AttachmentError::Io(e.to_string());
            let dir = path.parent().map(ToOwned::to_owned).unwrap_or_else(|| self.root.clone());
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            let temporary = dir.join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&temporary, bytes).await.map_err(io)?;
            tokio::fs::rename(&temporary, &path).await.map_err(io)?;
        }
        AttachmentRef::new(&sha256, bytes.len() as u64, &media_type, file_name)
            .map_err(|e| AttachmentError::Io(e.to_string()))
    }

    /// The stored bytes of a file, if it is here.
    pub async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, AttachmentError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        match tokio::fs::read(self.path(sha256)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AttachmentError::Io(e.to_string())),
        }
    }

    /// Deletes a stored file (an erasure); true when there was one.
    pub async fn delete(&self, sha256: &str) -> Result<bool, AttachmentError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        match tokio::fs::remove_file(self.path(sha256)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AttachmentError::Io(e.to_string())),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> AttachmentStore {
        AttachmentStore::new(dir, 1024, ALLOWED_TYPES_DEFAULT.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn the_same_bytes_are_stored_once_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let a = store.put("a.pdf", b"%PDF-1.7 hello").await.unwrap();
        let b = store.put("copy.pdf", b"%PDF-1.7 hello").await.unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!((a.media_type.as_str(), a.size, b.file_name.as_str()), ("application/pdf", 14, "copy.pdf"));
        assert_eq!(store.get(&a.sha256).await.unwrap().as_deref(), Some(&b"%PDF-1.7 hello"[..]));
        let files = walk(dir.path());
        assert_eq!(files, 1, "one file for two uploads of the same bytes");
        assert_eq!(store.get(&"0".repeat(64)).await.unwrap(), None);
        assert_eq!(store.get("../../etc/passwd").await.unwrap(), None);
    }

    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk(&p) } else { 1 }).sum()
    }

    #[tokio::test]
    async fn type_and_size_are_checked_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // An executable claiming to be a PDF is what its bytes say it is.
        let error = store.put("x.pdf", b"MZ\x90\x00\x03\x00\x00\x00").await.unwrap_err();
        assert!(matches!(error, AttachmentError::TypeNotAllowed { .. }), "{error}");
        assert!(matches!(
            store.put("big.txt", &[b'a'; 1025]).await,
            Err(AttachmentError::TooLarge { size: 1025, max: 1024 })
        ));
        assert_eq!(store.put("e.txt", b"").await, Err(AttachmentError::Empty));
        let text = store.put("notes.txt", "árvíztűrő".as_bytes()).await.unwrap();
        assert_eq!(text.media_type, "text/plain");
    }
}
