//! What the CLI reads from an OpenVPP oracle (`--oracle-url`): a device's leaf and proof.

use anchor_lang::prelude::Pubkey;
use ovpp::protocol::{Hash32, RewardLeaf};
use ovpp_wire::http::{ErrorBody, Rewards};

use crate::{CliError, Context};

/// A device's latest leaf and proof, as the oracle serves them.
pub(crate) struct Earned {
    pub(crate) leaf: RewardLeaf,
    pub(crate) proof: Vec<Hash32>,
    /// The chain's latest posted epoch as the oracle saw it (newer than the leaf's when the
    /// oracle is behind).
    pub(crate) chain_last_epoch: u64,
}

pub(crate) async fn fetch_earned(ctx: &Context<'_>, device: &Pubkey) -> Result<Option<Earned>, CliError> {
    let oracle_error = |message: String| ctx.oracle_error(message);
    let (status, body) = ctx.oracle(reqwest::Method::GET, &format!("/v1/rewards/{device}"), None).await?;
    if !status.is_success() {
        // Only the oracle's own "nothing for this device yet" means nothing earned.
        let error: Option<ErrorBody> = serde_json::from_value(body.clone()).ok();
        return match error.as_ref().map(|e| e.error.code.as_str()) {
            Some("no_rewards" | "no_posted_epoch") => Ok(None),
            _ => Err(oracle_error(format!("HTTP {status}: {body}"))),
        };
    }
    let rewards: Rewards = serde_json::from_value(body).map_err(|e| oracle_error(format!("not a rewards answer: {e}")))?;
    let proof = rewards
        .proof
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map(|()| out).map_err(|_| oracle_error(format!("bad proof hash {h:?}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(Earned { leaf: rewards.leaf, proof, chain_last_epoch: rewards.chain_last_epoch }))
}
