//! What can go wrong, each with a message that names the cause. Program failures are
//! decoded with the program's own IDL (error name and message).

use ovpp_chain::ChainError;
use solana_sdk::instruction::InstructionError;
use solana_sdk::transaction::TransactionError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Keypair(#[from] ovpp_chain::keypair::KeypairError),
    #[error("the program refused instruction {instruction}: {name} ({code}): {message}")]
    Program { instruction: u8, code: u32, name: String, message: String },
    #[error("the transaction failed: {0}")]
    Transaction(TransactionError),
    #[error("the RPC endpoint did not answer as expected: {0} (choose the cluster with -u/--url or OVPP_RPC_URL)")]
    Rpc(String),
    #[error("wallet {wallet} has no SOL to pay the transaction fee: fund it first (`ovpp airdrop 1 {wallet}` on the local network, devnet or testnet; on mainnet send it SOL from a funded wallet)")]
    Unfunded { wallet: String },
    #[error("the oracle at {url}: {message}")]
    Oracle { url: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// A stable code for scripts (`--output json` prints `{"error": {"code", "message"}}`).
    pub fn code(&self) -> &'static str {
        match self {
            CliError::Invalid(_) => "invalid",
            CliError::Keypair(_) => "keypair",
            CliError::Program { .. } => "program_error",
            CliError::Transaction(_) => "transaction_failed",
            CliError::Rpc(_) => "rpc_unavailable",
            CliError::Unfunded { .. } => "unfunded_wallet",
            CliError::Oracle { .. } => "oracle_unavailable",
            CliError::NotFound(_) => "not_found",
            CliError::Io(_) => "io",
        }
    }
}

impl From<ChainError> for CliError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Request(message) => CliError::Rpc(message),
            ChainError::Rejected(failure) => decode(failure),
            bad @ ChainError::BadAccount { .. } => CliError::Rpc(bad.to_string()),
        }
    }
}

/// Anchor's framework errors a user can cause with this CLI (the rest show their code).
const ANCHOR_ERRORS: &[(u32, &str, &str)] = &[
    (2006, "ConstraintSeeds", "an account is not the address the program derives"),
    (3002, "AccountDiscriminatorMismatch", "an account is not of the expected type"),
    (3007, "AccountOwnedByWrongProgram", "an account is not owned by the program"),
    (3010, "AccountNotSigner", "a required signature is missing"),
    (3012, "AccountNotInitialized", "an account the instruction needs does not exist"),
];

fn decode(failure: TransactionError) -> CliError {
    let TransactionError::InstructionError(instruction, InstructionError::Custom(code)) = failure else {
        return CliError::Transaction(failure);
    };
    if let Some((name, message)) = ovpp_chain::program_error(code) {
        return CliError::Program { instruction, code, name, message };
    }
    if let Some((_, name, message)) = ANCHOR_ERRORS.iter().find(|(c, _, _)| *c == code) {
        return CliError::Program { instruction, code, name: (*name).into(), message: (*message).into() };
    }
    CliError::Transaction(TransactionError::InstructionError(instruction, InstructionError::Custom(code)))
}

/// A program-side check run locally (the same function the program runs), as a CLI error.
pub fn local_check(result: anchor_lang::Result<()>) -> Result<(), CliError> {
    match result {
        Ok(()) => Ok(()),
        Err(anchor_lang::error::Error::AnchorError(e)) => {
            Err(CliError::Invalid(format!("{} ({}): {}", e.error_name, e.error_code_number, e.error_msg)))
        }
        Err(e) => Err(CliError::Invalid(e.to_string())),
    }
}
