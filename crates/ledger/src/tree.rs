//! The RFC 6962 Merkle tree over the global order.
//!
//! Storage follows Go's `sumdb/tlog` (and `tlog_tiles`): the hash of every *complete* subtree is
//! stored once, when its last leaf arrives — the node at `level` L with index K covers leaves
//! `[K·2^L, (K+1)·2^L)`. A tree of any size, and any inclusion or consistency proof, is computed
//! from at most a few dozen of them. Level 0 are the leaf hashes.
//!
//! The writer keeps only the right frontier (the complete subtrees that make up the current
//! size, at most 64). Readers ask which stored hashes a question needs ([`Needed`]), fetch them
//! however they keep them, and answer it from a [`Hashes`] map.

use std::cell::RefCell;
use std::collections::HashMap;

use tlog_tiles::{EMPTY_HASH, Hash, HashReader};

/// A stored hash: the complete subtree at `level` with index `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn from_stored_index(stored: u64) -> Self {
        let (level, index) = tlog_tiles::split_stored_hash_index(stored);
        Self { level, index }
    }
    pub fn stored_index(self) -> u64 {
        tlog_tiles::stored_hash_index(self.level, self.index)
    }
}

/// The tree as the writer keeps it: its size and the roots of the complete subtrees that make
/// it up, largest (leftmost) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes whose hashes make up a tree of `size` leaves, left to right.
    pub fn nodes_for(size: u64) -> Vec<NodeId> {
        tlog_tiles::sub_tree_index(0, size, vec![]).into_iter().map(NodeId::from_stored_index).collect()
    }

    /// A frontier from the hashes of [`Self::nodes_for`]`(size)`, in that order.
    pub fn from_roots(size: u64, roots: Vec<Hash>) -> Result<Self, String> {
        let expected = Self::nodes_for(size).len();
        if roots.len() != expected {
            return Err(format!("a tree of {size} leaves has {expected} frontier nodes, not {}", roots.len()));
        }
        Ok(Self { size, roots })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns every node it completes (the leaf itself first, at level 0).
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut completed = vec![(NodeId { level: 0, index: self.size }, leaf)];
        let mut hash = leaf;
        let mut index = self.size;
        let mut level = 0u8;
        while index & 1 == 1 {
            let left = self.roots.pop().expect("a set low bit has a left sibling on the frontier");
            hash = tlog_tiles::node_hash(left, hash);
            index >>= 1;
            level += 1;
            completed.push((NodeId { level, index }, hash));
        }
        self.roots.push(hash);
        self.size += 1;
        completed
    }

    /// The RFC 6962 root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.roots.iter().rev();
        let Some(mut root) = hashes.next().copied() else { return EMPTY_HASH };
        for left in hashes {
            root = tlog_tiles::node_hash(*left, root);
        }
        root
    }
}

/// Which stored hashes a question needs.
pub struct Needed;

impl Needed {
    /// For the root hash of the tree of `size` leaves.
    pub fn tree_hash(size: u64) -> Vec<NodeId> {
        Frontier::nodes_for(size)
    }
    /// For the proof that the tree of `size` leaves holds leaf `leaf`.
    pub fn inclusion(size: u64, leaf: u64) -> Result<Vec<NodeId>, tlog_tiles::Error> {
        let recorder = Recorder::default();
        tlog_tiles::prove_record(size, leaf, &recorder)?;
        Ok(recorder.nodes())
    }
    /// For the proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
    pub fn consistency(new: u64, old: u64) -> Result<Vec<NodeId>, tlog_tiles::Error> {
        let recorder = Recorder::default();
        tlog_tiles::prove_tree(new, old, &recorder)?;
        Ok(recorder.nodes())
    }
}

/// A `HashReader` that notes what is asked and answers zeros: how [`Needed`] learns the indexes.
#[derive(Default)]
struct Recorder(RefCell<Vec<u64>>);

