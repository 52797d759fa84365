//! A throwaway local chain for trying the CLI by hand: the same chain as the local network
//! (surfpool's Solana JSON-RPC on 127.0.0.1:8899 and PubSub on 8900, the `ovpp` program
//! natively inside it), not yet initialized, with a funded keypair that is the program's
//! upgrade authority. State lives in memory and ends with the process.
//!
//!     cargo run -p ovpp-localnet --example local_chain -- <keypair path>
//!
//! The keypair file is created if missing. (The full local network, with the oracle and a
//! simulated fleet, is its own command.)

use std::path::PathBuf;

use ovpp_chain::Chain;
use solana_sdk::signature::{read_keypair_file, write_keypair_file, Keypair, Signer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The chain's own crates log every instruction at debug: warnings only, unless RUST_LOG says.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "local-authority.json".into()));
    let authority = read_keypair_file(&path).unwrap_or_else(|_| {
        let key = Keypair::new();
        write_keypair_file(&key, &path).expect("write the keypair file");
        key
    });
    let setup = ovpp_localnet::chain::ChainSetup { rpc_port: 8899, upgrade_authority: authority.pubkey(), accounts: vec![] };
    let chain = ovpp_localnet::chain::start(setup).await?;
    let rpc = ovpp_chain::RpcChain::with_commitment(chain.rpc_url.clone(), solana_commitment_config::CommitmentConfig::confirmed());
    rpc.request_airdrop(&authority.pubkey(), 1_000_000_000_000).await?;
    println!("ovpp program {} on {} (JSON-RPC), {} (PubSub)", ovpp::ID, chain.rpc_url, chain.ws_url);
    println!("upgrade authority and funded payer: {} ({})", authority.pubkey(), path.display());
    // The chain's clock follows the wall clock, so epochs end on-chain when they end for the oracle.
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => chain.advance_clock_to(ovpp_wire::clock::unix_now()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
