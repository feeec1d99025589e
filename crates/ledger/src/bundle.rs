//! Proof bundles: what the API exports for an auditor to check offline, with no database.
//!
//! - [`ProofBundle`]: a ticket's events, each with its inclusion proof against one signed
//!   checkpoint (`GET /api/v1/audit/tickets/{id}/proof`, and each line of the audit export).
//! - [`ConsistencyBundle`]: two signed checkpoints and the proof that the older tree is a
//!   prefix of the newer (`GET /api/v1/audit/consistency`).
//!
//! [`verify`] checks either, recomputing every leaf from the events as given.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::leaf::LeafEvent;
use crate::tree::{check_consistency, check_inclusion};
use crate::{hash_text, parse_hash};

pub const PROOF_FORMAT: &str = "ticketd-ledger-proof/1";
pub const CONSISTENCY_FORMAT: &str = "ticketd-ledger-consistency/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// [`PROOF_FORMAT`].
    pub format: String,
    /// The stream the events are of (`ticket-<uuid>`).
    pub stream: String,
    /// The signed checkpoint the proofs are against.
    pub checkpoint: String,
    /// Every event of the stream the checkpoint covers, in order.
    pub events: Vec<ProvenEvent>,
    /// Versions of the stream recorded after the checkpoint (proven by a later one).
    #[serde(default)]
    pub not_yet_in_checkpoint: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProvenEvent {
    /// The event's place in the ledger (0-based).
    pub leaf_index: u64,
    /// RFC 6962 leaf hash of the event's canonical form, base64.
    pub leaf_hash: String,
    /// The audit path from the leaf to the checkpoint's root, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// The event as stored, in the ledger's canonical fields.
    pub event: LeafEvent,
    /// When `ticketd migrate` sealed this event's personal part in place after the ledger
    /// recorded it: the leaf it was recorded with (base64), which the proof is of. A
    /// `PersonalDataSealed` event of the same stream, in this bundle, must list the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_before: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsistencyBundle {
    /// [`CONSISTENCY_FORMAT`].
    pub format: String,
    pub old_size: u64,
    pub new_size: u64,
    /// The older tree's root, base64 (and its signed checkpoint, when one was signed at that size).
    pub old_root: String,
    pub old_checkpoint: Option<String>,
    /// The newer signed checkpoint.
    pub new_checkpoint: String,
    pub proof: Vec<String>,
}

/// What a bundle proved.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Events {
        stream: String,
        events: usize,
        checkpoint: Checkpoint,
        not_yet_in_checkpoint: usize,
        /// Events sealed in place by `ticketd migrate`, each listed by a proven record.
        sealed_in_place: usize,
    },
    Consistency {
        old_size: u64,
        new_size: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a proof bundle: {0}")]
    Malformed(String),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("{0}")]
    Failed(String),
}

fn hashes(texts: &[String]) -> Result<Vec<crate::Hash>, BundleError> {
    texts.iter().map(|t| parse_hash(t).map_err(BundleError::Malformed)).collect()
}

/// Checks a bundle's JSON (either kind) with the ledger's public key.
pub fn verify(json: &str, public_key: &str) -> Result<Verified, BundleError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| BundleError::Malformed(e.to_string()))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(PROOF_FORMAT) => {
            let bundle: ProofBundle =
                serde_json::from_value(value).map_err(|e| BundleError::Malformed(e.to_string()))?;
            verify_events(&bundle, public_key)
        }
        Some(CONSISTENCY_FORMAT) => {
            let bundle: ConsistencyBundle =
                serde_json::from_value(value).map_err(|e| BundleError::Malformed(e.to_string()))?;
            verify_consistency(&bundle, public_key)
        }
        other => Err(BundleError::Malformed(format!(
            "its format is {other:?}, not \"{PROOF_FORMAT}\" or \"{CONSISTENCY_FORMAT}\""
        ))),
    }
}

