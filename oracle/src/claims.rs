//! Claims built from the oracle's posted proofs: for the owners who opted in to auto-claims
//! (the epoch job signs and sends them), and for a wallet claiming in the browser or by
//! Solana Pay (the oracle builds them unsigned, the owner's wallet simulates and signs).

use anchor_lang::prelude::Pubkey;
use anchor_lang::AccountDeserialize;
use ovpp::protocol::device_address;
use ovpp::state::{Device, DeviceStatus};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;
use solana_sdk::transaction::Transaction;

use crate::epoch::EpochTree;
use ovpp_chain::{Chain, ChainError};
use ovpp_wire::device::RegisteredDevice;

/// One device's claim: what it brings its owner and the instruction that claims it.
#[derive(Clone, Debug)]
pub struct DueClaim {
    pub device: Pubkey,
    pub owner: Pubkey,
    pub amount: u64,
    pub instruction: Instruction,
}

/// The claims due to `devices` in `tree`'s epoch, paid by `payer`: active on-chain, the
/// leaf above what was claimed. The tokens go to each device's owner on-chain.
pub async fn due(chain: &dyn Chain, tree: &EpochTree, devices: &[RegisteredDevice], payer: Pubkey) -> Result<Vec<DueClaim>, ChainError> {
    let mine: Vec<_> =
        devices.iter().filter_map(|d| tree.proof(&d.key).map(|(leaf, proof)| (Pubkey::new_from_array(d.key), leaf, proof))).collect();
    let addresses: Vec<Pubkey> = mine.iter().map(|(key, ..)| device_address(key).0).collect();
    let accounts = chain.get_accounts(&addresses).await?;
    Ok(mine
        .into_iter()
        .zip(accounts)
        .filter_map(|((device, leaf, proof), account)| {
            let on_chain = Device::try_deserialize(&mut account?.data.as_slice()).ok()?;
            (on_chain.status == DeviceStatus::Active && on_chain.claimed < leaf.cumulative_amount).then(|| DueClaim {
                device,
                owner: on_chain.owner,
                amount: leaf.cumulative_amount - on_chain.claimed,
                instruction: ovpp::client::claim(payer, &device, on_chain.owner, leaf, proof),
            })
        })
        .collect())
}

/// `claims` in as few unsigned transactions as fit a packet, each paid by `payer` with
/// `blockhash`: for a wallet to simulate and sign.
pub fn unsigned_transactions<'a>(claims: &'a [DueClaim], payer: &Pubkey, blockhash: Hash) -> Vec<(Transaction, &'a [DueClaim])> {
    ovpp_chain::packing::pack(claims, payer, |c| &c.instruction)
        .into_iter()
        .map(|group| {
            let instructions: Vec<Instruction> = group.iter().map(|c| c.instruction.clone()).collect();
            (Transaction::new_unsigned(Message::new_with_blockhash(&instructions, Some(payer), &blockhash)), group)
        })
        .collect()
}
