//! `ovpp-simulator`: a simulated fleet of devices sending signed telemetry to an oracle
//! (and following its dispatch commands), for demos, load and development.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use ovpp_simulator::{Clock, Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::kind_name;

/// Simulate a fleet of devices sending signed telemetry to an oracle.
#[derive(Parser)]
#[command(name = "ovpp-simulator", version)]
struct SimulateArgs {
    /// Base URL of an oracle's HTTP API; repeat for co-signers, which need the same
    /// telemetry (commands come from the first).
    #[arg(long, env = "OVPP_ORACLE_URL", value_delimiter = ',', default_value = "http://127.0.0.1:8787")]
    oracle: Vec<String>,
    /// Number of devices (a residential mix of every kind across three regions).
    #[arg(long, short = 'n', default_value_t = 300)]
    devices: usize,
    /// Seed of the device keys: the same seed gives the same fleet, so a registered fleet
    /// can be restarted.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Metering interval, seconds (10 ..= 3600).
    #[arg(long, default_value_t = 60)]
    interval_secs: u32,
    /// Simulated seconds per wall-clock second while catching up with the present.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start this many hours in the past (at most the oracle's retention, 7 days by
    /// default); the past is replayed at --speed, then the fleet follows real time.
    #[arg(long, default_value_t = 0.0)]
    backfill_hours: f64,
    /// Stop after this many simulated hours [default: run until Ctrl-C].
    #[arg(long)]
    hours: Option<f64>,
    /// Site latitude, degrees (for the sun).
    #[arg(long, default_value_t = 48.14, allow_negative_numbers = true)]
    latitude: f64,
    /// Site longitude, degrees east.
    #[arg(long, default_value_t = 11.58, allow_negative_numbers = true)]
    longitude: f64,
    /// Batches per HTTP request.
    #[arg(long, default_value_t = 256)]
    batches_per_request: usize,
    /// Print the fleet (device key, kind, declared parameters, region) as JSON lines and exit.
    #[arg(long)]
    list: bool,
    /// Write each device's keypair (Solana JSON format, mode 0600) into this directory and
    /// exit, so that owners can register the devices on-chain.
    #[arg(long, value_name = "DIR")]
    export_keys: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    run_simulation(SimulateArgs::parse()).await
}

async fn run_simulation(args: SimulateArgs) -> anyhow::Result<()> {
    if !(10..=3600).contains(&args.interval_secs) {
        bail!("--interval-secs must be 10 ..= 3600, got {}", args.interval_secs);
    }
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        bail!("--speed must be a number >= 1 (simulated time never runs slower than real time), got {}", args.speed);
    }
    // The first backfilled reading must still be inside the oracle's retention (7 days by
    // default): it is the oldest one when sent, the lag shrinking from there.
    if !(0.0..=167.0).contains(&args.backfill_hours) {
        bail!("--backfill-hours must be 0 ..= 167 (the oracle refuses readings older than 7 days), got {}", args.backfill_hours);
    }
    if args.backfill_hours > 0.0 && args.speed <= 1.0 {
        bail!("--backfill-hours needs --speed above 1, or the fleet would never catch up with the present");
    }
    if let Some(hours) = args.hours {
        if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0 * 100.0) {
            bail!("--hours must be a positive number of hours (at most a century), got {hours}");
        }
    }
    if !(-90.0..=90.0).contains(&args.latitude) || !(-180.0..=180.0).contains(&args.longitude) {
        bail!("--latitude must be -90 ..= 90 and --longitude -180 ..= 180");
    }
    let mut fleet = Fleet::new(args.devices, args.seed, args.latitude, args.longitude);
    if args.list {
        let mut out = std::io::stdout().lock();
        for d in &fleet.devices {
            let line = serde_json::json!({
                "device_key": bs58::encode(d.device_key()).into_string(),
                "kind": kind_name(d.profile.kind),
                "rated_power_w": d.profile.rated_power_w,
                "energy_capacity_wh": d.profile.energy_capacity_wh,
                "region": d.region,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if let Some(dir) = &args.export_keys {
        let written =
            ovpp_simulator::export_keys(&fleet, dir).with_context(|| format!("writing device keypairs into {}", dir.display()))?;
        println!("wrote {written} device keypairs into {}", dir.display());
        return Ok(());
    }
    let interval = i64::from(args.interval_secs);
    let now = unix_now();
    let start = (now - (args.backfill_hours * 3600.0) as i64).div_euclid(interval) * interval;
    let clock = Clock { start, interval_secs: args.interval_secs, speed: args.speed, end: args.hours.map(|h| start + (h * 3600.0) as i64) };
    tracing::info!(devices = args.devices, oracle = ?args.oracle, start, "simulating");
    let sender = Sender::to_all(&args.oracle);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let totals = ovpp_simulator::run(&mut fleet, &sender, clock, args.batches_per_request, stop).await?;
    println!("accepted {} batches, rejected {} {:?}", totals.accepted, totals.rejected, totals.reasons);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::SimulateArgs as clap::CommandFactory>::command().debug_assert();
    }
}
