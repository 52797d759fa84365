//! `ovpp-localnet`: a whole OpenVPP network on this machine in one command: the local chain,
//! an oracle, a simulated fleet registered by its owners, and short epochs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ovpp_localnet::LocalnetArgs::parse();
    // The in-process chain's own crates are chatty at info; the local network has its own
    // status line instead of the simulator's line per interval.
    let filter = "info,tarpc=error,solana_runtime=warn,solana_program_test=warn,solana_metrics=warn,solana_banks_server=warn,solana_accounts_db=warn,surfpool_core=warn,jsonrpc_core=warn,parity_ws=warn,ovpp_simulator=warn";
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .init();
    let report = ovpp_localnet::run(args, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    println!(
        "{} devices, {} readings accepted this run, last epoch {}, {} OVPP earned, {} claimed",
        report.devices_registered,
        report.readings_accepted,
        report.last_epoch,
        ovpp_chain::amount::format_ovpp(report.cumulative_total),
        ovpp_chain::amount::format_ovpp(report.total_claimed)
    );
    Ok(())
}