/// Every event recomputes to a leaf the checkpoint holds, and the stream's versions run 1, 2, …
/// without a gap (nothing of the stream was left out up to the last one given).
pub fn verify_events(bundle: &ProofBundle, public_key: &str) -> Result<Verified, BundleError> {
    let checkpoint = checkpoint::open(&bundle.checkpoint, public_key)?;
    // What `ticketd migrate` recorded it sealed in place: (position, event id) → (leaf before,
    // leaf after). Each record is an event of the bundle, proven below like every other.
    let mut sealed: std::collections::HashMap<(String, String), (String, String)> = Default::default();
    for proven in bundle.events.iter().filter(|p| p.event.event_type == "PersonalDataSealed") {
        for entry in proven.event.payload.get("events").and_then(|e| e.as_array()).into_iter().flatten() {
            let text =
                |key: &str| entry.get(key).map(|v| v.to_string().trim_matches('"').to_owned()).unwrap_or_default();
            sealed.insert((text("position"), text("event_id")), (text("leaf_before"), text("leaf_after")));
        }
    }
    let mut sealed_in_place = 0;
    let mut last_leaf: Option<u64> = None;
    for (expected_version, proven) in (1u64..).zip(&bundle.events) {
        let event = &proven.event;
        let name = format!("version {} (position {}, {})", event.version, event.position, event.event_type);
        if event.stream != bundle.stream {
            return Err(BundleError::Failed(format!("{name} is of stream {}, not {}", event.stream, bundle.stream)));
        }
        if event.version != expected_version {
            return Err(BundleError::Failed(format!(
                "the stream's version {expected_version} is missing (the next event given is {name})"
            )));
        }
        if last_leaf.is_some_and(|last| proven.leaf_index <= last) {
            return Err(BundleError::Failed(format!("{name} is not after the event before it in the ledger")));
        }
        last_leaf = Some(proven.leaf_index);
        let mut leaf = event.leaf_hash();
        if let Some(before) = &proven.leaf_before {
            let listed = sealed.get(&(event.position.clone(), event.event_id.to_string()));
            if listed != Some(&(before.clone(), hash_text(&leaf))) {
                return Err(BundleError::Failed(format!(
                    "{name} differs from the leaf the ledger recorded, and no PersonalDataSealed record of its stream lists that change"
                )));
            }
            leaf = parse_hash(before).map_err(BundleError::Malformed)?;
            sealed_in_place += 1;
        }
        if hash_text(&leaf) != proven.leaf_hash {
            return Err(BundleError::Failed(format!(
                "{name}: its content hashes to {}, not the leaf hash given ({})",
                hash_text(&leaf),
                proven.leaf_hash
            )));
        }
        let proof = hashes(&proven.inclusion_proof)?;
        if !check_inclusion(&proof, checkpoint.size, checkpoint.root, proven.leaf_index, leaf) {
            return Err(BundleError::Failed(format!(
                "{name} is not leaf {} of the signed tree of {} events: altered, or not the event that was recorded",
                proven.leaf_index, checkpoint.size
            )));
        }
    }
    Ok(Verified::Events {
        stream: bundle.stream.clone(),
        events: bundle.events.len(),
        not_yet_in_checkpoint: bundle.not_yet_in_checkpoint.len(),
        checkpoint,
        sealed_in_place,
    })
}

/// The new signed tree extends the old one (given as a signed checkpoint or a root).
pub fn verify_consistency(bundle: &ConsistencyBundle, public_key: &str) -> Result<Verified, BundleError> {
    let new = checkpoint::open(&bundle.new_checkpoint, public_key)?;
    let mut old_root = parse_hash(&bundle.old_root).map_err(BundleError::Malformed)?;
    if let Some(old) = &bundle.old_checkpoint {
        let old = checkpoint::open(old, public_key)?;
        if old.size != bundle.old_size {
            return Err(BundleError::Malformed("the old checkpoint's size is not old_size".into()));
        }
        old_root = old.root;
    }
    if new.size != bundle.new_size {
        return Err(BundleError::Malformed("the new checkpoint's size is not new_size".into()));
    }
    let proof = hashes(&bundle.proof)?;
    if !check_consistency(&proof, new.size, new.root, bundle.old_size, old_root) {
        return Err(BundleError::Failed(format!(
            "the signed tree of {} events does not extend the tree of {} events: the log was rewritten",
            new.size, bundle.old_size
        )));
    }
    Ok(Verified::Consistency { old_size: bundle.old_size, new_size: new.size })
}
