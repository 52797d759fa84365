use anchor_lang::prelude::*;
use anchor_lang::solana_program::bpf_loader_upgradeable;
use anchor_lang::system_program::{transfer, Transfer};
use anchor_spl::token_2022::spl_token_2022::extension::ExtensionType;
use anchor_spl::token_2022::Token2022;
use anchor_spl::token_interface::spl_pod::optional_keys::OptionalNonZeroPubkey;
use anchor_spl::token_interface::spl_token_metadata_interface::state::TokenMetadata;
use anchor_spl::token_interface::{
    initialize_mint2, metadata_pointer_initialize, token_metadata_initialize, InitializeMint2, MetadataPointerInitialize,
    TokenMetadataInitialize,
};

use crate::errors::OvppError;
use crate::events::Initialized;
use crate::limits::{check_emission_cap, check_epoch_length, check_oracle_set, OVPP_DECIMALS};
use crate::pda::{create_pda, init_pda, mint_space};
use crate::protocol::{CONFIG_SEED, MINT_SEED};
use crate::state::{Config, RootEntry, ROOT_RING_LEN};

pub const TOKEN_NAME: &str = "OpenVPP";
pub const TOKEN_SYMBOL: &str = "OVPP";
pub const MAX_URI_LEN: usize = 200;
pub const CONFIG_VERSION: u8 = 1;

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct InitializeArgs {
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub epoch_length_secs: u32,
    pub emission_cap_per_epoch: u64,
    /// Token metadata JSON (logo, description) for wallets; may be empty.
    pub metadata_uri: String,
}

#[derive(Accounts)]
pub struct Initialize<'info> {
    /// Must be the program's upgrade authority, so nobody can front-run the deployer.
    #[account(mut)]
    pub authority: Signer<'info>,
    /// CHECK: the config PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [CONFIG_SEED], bump)]
    pub config: UncheckedAccount<'info>,
    /// The OVPP mint: Token-2022, `config` its mint authority, its metadata inside it.
    /// CHECK: the mint PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [MINT_SEED], bump)]
    pub mint: UncheckedAccount<'info>,
    #[account(
        seeds = [crate::ID.as_ref()],
        bump,
        seeds::program = bpf_loader_upgradeable::ID,
        constraint = program_data.upgrade_authority_address == Some(authority.key()) @ OvppError::NotUpgradeAuthority,
    )]
    pub program_data: Account<'info, ProgramData>,
    pub token_program: Program<'info, Token2022>,
    pub system_program: Program<'info, System>,
}

pub fn initialize_config(ctx: Context<Initialize>, args: InitializeArgs) -> Result<()> {
    check_oracle_set(&args.oracles, args.threshold)?;
    check_epoch_length(args.epoch_length_secs)?;
    check_emission_cap(args.emission_cap_per_epoch)?;
    require!(args.metadata_uri.len() <= MAX_URI_LEN, OvppError::InvalidTokenMetadata);

    let now = Clock::get()?.unix_timestamp;
    let a = &ctx.accounts;
    let config = Config {
        version: CONFIG_VERSION,
        bump: ctx.bumps.config,
        mint_bump: ctx.bumps.mint,
        paused: false,
        authority: a.authority.key(),
        pending_authority: None,
        mint: a.mint.key(),
        oracles: args.oracles.clone(),
        threshold: args.threshold,
        epoch_length_secs: args.epoch_length_secs,
        schedule_start_epoch: 0,
        schedule_start_ts: now,
        emission_cap_per_epoch: args.emission_cap_per_epoch,
        last_epoch: 0,
        cumulative_total: 0,
        total_claimed: 0,
        recent_roots: [RootEntry::default(); ROOT_RING_LEN],
    };
    let seeds: &[&[u8]] = &[CONFIG_SEED, &[ctx.bumps.config]];
    init_pda(&a.authority.to_account_info(), &a.config.to_account_info(), seeds, OvppError::AlreadyInitialized, &config)?;
    create_mint(&ctx)?;
    init_token_metadata(&ctx, args.metadata_uri)?;

    emit!(Initialized {
        authority: ctx.accounts.authority.key(),
        mint: ctx.accounts.mint.key(),
        oracles: args.oracles,
        threshold: args.threshold,
        epoch_length_secs: args.epoch_length_secs,
        emission_cap_per_epoch: args.emission_cap_per_epoch,
    });
    Ok(())
}

/// The OVPP mint at its PDA: Token-2022 with a metadata pointer to itself, `config` as mint
/// authority and metadata-pointer authority, no freeze authority.
fn create_mint(ctx: &Context<Initialize>) -> Result<()> {
    let a = &ctx.accounts;
    let token_program = a.token_program.key();
    let mint = a.mint.to_account_info();
    let config = a.config.key();
    let space = mint_space(&[ExtensionType::MetadataPointer])?;
    let seeds: &[&[u8]] = &[MINT_SEED, &[ctx.bumps.mint]];
    create_pda(&a.authority.to_account_info(), &mint, space, &token_program, seeds, OvppError::AlreadyInitialized)?;
    let pointer = MetadataPointerInitialize { token_program_id: a.token_program.to_account_info(), mint: mint.clone() };
    metadata_pointer_initialize(CpiContext::new(token_program, pointer), Some(config), Some(mint.key()))?;
    initialize_mint2(CpiContext::new(token_program, InitializeMint2 { mint }), OVPP_DECIMALS, &config, None)
}

/// Writes name and symbol into the mint itself (Token-2022 metadata extension), with the
/// `Config` PDA as update authority. Token-2022 grows the mint account, so it is first
/// topped up to the rent-exempt balance of its final size.
fn init_token_metadata(ctx: &Context<Initialize>, uri: String) -> Result<()> {
    let accounts = &ctx.accounts;
    let metadata = TokenMetadata {
        update_authority: OptionalNonZeroPubkey(accounts.config.key()),
        mint: accounts.mint.key(),
        name: TOKEN_NAME.to_string(),
        symbol: TOKEN_SYMBOL.to_string(),
        uri: uri.clone(),
        additional_metadata: vec![],
    };
    let extra = metadata.tlv_size_of().map_err(|_| OvppError::InvalidTokenMetadata)?;
    let mint_info = accounts.mint.to_account_info();
    let final_len = mint_info.data_len().checked_add(extra).ok_or(OvppError::Overflow)?;
    let needed = Rent::get()?.minimum_balance(final_len).saturating_sub(mint_info.lamports());
    if needed > 0 {
        transfer(
            CpiContext::new(accounts.system_program.key(), Transfer { from: accounts.authority.to_account_info(), to: mint_info.clone() }),
            needed,
        )?;
    }

    let seeds: &[&[u8]] = &[CONFIG_SEED, &[ctx.bumps.config]];
    token_metadata_initialize(
        CpiContext::new_with_signer(
            accounts.token_program.key(),
            TokenMetadataInitialize {
                program_id: accounts.token_program.to_account_info(),
                metadata: mint_info.clone(),
                update_authority: accounts.config.to_account_info(),
                mint_authority: accounts.config.to_account_info(),
                mint: mint_info,
            },
            &[seeds],
        ),
        TOKEN_NAME.to_string(),
        TOKEN_SYMBOL.to_string(),
        uri,
    )
}
