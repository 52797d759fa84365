//! Creating the program's accounts at their predictable addresses (PDAs).
//!
//! Anyone can send lamports to an address before the program creates an account there.
//! `create_account` then fails ("already in use"), and Anchor 1.2.2's `init` falls back to
//! `CreateAccountAllowPrefund`, which the system program we ship with (3.1) refuses as
//! invalid instruction data: one transfer to the next epoch's address would stop settlement
//! for ever. So no account here uses `init`: each is created by `create_pda`, which takes a
//! pre-funded address as it is and needs only the system instructions every runtime has
//! (`create_account`, `transfer`, `allocate`, `assign`).

use anchor_lang::prelude::*;
use anchor_lang::system_program::{allocate, assign, create_account, transfer, Allocate, Assign, CreateAccount, Transfer};

use crate::errors::OvppError;

/// Creates the account at `target` (the PDA of `seeds`, bump included) with `space` bytes,
/// rent-exempt, owned by `owner`, paid by `payer`. An address that already holds lamports is
/// topped up to rent and then allocated and assigned under the PDA's signature. An address
/// that is already an account (allocated, or owned by a program) fails with `exists`.
pub fn create_pda<'info>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    space: usize,
    owner: &Pubkey,
    seeds: &[&[u8]],
    exists: OvppError,
) -> Result<()> {
    if *target.owner != System::id() || !target.data_is_empty() {
        return Err(exists.into());
    }
    let rent = Rent::get()?.minimum_balance(space);
    let signer = &[seeds];
    let system = System::id();
    let held = target.lamports();
    if held == 0 {
        let accounts = CreateAccount { from: payer.clone(), to: target.clone() };
        return create_account(CpiContext::new_with_signer(system, accounts, signer), rent, space as u64, owner);
    }
    let missing = rent.saturating_sub(held);
    if missing > 0 {
        transfer(CpiContext::new(system, Transfer { from: payer.clone(), to: target.clone() }), missing)?;
    }
    allocate(CpiContext::new_with_signer(system, Allocate { account_to_allocate: target.clone() }, signer), space as u64)?;
    assign(CpiContext::new_with_signer(system, Assign { account_to_assign: target.clone() }, signer), owner)
}

/// `create_pda` for one of this program's own account types, then writes `value` into it
/// (discriminator first, as Anchor's `Account` reads it back).
pub fn init_pda<'info, T: AccountSerialize + Discriminator + Space>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    seeds: &[&[u8]],
    exists: OvppError,
    value: &T,
) -> Result<()> {
    let space = T::DISCRIMINATOR.len() + T::INIT_SPACE;
    create_pda(payer, target, space, &crate::ID, seeds, exists)?;
    let mut data = target.try_borrow_mut_data()?;
    value.try_serialize(&mut &mut data[..])
}

/// Bytes of a token account of `mint`: the classic 165 for SPL Token, and for Token-2022 the
/// base plus the account extensions that the mint's extensions require (as Anchor sizes it).
pub fn token_account_space(mint: &AccountInfo) -> Result<usize> {
    use anchor_spl::token_2022::spl_token_2022::extension::{BaseStateWithExtensions, ExtensionType, StateWithExtensions};
    use anchor_spl::token_2022::spl_token_2022::state::{Account, Mint};
    if *mint.owner != anchor_spl::token_2022::ID {
        return Ok(anchor_spl::token::TokenAccount::LEN);
    }
    let data = mint.try_borrow_data()?;
    let extensions = StateWithExtensions::<Mint>::unpack(&data)?.get_extension_types()?;
    Ok(ExtensionType::try_calculate_account_len::<Account>(&ExtensionType::get_required_init_account_extensions(&extensions))?)
}

/// Bytes of a Token-2022 mint with `extensions` (before any variable-length metadata).
pub fn mint_space(extensions: &[anchor_spl::token_2022::spl_token_2022::extension::ExtensionType]) -> Result<usize> {
    use anchor_spl::token_2022::spl_token_2022::{extension::ExtensionType, state::Mint};
    Ok(ExtensionType::try_calculate_account_len::<Mint>(extensions)?)
}
