//! Off-chain Merkle tree over reward leaves, with the program's hashing
//! ([`crate::protocol::node_hash`]). An odd node at the end of a level is carried up
//! unchanged, so its proof simply has no sibling at that level.

use crate::protocol::{node_hash, Hash32};

#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// levels[0] are the leaf hashes; the last level holds the root alone.
    levels: Vec<Vec<Hash32>>,
}

impl MerkleTree {
    /// `None` for an empty leaf list: an epoch always has at least one leaf.
    pub fn new(leaves: Vec<Hash32>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let level = levels.last().expect("non-empty by loop condition");
            let next = level.chunks(2).map(|pair| pair.get(1).map_or(pair[0], |right| node_hash(&pair[0], right))).collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    pub fn root(&self) -> Hash32 {
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or_default()
    }

    pub fn leaf_count(&self) -> usize {
        self.levels[0].len()
    }

    /// Sibling hashes from the leaf up; `None` when `index` is out of range.
    pub fn proof(&self, mut index: usize) -> Option<Vec<Hash32>> {
        if index >= self.leaf_count() {
            return None;
        }
        let mut proof = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(index ^ 1) {
                proof.push(*sibling);
            }
            index /= 2;
        }
        Some(proof)
    }
}