impl Recorder {
    fn nodes(self) -> Vec<NodeId> {
        self.0.into_inner().into_iter().map(NodeId::from_stored_index).collect()
    }
}

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash([0; 32]); indexes.len()])
    }
}

/// Stored hashes fetched for a question, answering it.
#[derive(Debug, Default, Clone)]
pub struct Hashes(pub HashMap<NodeId, Hash>);

impl HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|index| {
                self.0.get(&NodeId::from_stored_index(*index)).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Hashes {
    pub fn tree_hash(&self, size: u64) -> Result<Hash, tlog_tiles::Error> {
        tlog_tiles::tree_hash(size, self)
    }
    pub fn inclusion(&self, size: u64, leaf: u64) -> Result<Vec<Hash>, tlog_tiles::Error> {
        tlog_tiles::prove_record(size, leaf, self)
    }
    pub fn consistency(&self, new: u64, old: u64) -> Result<Vec<Hash>, tlog_tiles::Error> {
        tlog_tiles::prove_tree(new, old, self)
    }
}

/// The RFC 6962 leaf hash of `data` (`SHA-256(0x00 || data)`).
pub fn leaf_of(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data)
}

/// Checks that `leaf_hash` is leaf `leaf` of the tree of `size` leaves with root `root`.
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, leaf: u64, leaf_hash: Hash) -> bool {
    tlog_tiles::check_record(&proof.to_vec(), size, root, leaf, leaf_hash).is_ok()
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root`.
pub fn check_consistency(proof: &[Hash], new: u64, new_root: Hash, old: u64, old_root: Hash) -> bool {
    tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(i: u64) -> Hash {
        tlog_tiles::record_hash(&i.to_be_bytes())
    }

    /// RFC 6962's MTH, written out as the RFC says it, to hold the frontier to.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = (n as u64 - 1).next_power_of_two().max(1) as usize;
                let k = if k >= n { k / 2 } else { k };
                tlog_tiles::node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    fn build(n: u64) -> (Frontier, Hashes) {
        let mut frontier = Frontier::new();
        let mut stored = Hashes::default();
        for i in 0..n {
            stored.0.extend(frontier.push(leaf(i)));
        }
        (frontier, stored)
    }

    proptest! {
        #[test]
        fn the_frontier_root_is_rfc_6962s_root(n in 0u64..300) {
            let leaves: Vec<Hash> = (0..n).map(leaf).collect();
            let (frontier, stored) = build(n);
            prop_assert_eq!(frontier.root(), mth(&leaves));
            prop_assert_eq!(stored.tree_hash(n).unwrap(), mth(&leaves));
            // The frontier comes back from its stored nodes.
            let roots = Frontier::nodes_for(n).iter().map(|node| stored.0[node]).collect();
            prop_assert_eq!(Frontier::from_roots(n, roots).unwrap(), frontier);
        }

        #[test]
        fn proofs_from_stored_nodes_check_and_fail_on_any_other_leaf(n in 1u64..200, pick in 0u64..1000, old_pick in 0u64..1000) {
            let (frontier, stored) = build(n);
            let root = frontier.root();
            let i = pick % n;
            let needed = Needed::inclusion(n, i).unwrap();
            let fetched = Hashes(needed.iter().map(|node| (*node, stored.0[node])).collect());
            let proof = fetched.inclusion(n, i).unwrap();
            prop_assert!(check_inclusion(&proof, n, root, i, leaf(i)));
            prop_assert!(!check_inclusion(&proof, n, root, i, leaf(i + 1)));
            let old = 1 + old_pick % n;
            let needed = Needed::consistency(n, old).unwrap();
            let fetched = Hashes(needed.iter().map(|node| (*node, stored.0[node])).collect());
            let proof = fetched.consistency(n, old).unwrap();
            let old_root = stored.tree_hash(old).unwrap();
            prop_assert!(check_consistency(&proof, n, root, old, old_root));
            prop_assert!(!check_consistency(&proof, n, root, old, leaf(7)));
        }
    }
}
