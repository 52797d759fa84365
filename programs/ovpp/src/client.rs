//! Instruction builders for off-chain callers (CLI, relayer, tests): the one place that
//! knows each instruction's account list, so every caller sends the same transactions.

use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use anchor_spl::associated_token::get_associated_token_address_with_program_id;

use crate::instructions::{DeviceParams, InitializeArgs, PostEpochArgs};
use crate::protocol::{
    config_address, device_address, epoch_address, epoch_message, escrow_address, governance_address, mint_address, proposal_address,
    vault_address, vote_address, Hash32, RewardLeaf,
};
use crate::state::{DeviceKind, GovernanceChange, GovernanceParams};
use crate::{accounts, instruction, ID};
use anchor_lang::prelude::Pubkey;

const TOKEN_2022: Pubkey = anchor_spl::token_2022::ID;
const SYSTEM: Pubkey = anchor_lang::solana_program::system_program::ID;

fn ix(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction { program_id: ID, accounts: accounts.to_account_metas(None), data: data.data() }
}

/// The program's ProgramData account (upgradeable loader), whose upgrade authority must sign `initialize`.
pub fn program_data_address() -> Pubkey {
    Pubkey::find_program_address(&[ID.as_ref()], &anchor_lang::solana_program::bpf_loader_upgradeable::ID).0
}

/// The owner's OVPP token account (Token-2022 associated token account).
pub fn owner_token_account(owner: &Pubkey) -> Pubkey {
    get_associated_token_address_with_program_id(owner, &mint_address().0, &TOKEN_2022)
}

/// `getProgramAccounts` memcmp filters, as `(offset, bytes)`: every `Device` account, and
/// those of one owner, kind or region. Combine the first with any of the others.
pub fn device_discriminator_filter() -> (usize, Vec<u8>) {
    (0, <crate::state::Device as anchor_lang::Discriminator>::DISCRIMINATOR.to_vec())
}

pub fn device_owner_filter(owner: &Pubkey) -> (usize, Vec<u8>) {
    (crate::state::Device::OWNER_OFFSET, owner.to_bytes().to_vec())
}

pub fn device_kind_filter(kind: DeviceKind) -> (usize, Vec<u8>) {
    (crate::state::Device::KIND_OFFSET, vec![kind as u8])
}

pub fn device_region_filter(region: &[u8; 8]) -> (usize, Vec<u8>) {
    (crate::state::Device::REGION_OFFSET, region.to_vec())
}

pub fn initialize(authority: Pubkey, args: InitializeArgs) -> Instruction {
    ix(
        accounts::Initialize {
            authority,
            config: config_address().0,
            mint: mint_address().0,
            program_data: program_data_address(),
            token_program: TOKEN_2022,
            system_program: SYSTEM,
        },
        instruction::Initialize { args },
    )
}

fn config_admin(authority: Pubkey) -> accounts::ConfigAdmin {
    accounts::ConfigAdmin { authority, config: config_address().0 }
}

pub fn set_oracle_set(authority: Pubkey, oracles: Vec<Pubkey>, threshold: u8) -> Instruction {
    ix(config_admin(authority), instruction::SetOracleSet { oracles, threshold })
}

pub fn set_emission_cap(authority: Pubkey, emission_cap_per_epoch: u64) -> Instruction {
    ix(config_admin(authority), instruction::SetEmissionCap { emission_cap_per_epoch })
}

pub fn set_epoch_length(authority: Pubkey, epoch_length_secs: u32) -> Instruction {
    ix(config_admin(authority), instruction::SetEpochLength { epoch_length_secs })
}

pub fn set_paused(authority: Pubkey, paused: bool) -> Instruction {
    ix(config_admin(authority), instruction::SetPaused { paused })
}

pub fn propose_authority(authority: Pubkey, new_authority: Option<Pubkey>) -> Instruction {
    ix(config_admin(authority), instruction::ProposeAuthority { new_authority })
}

pub fn accept_authority(new_authority: Pubkey) -> Instruction {
    ix(accounts::AcceptAuthority { new_authority, config: config_address().0 }, instruction::AcceptAuthority {})
}

fn device_admin(authority: Pubkey, device_key: &Pubkey) -> accounts::DeviceAdmin {
    accounts::DeviceAdmin { authority, config: config_address().0, device: device_address(device_key).0 }
}

pub fn suspend_device(authority: Pubkey, device_key: &Pubkey, reason: u16) -> Instruction {
    ix(device_admin(authority, device_key), instruction::SuspendDevice { reason })
}

pub fn reinstate_device(authority: Pubkey, device_key: &Pubkey) -> Instruction {
    ix(device_admin(authority, device_key), instruction::ReinstateDevice {})
}

/// Must be signed by `owner` (who pays) and by `device_key`.
pub fn register_device(owner: Pubkey, device_key: Pubkey, kind: DeviceKind, params: DeviceParams) -> Instruction {
    ix(
        accounts::RegisterDevice {
            owner,
            device_key,
            config: config_address().0,
            device: device_address(&device_key).0,
            system_program: SYSTEM,
        },
        instruction::RegisterDevice { kind, params },
    )
}

fn owner_device(owner: Pubkey, device_key: &Pubkey) -> accounts::OwnerDevice {
    accounts::OwnerDevice { owner, config: config_address().0, device: device_address(device_key).0 }
}

pub fn update_device(owner: Pubkey, device_key: &Pubkey, params: DeviceParams) -> Instruction {
    ix(owner_device(owner, device_key), instruction::UpdateDevice { params })
}

