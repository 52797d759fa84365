//! A throwaway local chain for trying the CLI by hand: the `ovpp` program running natively
//! in the Solana runtime (`solana-program-test`, with the real SPL programs), served as
//! Solana JSON-RPC on 127.0.0.1:8899, not yet initialized, with a funded keypair that is
//! the program's upgrade authority. State lives in memory and ends with the process.
//!
//!     cargo run -p ovpp-tests --example local_chain -- <keypair path>
//!
//! The keypair file is created if missing. (The full local network, with the oracle and a
//! simulated fleet, is its own command.)

#![allow(deprecated)] // solana-program-test 3.x marks BanksClient "unstable API"; it is the in-process chain

use std::path::PathBuf;

use ovpp_program_tests::TestChain;
use solana_sdk::signature::{read_keypair_file, write_keypair_file, Keypair, Signer};

#[tokio::main]
async fn main() {
    let path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "local-authority.json".into()));
    let authority = read_keypair_file(&path).unwrap_or_else(|_| {
        let key = Keypair::new();
        write_keypair_file(&key, &path).expect("write the keypair file");
        key
    });
    let mut chain = TestChain::new_with_authority(0, authority.insecure_clone()).await;
    chain.fund(&authority.pubkey(), 1_000_000_000_000).await;
    // The authority's wallet is the faucet of `ovpp airdrop`.
    let bridge = ovpp_localnet::rpc_bridge::Bridge::with_faucet(chain.ctx.banks_client.clone(), authority.insecure_clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8899").await.expect("bind 127.0.0.1:8899");
    println!("ovpp program {} on http://127.0.0.1:8899 (JSON-RPC)", ovpp::ID);
    println!("upgrade authority and funded payer: {} ({})", authority.pubkey(), path.display());
    let router = bridge.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    // The bank's clock only moves when told: keep it on the wall clock, as a validator's
    // is, so epochs end on-chain when they end for the oracle.
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let _serial = bridge.exclusive().await;
                ovpp_chain::bank::advance_clock_to(&mut chain.ctx, ovpp_wire::clock::unix_now()).await;
            }
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}
