use anchor_lang::prelude::*;

/// One variant per failure a caller can cause; the message says what to fix.
#[error_code]
pub enum OvppError {
    #[msg("the program is paused by its authority")]
    Paused,
    #[msg("signer is not the config authority")]
    NotAuthority,
    #[msg("signer is not the pending authority")]
    NotPendingAuthority,
    #[msg("no authority transfer is pending")]
    NoPendingAuthority,
    #[msg("initialize must be signed by the program's upgrade authority")]
    NotUpgradeAuthority,
    #[msg("oracle set must hold 1 to 8 distinct, non-default keys")]
    InvalidOracleSet,
    #[msg("threshold must be at least 1, at most the oracle count and at most 5")]
    InvalidThreshold,
    #[msg("epoch length must be between 60 seconds and 31 days")]
    InvalidEpochLength,
    #[msg("emission cap per epoch must be positive and at most the configured maximum")]
    InvalidEmissionCap,
    #[msg("token name, symbol or URI too long")]
    InvalidTokenMetadata,
    #[msg("mint account is not the OVPP mint")]
    WrongMint,
    #[msg("token account is not the device owner's associated OVPP account")]
    NotOwnerTokenAccount,
    #[msg("signer (or owner account) is not the device owner")]
    NotDeviceOwner,
    #[msg("device is not active (suspended or retired)")]
    DeviceNotActive,
    #[msg("device is retired")]
    DeviceRetired,
    #[msg("device is not suspended")]
    DeviceNotSuspended,
    #[msg("rated power is outside the limits for this device kind")]
    RatedPowerOutOfRange,
    #[msg("energy capacity is outside the limits for this device kind")]
    EnergyCapacityOutOfRange,
    #[msg("region must be 2-8 ASCII characters [A-Z0-9-], starting with an ISO 3166-1 alpha-2 country code")]
    InvalidRegion,
    #[msg("new owner must differ from the current owner and not be the default key")]
    InvalidNewOwner,
    #[msg("epochs must be posted in order: epoch must be last posted + 1")]
    EpochNotSequential,
    #[msg("the epoch has not ended yet")]
    EpochNotEnded,
    #[msg("an epoch must have at least one leaf")]
    EmptyEpoch,
    #[msg("cumulative total is below the previous epoch's")]
    CumulativeTotalDecreased,
    #[msg("cumulative total rises more than the emission cap per epoch")]
    EmissionCapExceeded,
    #[msg("instructions sysvar account is not the real one")]
    InvalidInstructionsSysvar,
    #[msg("malformed Ed25519 instruction: signature count or offsets out of bounds")]
    MalformedEd25519Instruction,
    #[msg("Ed25519 instruction indexes must point at the Ed25519 instruction itself")]
    Ed25519IndexMismatch,
    #[msg("an Ed25519 signature is over another message than this epoch's")]
    EpochMessageMismatch,
    #[msg("an Ed25519 signer is not in the oracle set")]
    UnknownOracleSigner,
    #[msg("the same oracle signed more than once")]
    DuplicateOracleSignature,
    #[msg("fewer distinct oracle signatures than the threshold")]
    InsufficientOracleSignatures,
    #[msg("the leaf's epoch root is not in the ring of recent roots")]
    RootNotInRing,
    #[msg("Merkle proof does not match the epoch root")]
    InvalidProof,
    #[msg("Merkle proof longer than 32 siblings")]
    ProofTooLong,
    #[msg("nothing to claim: this leaf's cumulative amount is already claimed")]
    NothingToClaim,
    #[msg("claims would exceed the posted cumulative total")]
    ClaimExceedsPosted,
    #[msg("reputation must be at most 10000 basis points")]
    InvalidReputation,
    #[msg("arithmetic overflow")]
    Overflow,
    #[msg("governance parameters out of bounds (voting 60 s to 30 days, timelock up to 30 days, quorum 1-10000 bps, approval 5000-9999 bps, proposal power at least 1)")]
    InvalidGovernanceParams,
    #[msg("lock for one week to four years")]
    InvalidLockDuration,
    #[msg("amount must be more than zero")]
    ZeroAmount,
    #[msg("the lock has not ended yet")]
    LockNotEnded,
    #[msg("not enough voting power to make a proposal")]
    InsufficientProposalPower,
    #[msg("the vote on this proposal is closed")]
    VotingClosed,
    #[msg("the lock ends before the vote does: extend it to vote")]
    LockEndsBeforeVote,
    #[msg("no voting power")]
    NoVotingPower,
    #[msg("the vote has not ended yet")]
    VotingNotEnded,
    #[msg("the timelock has not elapsed")]
    TimelockNotElapsed,
    #[msg("the proposal expired: it was not executed in time")]
    ProposalExpired,
    #[msg("the proposal was already executed")]
    ProposalAlreadyExecuted,
    #[msg("quorum not reached")]
    QuorumNotReached,
    #[msg("the proposal did not get more than the approval threshold of the votes")]
    ProposalRejected,
    #[msg("signer is not the emergency pauser")]
    NotEmergencyPauser,
    #[msg("governance is not the Config authority")]
    GovernanceNotInControl,
    #[msg("this wallet already voted on this proposal")]
    AlreadyVoted,
    #[msg("a device-status proposal executes with the device's account as its one remaining account")]
    MissingDeviceAccount,
    #[msg("the program is already initialized")]
    AlreadyInitialized,
    #[msg("this device key is already registered")]
    DeviceAlreadyRegistered,
    #[msg("this wallet already has a lock: add to it with add_to_lock, or withdraw it once it has ended")]
    LockExists,
}
