//! The program's accounts, read through any [`Chain`] and decoded with the program's own
//! types. An address without an account, or with an account another program owns, reads as
//! `None`; a program account that does not decode is [`ChainError::BadAccount`].

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AccountDeserialize, Discriminator};
use ovpp::protocol::{config_address, epoch_address, governance_address};
use ovpp::state::{Config, Epoch, Governance};

use crate::{Chain, ChainAccount, ChainError};

/// The program's account of type `T` in `account`, if the program owns it.
pub fn decode<T: AccountDeserialize>(address: &Pubkey, account: &ChainAccount, what: &'static str) -> Result<Option<T>, ChainError> {
    if account.owner != ovpp::ID {
        return Ok(None);
    }
    T::try_deserialize(&mut account.data.as_slice()).map(Some).map_err(|e| ChainError::BadAccount {
        address: *address,
        what,
        reason: e.to_string(),
    })
}

/// The program's account of type `T` at `address`.
pub async fn read<T: AccountDeserialize>(chain: &dyn Chain, address: &Pubkey, what: &'static str) -> Result<Option<T>, ChainError> {
    match chain.get_account(address).await? {
        Some(account) => decode(address, &account, what),
        None => Ok(None),
    }
}

/// The program's configuration (`None`: the program is not initialized on this cluster).
pub async fn config(chain: &dyn Chain) -> Result<Option<Config>, ChainError> {
    read(chain, &config_address().0, "Config").await
}

/// The epoch's account, if the epoch was posted.
pub async fn posted_epoch(chain: &dyn Chain, epoch: u64) -> Result<Option<Epoch>, ChainError> {
    read(chain, &epoch_address(epoch).0, "Epoch").await
}

/// The scoring-rules hash OVPP holders voted for, if governance exists and set one.
pub async fn governed_rules_hash(chain: &dyn Chain) -> Result<Option<[u8; 32]>, ChainError> {
    let governance: Option<Governance> = read(chain, &governance_address().0, "Governance").await?;
    Ok(governance.map(|g| g.scoring_rules_hash).filter(|h| *h != [0; 32]))
}

/// OVPP (base units) in `owner`'s OVPP token account; 0 when it has none yet.
pub async fn ovpp_balance(chain: &dyn Chain, owner: &Pubkey) -> Result<u64, ChainError> {
    use anchor_spl::token_2022::spl_token_2022::extension::StateWithExtensions;
    use anchor_spl::token_2022::spl_token_2022::state::Account as TokenAccount;
    let address = ovpp::client::owner_token_account(owner);
    match chain.get_account(&address).await? {
        None => Ok(0),
        Some(account) => StateWithExtensions::<TokenAccount>::unpack(&account.data)
            .map(|a| a.base.amount)
            .map_err(|e| ChainError::BadAccount { address, what: "OVPP token account", reason: e.to_string() }),
    }
}

/// Every account of type `T` the program owns that matches `filters` (memcmp at absolute
/// offsets, e.g. `ovpp::client::device_owner_filter`), skipping any that do not decode.
pub async fn scan<T: AccountDeserialize + Discriminator>(
    chain: &dyn Chain,
    filters: &[crate::Filter],
) -> Result<Vec<(Pubkey, T)>, ChainError> {
    let mut all = vec![(0, T::DISCRIMINATOR.to_vec())];
    all.extend_from_slice(filters);
    let accounts = chain.scan(&ovpp::ID, &all).await?;
    Ok(accounts.into_iter().filter_map(|(key, a)| Some((key, T::try_deserialize(&mut a.data.as_slice()).ok()?))).collect())
}
