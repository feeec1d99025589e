//! Where mail goes: an SMTP server (lettre: `smtp://host:port` plain, `?tls=required` for
//! STARTTLS, `smtps://` for TLS, `user:password@` for AUTH), or, when none is configured,
//! `.eml` files in a folder (the outbox folder a newcomer can open in any mail client).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a mail was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (the server is away, busy, or said "try later").
    #[error("{0}")]
    Transient(String),
    /// The server refused this mail for good (e.g. no such recipient).
    #[error("{0}")]
    Permanent(String),
}

#[derive(Clone)]
pub enum Transport {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, url_without_password: String },
    Directory(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Transport {
    /// SMTP at `url`; the transport connects lazily, at the first mail. Needs a Tokio runtime
    /// (its connection pool runs on it).
    pub fn smtp(url: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("'{}' is not an SMTP URL: {e}", redact(url)))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(Self::Smtp { transport, url_without_password: redact(url) })
    }

    pub fn directory(path: impl Into<PathBuf>) -> Self {
        Self::Directory(path.into())
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { url_without_password, .. } => format!("SMTP at {url_without_password}"),
            Self::Directory(path) => format!(".eml files in {}", path.display()),
        }
    }

    /// Delivers `message`. `name` names the file in a folder (the outbox row's id), so a
    /// retry overwrites rather than duplicates.
    pub async fn send(&self, message: &Message, name: &str) -> Result<(), SendError> {
        match self {
            Self::Smtp { transport, .. } => transport.send(message.clone()).await.map(drop).map_err(|error| {
                if error.is_permanent() {
                    SendError::Permanent(error.to_string())
                } else {
                    SendError::Transient(error.to_string())
                }
            }),
            Self::Directory(dir) => write_file(dir, name, &message.formatted())
                .await
                .map_err(|e| SendError::Transient(format!("cannot write to {}: {e}", dir.display()))),
        }
    }
}

/// Written whole or not at all: a temporary name first, then renamed.
async fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let temporary = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, dir.join(format!("{name}.eml"))).await
}

/// The URL with any password replaced, for logs and status pages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_never_reach_the_logs() {
        assert_eq!(redact("smtps://ann:s3cret@mail.example.com:465"), "smtps://ann:***@mail.example.com:465");
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        assert!(Transport::smtp("smtp://ann:pw@127.0.0.1:2525").unwrap().describe().contains("ann:***@"));
        assert!(Transport::smtp("ftp://x").is_err());
    }
}