pub fn transfer_device(owner: Pubkey, device_key: &Pubkey, new_owner: Pubkey) -> Instruction {
    ix(owner_device(owner, device_key), instruction::TransferDevice { new_owner })
}

pub fn retire_device(owner: Pubkey, device_key: &Pubkey) -> Instruction {
    ix(owner_device(owner, device_key), instruction::RetireDevice {})
}

/// The bytes each oracle signs for `args`.
pub fn epoch_message_for(args: &PostEpochArgs) -> [u8; crate::protocol::EPOCH_MESSAGE_LEN] {
    epoch_message(&ID, &config_address().0, args.epoch, &args.root, args.cumulative_total, args.leaf_count, &args.report_hash)
}

/// The instructions of a posting transaction: one Ed25519 precompile instruction carrying
/// every `(oracle pubkey, signature)` over the epoch message, then `post_epoch`.
/// `None` when `signatures` is empty or too many for one instruction.
pub fn post_epoch(relayer: Pubkey, args: PostEpochArgs, signatures: &[([u8; 32], [u8; 64])]) -> Option<Vec<Instruction>> {
    let data = crate::ed25519::build_instruction_data(signatures, &epoch_message_for(&args))?;
    let verify = Instruction { program_id: solana_sdk_ids::ed25519_program::ID, accounts: vec![], data };
    let post = ix(
        accounts::PostEpoch {
            relayer,
            config: config_address().0,
            epoch: epoch_address(args.epoch).0,
            instructions: solana_sdk_ids::sysvar::instructions::ID,
            system_program: SYSTEM,
        },
        instruction::PostEpoch { args },
    );
    Some(vec![verify, post])
}

/// Anyone may send it (`payer` pays for the owner's token account if missing).
pub fn claim(payer: Pubkey, device_key: &Pubkey, owner: Pubkey, leaf: RewardLeaf, proof: Vec<Hash32>) -> Instruction {
    ix(
        accounts::Claim {
            payer,
            config: config_address().0,
            mint: mint_address().0,
            device: device_address(device_key).0,
            owner,
            owner_token_account: owner_token_account(&owner),
            token_program: TOKEN_2022,
            associated_token_program: anchor_spl::associated_token::ID,
            system_program: SYSTEM,
        },
        instruction::Claim { leaf, proof },
    )
}

/// Hands `Config` to governance (signed by the current authority, who pays).
pub fn init_governance(authority: Pubkey, params: GovernanceParams, emergency_pauser: Option<Pubkey>) -> Instruction {
    ix(
        accounts::InitGovernance {
            authority,
            config: config_address().0,
            mint: mint_address().0,
            governance: governance_address().0,
            vault: vault_address().0,
            token_program: TOKEN_2022,
            system_program: SYSTEM,
        },
        instruction::InitGovernance { params, emergency_pauser },
    )
}

fn locker() -> accounts::Locker {
    accounts::Locker {
        governance: governance_address().0,
        config: config_address().0,
        mint: mint_address().0,
        vault: vault_address().0,
        token_program: TOKEN_2022,
    }
}

/// Locks `amount` from the owner's OVPP account in a new escrow for `lock_secs`.
pub fn lock(owner: Pubkey, amount: u64, lock_secs: i64) -> Instruction {
    ix(
        accounts::Lock {
            owner,
            locker: locker(),
            escrow: escrow_address(&owner).0,
            owner_tokens: owner_token_account(&owner),
            system_program: SYSTEM,
        },
        instruction::Lock { amount, lock_secs },
    )
}

pub fn add_to_lock(owner: Pubkey, amount: u64, extend_secs: Option<i64>) -> Instruction {
    ix(
        accounts::AddToLock { owner, locker: locker(), escrow: escrow_address(&owner).0, owner_tokens: owner_token_account(&owner) },
        instruction::AddToLock { amount, extend_secs },
    )
}

pub fn withdraw(owner: Pubkey) -> Instruction {
    ix(
        accounts::Withdraw { owner, locker: locker(), escrow: escrow_address(&owner).0, owner_tokens: owner_token_account(&owner) },
        instruction::Withdraw {},
    )
}

/// `id` must be the governance's next proposal number (`Governance::proposal_count`).
pub fn propose(proposer: Pubkey, id: u64, change: GovernanceChange, description_hash: [u8; 32]) -> Instruction {
    ix(
        accounts::Propose {
            proposer,
            governance: governance_address().0,
            escrow: escrow_address(&proposer).0,
            proposal: proposal_address(id).0,
            system_program: SYSTEM,
        },
        instruction::Propose { change, description_hash },
    )
}

pub fn vote(voter: Pubkey, id: u64, support: bool) -> Instruction {
    let proposal = proposal_address(id).0;
    ix(
        accounts::CastVote {
            voter,
            escrow: escrow_address(&voter).0,
            proposal,
            vote: vote_address(&proposal, &voter).0,
            system_program: SYSTEM,
        },
        instruction::Vote { support },
    )
}

/// `device`: the device key of a `DeviceStatus` change (its account goes last).
pub fn execute(executor: Pubkey, id: u64, device: Option<&Pubkey>) -> Instruction {
    let mut ix = ix(
        accounts::Execute { executor, governance: governance_address().0, config: config_address().0, proposal: proposal_address(id).0 },
        instruction::Execute {},
    );
    if let Some(device) = device {
        ix.accounts.push(anchor_lang::solana_program::instruction::AccountMeta::new(device_address(device).0, false));
    }
    ix
}

pub fn emergency_pause(pauser: Pubkey) -> Instruction {
    ix(accounts::EmergencyPause { pauser, governance: governance_address().0, config: config_address().0 }, instruction::EmergencyPause {})
}
