//! Property tests of the off-chain Merkle tree against the program's own proof check.

use anchor_lang::prelude::Pubkey;
use ovpp::merkle::MerkleTree;
use ovpp::protocol::{leaf_hash, root_from_proof, Hash32, RewardLeaf};
use proptest::prelude::*;

fn leaves(n: usize, seed: u64) -> Vec<Hash32> {
    (0..n as u64)
        .map(|i| {
            let key = Pubkey::new_from_array(solana_sha256_hasher::hashv(&[&seed.to_le_bytes(), &i.to_le_bytes()]).to_bytes());
            let leaf = RewardLeaf { epoch: seed % 1000 + 1, cumulative_amount: i * 7 + seed, ..RewardLeaf::default() };
            leaf_hash(&ovpp::ID, &key, &leaf)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every leaf of a random tree (1 to 10^4 leaves, odd sizes included) verifies against
    /// the root, and flipping any one bit of the leaf, of a sibling or of the root fails.
    #[test]
    fn every_leaf_verifies_and_any_flipped_bit_fails(
        n in prop_oneof![1usize..=64, 65usize..=10_000],
        seed in any::<u64>(),
        pick in any::<prop::sample::Index>(),
        bit in 0usize..256,
        flip_at in any::<prop::sample::Index>(),
    ) {
        let hashes = leaves(n, seed);
        let tree = MerkleTree::new(hashes.clone()).unwrap();
        let root = tree.root();
        for (i, hash) in hashes.iter().enumerate() {
            let proof = tree.proof(i).unwrap();
            prop_assert!(proof.len() <= 14, "depth of 10^4 leaves is 14");
            prop_assert_eq!(root_from_proof(*hash, &proof), root);
        }

        let i = pick.index(n);
        let proof = tree.proof(i).unwrap();
        let flip = |h: &mut Hash32| h[bit / 8] ^= 1 << (bit % 8);
        let mut leaf = hashes[i];
        flip(&mut leaf);
        prop_assert_ne!(root_from_proof(leaf, &proof), root);
        if !proof.is_empty() {
            let mut bad = proof.clone();
            flip(&mut bad[flip_at.index(proof.len())]);
            prop_assert_ne!(root_from_proof(hashes[i], &bad), root);
        }
        let mut bad_root = root;
        flip(&mut bad_root);
        prop_assert_ne!(root_from_proof(hashes[i], &proof), bad_root);
    }

    /// A proof for one leaf never verifies another leaf.
    #[test]
    fn a_proof_is_bound_to_its_leaf(n in 2usize..=500, seed in any::<u64>(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let hashes = leaves(n, seed);
        let tree = MerkleTree::new(hashes.clone()).unwrap();
        let (a, b) = (a.index(n), b.index(n));
        prop_assume!(a != b);
        prop_assert_ne!(root_from_proof(hashes[b], &tree.proof(a).unwrap()), tree.root());
    }
}

#[test]
fn edge_cases() {
    assert!(MerkleTree::new(vec![]).is_none());
    let one = leaves(1, 3);
    let tree = MerkleTree::new(one.clone()).unwrap();
    assert_eq!(tree.root(), one[0]);
    assert_eq!(tree.proof(0), Some(vec![]));
    assert_eq!(tree.proof(1), None);
    // A node can never pass as a leaf: leaves and nodes hash under different prefixes.
    let three = leaves(3, 4);
    let tree = MerkleTree::new(three.clone()).unwrap();
    let inner = ovpp::protocol::node_hash(&three[0], &three[1]);
    assert_eq!(root_from_proof(inner, &[three[2]]), tree.root());
    assert_ne!(inner, three[0]);
}

/// The leaf hash commits to every field and to the program id.
#[test]
fn leaf_hash_commits_to_every_field() {
    let key = Pubkey::new_unique();
    let base = RewardLeaf {
        epoch: 5,
        cumulative_amount: 10,
        reputation_bps: 100,
        epochs_active: 4,
        faults: 1,
        energy_delivered_wh: 7,
        flexibility_delivered_wh: 8,
    };
    let h = leaf_hash(&ovpp::ID, &key, &base);
    let variants = [
        RewardLeaf { epoch: 6, ..base },
        RewardLeaf { cumulative_amount: 11, ..base },
        RewardLeaf { reputation_bps: 101, ..base },
        RewardLeaf { epochs_active: 5, ..base },
        RewardLeaf { faults: 2, ..base },
        RewardLeaf { energy_delivered_wh: 8, ..base },
        RewardLeaf { flexibility_delivered_wh: 9, ..base },
    ];
    for v in variants {
        assert_ne!(leaf_hash(&ovpp::ID, &key, &v), h);
    }
    assert_ne!(leaf_hash(&Pubkey::new_unique(), &key, &base), h);
    assert_ne!(leaf_hash(&ovpp::ID, &Pubkey::new_unique(), &base), h);
}
