//! `ticketd ingest-maildir DIR`: takes in what a mail server delivered to a Maildir. Each
//! message is taken (see [`crate::intake`]) and then moved out of `new/`/`cur/` into the
//! Maildir++ folder `.processed` (or `.failed` when it cannot be read at all), so a second
//! run never sees it again. Should the process stop between taking and moving, the next run
//! takes the message again and intake recognises it as a duplicate.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::intake::{IntakeError, IntakeOutcome, MailIntake};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages taken (any outcome but unreadable).
    pub taken: usize,
    pub created: usize,
    pub replied: usize,
    pub duplicates: usize,
    pub ignored: usize,
    /// Unreadable messages, moved to `.failed`.
    pub failed: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages taken: {} new tickets, {} replies, {} already taken, {} automatic (ignored); {} unreadable (moved to .failed)",
            self.taken, self.created, self.replied, self.duplicates, self.ignored, self.failed
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("{0} is not a Maildir (it has neither new/ nor cur/)")]
    NotAMaildir(String),
    #[error("cannot use {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The store failed; the message stays where it is for the next run.
    #[error("stopped at {path}: {source}")]
    Intake { path: String, source: IntakeError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MaildirError + '_ {
    move |source| MaildirError::Io { path: path.display().to_string(), source }
}

/// A Maildir++ sub-folder (`DIR/.name/{cur,new,tmp}`), created when missing.
async fn folder(dir: &Path, name: &str) -> Result<PathBuf, MaildirError> {
    let folder = dir.join(name);
    for sub in ["cur", "new", "tmp"] {
        let path = folder.join(sub);
        tokio::fs::create_dir_all(&path).await.map_err(io(&path))?;
    }
    Ok(folder.join("cur"))
}

/// Takes every message waiting in `dir`, oldest name first.
pub async fn ingest(intake: &MailIntake, dir: &Path) -> Result<Report, MaildirError> {
    let sources: Vec<PathBuf> = ["new", "cur"].iter().map(|s| dir.join(s)).filter(|p| p.is_dir()).collect();
    if sources.is_empty() {
        return Err(MaildirError::NotAMaildir(dir.display().to_string()));
    }
    let mut files = Vec::new();
    for source in &sources {
        let mut entries = tokio::fs::read_dir(source).await.map_err(io(source))?;
        while let Some(entry) = entries.next_entry().await.map_err(io(source))? {
            let path = entry.path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut report = Report::default();
    for path in files {
        let bytes = tokio::fs::read(&path).await.map_err(io(&path))?;
        let destination = match intake.take(&bytes).await {
            Ok(outcome) => {
                report.taken += 1;
                match outcome {
                    IntakeOutcome::Created { number, .. } => {
                        report.created += 1;
                        tracing::info!(file = %path.display(), %number, "new ticket from e-mail");
                    }
                    IntakeOutcome::Replied { number, .. } => {
                        report.replied += 1;
                        tracing::info!(file = %path.display(), %number, "customer reply from e-mail");
                    }
                    IntakeOutcome::Duplicate { .. } => report.duplicates += 1,
                    IntakeOutcome::Ignored { reason } => {
                        report.ignored += 1;
                        tracing::info!(file = %path.display(), %reason, "e-mail ignored");
                    }
                }
                folder(dir, ".processed").await?
            }
            Err(IntakeError::Unreadable(reason)) => {
                report.failed += 1;
                tracing::warn!(file = %path.display(), %reason, "e-mail cannot be read; moved to .failed");
                folder(dir, ".failed").await?
            }
            Err(source) => return Err(MaildirError::Intake { path: path.display().to_string(), source }),
        };
        let Some(name) = path.file_name() else { continue };
        let target = destination.join(name);
        tokio::fs::rename(&path, &target).await.map_err(io(&target))?;
    }
    Ok(report)
}
