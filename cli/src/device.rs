//! `ovpp device ...`: keys, registration (owner and device key both sign), changes,
//! and reading device accounts.

use std::path::PathBuf;

use anchor_lang::prelude::Pubkey;
use anchor_lang::AccountDeserialize;
use clap::{Subcommand, ValueEnum};
use ovpp::instructions::DeviceParams;
use ovpp::protocol::device_address;
use ovpp::state::{Device, DeviceKind, DeviceStatus};
use serde_json::{json, Value};
use solana_sdk::signature::{Keypair, Signer};

use crate::error::local_check;
use crate::units::{format_energy, format_ovpp, format_power, parse_energy, parse_power};
use crate::{parse_pubkey, read_keypair, CliError, Context};

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Create a device keypair (Solana's JSON format, readable by you only).
    ///
    /// Example: ovpp device keygen -o battery.json
    Keygen {
        /// Where to write it.
        #[arg(long, short = 'o')]
        outfile: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Register a device you own: signed by you (--keypair) and by the device key.
    ///
    /// Example: ovpp -k owner.json device register --device-keypair battery.json --kind home-battery --power 5kW --capacity 13.5kWh --region DE-BY
    Register {
        /// The device's keypair (the key that signs its telemetry).
        #[arg(long)]
        device_keypair: PathBuf,
        /// What the device is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Rated power: `7400`, `11kW`, `2MW`.
        #[arg(long, value_parser = parse_power, allow_hyphen_values = true)]
        power: u64,
        /// Usable energy capacity: `13.5kWh`; 0 for devices without storage.
        #[arg(long, value_parser = parse_energy, allow_hyphen_values = true, default_value = "0")]
        capacity: u64,
        /// ISO 3166 region: `DE`, `DE-BY`, `AU-NSW`.
        #[arg(long)]
        region: String,
        /// H3 cell index of the site (coarse; 0 = none).
        #[arg(long, default_value_t = 0)]
        location_cell: u64,
    },
    /// Change declared parameters (the kind is fixed for life).
    ///
    /// Example: ovpp -k owner.json device update 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv --power 6kW
    Update {
        /// Device key.
        device: String,
        /// New rated power: `6kW`.
        #[arg(long, value_parser = parse_power, allow_hyphen_values = true)]
        power: Option<u64>,
        /// New usable energy capacity: `12kWh`.
        #[arg(long, value_parser = parse_energy, allow_hyphen_values = true)]
        capacity: Option<u64>,
        /// New ISO 3166 region: `DE-BW`.
        #[arg(long)]
        region: Option<String>,
        /// New H3 cell index of the site (0 = none).
        #[arg(long)]
        location_cell: Option<u64>,
    },
    /// Give the device to another owner, who receives every later claim (claim first).
    ///
    /// Example: ovpp -k owner.json device transfer 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH --yes
    Transfer {
        /// Device key.
        device: String,
        /// The new owner's public key.
        new_owner: String,
        /// Confirm (the unclaimed OVPP is shown first).
        #[arg(long)]
        yes: bool,
    },
    /// Retire the device for good: no more telemetry, no more claims, the key never again.
    ///
    /// Example: ovpp -k owner.json device retire 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv --yes
    Retire {
        /// Device key.
        device: String,
        /// Confirm that retiring is final.
        #[arg(long)]
        yes: bool,
    },
    /// Show a device's on-chain record.
    ///
    /// Example: ovpp device show 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv
    Show {
        /// Device key.
        device: String,
    },
    /// Tell the oracle's dispatch what the device may do (signed with the device key):
    /// state-of-charge reserve, an EV's departure and the charge it needs, or an opt-out.
    ///
    /// Example: ovpp device preferences --device-keypair ev.json --departure 2026-12-04T07:30:00Z --departure-soc-pct 80
    Preferences {
        /// The device's keypair (the key that signs its telemetry).
        #[arg(long)]
        device_keypair: PathBuf,
        /// State of charge dispatch never goes below, percent.
        #[arg(long, default_value_t = 20)]
        reserve_pct: u16,
        /// EV: when it leaves (RFC 3339, e.g. 2026-11-26T07:30:00Z).
        #[arg(long)]
        departure: Option<String>,
        /// EV: the state of charge it needs at departure, percent.
        #[arg(long, default_value_t = 0, requires = "departure")]
        departure_soc_pct: u16,
        /// No dispatch for this many hours from now (0: take part again).
        #[arg(long, default_value_t = 0)]
        opt_out_hours: u32,
    },
    /// List devices, filtered by owner, kind and region.
    ///
    /// Example: ovpp -k owner.json device list --owner me --kind home-battery
    List {
        /// Owner public key (`me` for --keypair's).
        #[arg(long)]
        owner: Option<String>,
        /// Only devices of this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only devices in this ISO 3166 region.
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Ev,
    EvCharger,
    HomeBattery,
    CiStorage,
    RooftopSolar,
    SmartMeter,
    Ems,
}

impl From<Kind> for DeviceKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Ev => DeviceKind::Ev,
            Kind::EvCharger => DeviceKind::EvCharger,
            Kind::HomeBattery => DeviceKind::HomeBattery,
            Kind::CiStorage => DeviceKind::CiStorage,
            Kind::RooftopSolar => DeviceKind::RooftopSolar,
            Kind::SmartMeter => DeviceKind::SmartMeter,
            Kind::Ems => DeviceKind::EnergyManagementSystem,
        }
    }
}

/// `DE-BY` as the program stores it: ASCII, zero padded to 8 bytes, checked by the
/// program's own rule.
fn region_bytes(region: &str) -> Result<[u8; 8], CliError> {
    let mut out = [0u8; 8];
    // Codes are stored uppercase (`de-by` is `DE-BY`), as the program requires.
    let region = region.trim().to_ascii_uppercase();
    if region.len() > 8 || !region.is_ascii() {
        return Err(CliError::Invalid(format!("region {region:?} must be an ISO 3166 code of at most 8 characters, e.g. DE-BY")));
    }
    out[..region.len()].copy_from_slice(region.as_bytes());
    local_check(ovpp::limits::check_region(&out))?;
    Ok(out)
}

/// The program's limits for `kind`, checked here first so the refusal names the numbers.
fn check_declared(kind: DeviceKind, rated_power_w: u64, energy_capacity_wh: u64) -> Result<(), CliError> {
    let limits = ovpp::limits::kind_limits(kind);
    let name = ovpp_wire::device::kind_name(kind).replace('_', " ");
    let (low, high) = limits.power_w;
    if !(low..=high).contains(&rated_power_w) {
        return Err(CliError::Invalid(format!(
            "a {name} needs a rated power between {} and {}, not {} (--power)",
            format_power(low),
            format_power(high),
            format_power(rated_power_w)
        )));
    }
    let (low, high) = limits.capacity_wh;
    if !(low..=high).contains(&energy_capacity_wh) {
        let allowed = if high == 0 {
            "no energy capacity (it stores nothing: leave out --capacity)".to_string()
        } else {
            format!("an energy capacity between {} and {}", format_energy(low), format_energy(high))
        };
        return Err(CliError::Invalid(format!("a {name} needs {allowed}, not {} (--capacity)", format_energy(energy_capacity_wh))));
    }
    // The program's own rule decides; the text above only explains it.
    local_check(ovpp::limits::check_declared(kind, rated_power_w, energy_capacity_wh))
}

fn region_text(region: &[u8; 8]) -> String {
    String::from_utf8_lossy(&region[..region.iter().position(|&b| b == 0).unwrap_or(8)]).into_owned()
}

fn status_name(status: DeviceStatus) -> &'static str {
    match status {
        DeviceStatus::Active => "active",
        DeviceStatus::Suspended => "suspended",
        DeviceStatus::Retired => "retired",
    }
}

/// The device account of `device_key`, or a clear "not registered".
pub async fn fetch_device(ctx: &Context<'_>, device_key: &Pubkey) -> Result<Device, CliError> {
    let account = ctx
        .chain
        .get_account(&device_address(device_key).0)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("device {device_key} is not registered")))?;
    if account.owner != ovpp::ID {
        return Err(CliError::NotFound(format!("device {device_key} is not registered")));
    }
    Device::try_deserialize(&mut account.data.as_slice()).map_err(|e| CliError::Rpc(format!("device account {device_key}: {e}")))
}

pub fn device_json(d: &Device) -> Value {
    json!({
        "device_key": d.device_key.to_string(),
        "address": device_address(&d.device_key).0.to_string(),
        "owner": d.owner.to_string(),
        "kind": ovpp_wire::device::kind_name(d.kind),
        "status": status_name(d.status),
        "region": region_text(&d.region),
        "rated_power_w": d.rated_power_w,
        "energy_capacity_wh": d.energy_capacity_wh,
        "location_cell": d.location_cell,
        "registered_at": d.registered_at,
        "updated_at": d.updated_at,
        "transfers": d.transfers,
        "reputation_bps": d.credit.reputation_bps,
        "epochs_active": d.credit.epochs_active,
        "faults": d.credit.faults,
        "credit_as_of_epoch": d.credit.as_of_epoch,
        "energy_delivered_wh": d.contribution.energy_delivered_wh,
        "flexibility_delivered_wh": d.contribution.flexibility_delivered_wh,
        "claimed": format_ovpp(d.claimed),
    })
}

fn device_display(d: &Device) -> String {
    format!(
        "Device {}\n  Address:        {}\n  Owner:          {}\n  Kind:           {}\n  Status:         {}\n  Region:         {}\n  Rated power:    {} W\n  Capacity:       {} Wh\n  Reputation:     {} bps ({} epochs active, {} faults)\n  Delivered:      {} Wh energy, {} Wh flexibility\n  Claimed:        {} OVPP",
        d.device_key,
        device_address(&d.device_key).0,
        d.owner,
        ovpp_wire::device::kind_name(d.kind),
        status_name(d.status),
        region_text(&d.region),
        d.rated_power_w,
        d.energy_capacity_wh,
        d.credit.reputation_bps,
        d.credit.epochs_active,
        d.credit.faults,
        d.contribution.energy_delivered_wh,
        d.contribution.flexibility_delivered_wh,
        format_ovpp(d.claimed),
    )
}

async fn set_preferences(
    ctx: &mut Context<'_>,
    device_keypair: &std::path::Path,
    reserve_pct: u16,
    departure: Option<&str>,
    departure_soc_pct: u16,
    opt_out_hours: u32,
) -> Result<(), CliError> {
    if reserve_pct > 100 || departure_soc_pct > 100 {
        return Err(CliError::Invalid("percentages must be 0 to 100".into()));
    }
    let device = read_keypair(device_keypair)?;
    let on_chain = fetch_device(ctx, &device.pubkey()).await?;
    if on_chain.status != DeviceStatus::Active {
        return Err(CliError::Invalid(format!(
            "device {} is {}: it takes no dispatch, so it has no preferences",
            device.pubkey(),
            status_name(on_chain.status)
        )));
    }
    let departure = departure
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|d| d.timestamp())
                .map_err(|e| CliError::Invalid(format!("--departure {text:?} is not an RFC 3339 time (2026-11-26T07:30:00Z): {e}")))
        })
        .transpose()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let prefs = ovpp_wire::dispatch::command::Preferences {
        device_key: device.pubkey().to_bytes(),
        // Milliseconds: later settings always carry a higher sequence.
        sequence: now.as_millis() as u64,
        reserve_soc_permille: reserve_pct * 10,
        departure,
        departure_soc_permille: departure_soc_pct * 10,
        opt_out_until: if opt_out_hours == 0 { 0 } else { now.as_secs() as i64 + i64::from(opt_out_hours) * 3600 },
    };
    use ovpp_wire::dispatch::command::DeviceSigned;
    let signing_key = ed25519_dalek::SigningKey::from_bytes(device.secret_bytes());
    let mut body = serde_json::to_value(&prefs).map_err(|e| CliError::Invalid(e.to_string()))?;
    body["signature"] = json!(bs58::encode(prefs.sign(&signing_key)).into_string());
    let path = format!("/v1/devices/{}/preferences", device.pubkey());
    let (status, answer) = ctx.oracle(reqwest::Method::PUT, &path, Some(&body)).await?;
    if !status.is_success() {
        return Err(ctx.oracle_error(format!("HTTP {status}: {}", answer["error"]["message"].as_str().unwrap_or("(no message)"))));
    }
    // Each call sets the whole set (what is not given is back to its default): say so.
    let mut display = format!("Dispatch preferences of {} now (replacing any set before): reserve {reserve_pct} %", device.pubkey());
    if let Some(departure) = departure {
        display +=
            &format!(", departs at {} needing {departure_soc_pct} %", crate::units::format_time(departure, ovpp_wire::clock::unix_now()));
    }
    if departure.is_none() {
        display += ", no departure";
    }
    if opt_out_hours > 0 {
        display += &format!(", opted out until {}", crate::units::format_time(prefs.opt_out_until, ovpp_wire::clock::unix_now()));
    } else {
        display += ", taking part in dispatch";
    }
    ctx.emit(answer, display)
}

/// Every device account matching the filters.
pub async fn list_devices(
    ctx: &Context<'_>,
    owner: Option<Pubkey>,
    kind: Option<DeviceKind>,
    region: Option<[u8; 8]>,
) -> Result<Vec<Device>, CliError> {
    let mut filters = vec![ovpp::client::device_discriminator_filter()];
    filters.extend(owner.map(|o| ovpp::client::device_owner_filter(&o)));
    filters.extend(kind.map(ovpp::client::device_kind_filter));
    filters.extend(region.map(|r| ovpp::client::device_region_filter(&r)));
    let accounts = ctx.chain.scan(&ovpp::ID, &filters).await?;
    let mut devices: Vec<Device> = accounts.iter().filter_map(|(_, a)| Device::try_deserialize(&mut a.data.as_slice()).ok()).collect();
    devices.sort_by_key(|d| d.device_key.to_string());
    Ok(devices)
}

pub async fn run(ctx: &mut Context<'_>, command: &DeviceCommand) -> Result<(), CliError> {
    match command {
        DeviceCommand::Keygen { outfile, force } => keygen(ctx, outfile, *force),
        DeviceCommand::Register { device_keypair, kind, power, capacity, region, location_cell } => {
            let owner = ctx.keypair()?;
            let device = read_keypair(device_keypair)?;
            let kind = DeviceKind::from(*kind);
            let params = DeviceParams {
                rated_power_w: *power,
                energy_capacity_wh: *capacity,
                region: region_bytes(region)?,
                location_cell: *location_cell,
            };
            check_declared(kind, params.rated_power_w, params.energy_capacity_wh)?;
            if let Ok(existing) = fetch_device(ctx, &device.pubkey()).await {
                return Err(CliError::Invalid(format!(
                    "device {} is already registered (owner {}); a device key registers once",
                    existing.device_key, existing.owner
                )));
            }
            let ix = ovpp::client::register_device(owner.pubkey(), device.pubkey(), kind, params);
            let signature = ctx.send(&[ix], &[&owner, &device]).await?;
            let address = device_address(&device.pubkey()).0;
            ctx.emit(
                json!({"device_key": device.pubkey().to_string(), "address": address.to_string(), "owner": owner.pubkey().to_string(), "signature": signature}),
                format!("Registered device {} (account {address})\nSignature: {signature}", device.pubkey()),
            )
        }
        DeviceCommand::Update { device, power, capacity, region, location_cell } => {
            let owner = ctx.keypair()?;
            let key = parse_pubkey(device, "device")?;
            let current = fetch_device(ctx, &key).await?;
            let params = DeviceParams {
                rated_power_w: power.unwrap_or(current.rated_power_w),
                energy_capacity_wh: capacity.unwrap_or(current.energy_capacity_wh),
                region: region.as_deref().map(region_bytes).transpose()?.unwrap_or(current.region),
                location_cell: location_cell.unwrap_or(current.location_cell),
            };
            check_declared(current.kind, params.rated_power_w, params.energy_capacity_wh)?;
            owned_by(&current, &owner)?;
            let unchanged = params.rated_power_w == current.rated_power_w
                && params.energy_capacity_wh == current.energy_capacity_wh
                && params.region == current.region
                && params.location_cell == current.location_cell;
            if unchanged {
                return Err(CliError::Invalid(format!(
                    "nothing to change: device {key} already declares this; pass --power, --capacity, --region or --location-cell with a new value"
                )));
            }
            let signature = ctx.send(&[ovpp::client::update_device(owner.pubkey(), &key, params)], &[&owner]).await?;
            ctx.emit(
                json!({"device_key": key.to_string(), "signature": signature}),
                format!("Updated device {key}\nSignature: {signature}"),
            )
        }
        DeviceCommand::Transfer { device, new_owner, yes } => {
            let owner = ctx.keypair()?;
            let key = parse_pubkey(device, "device")?;
            let new_owner = parse_pubkey(new_owner, "new owner")?;
            let current = fetch_device(ctx, &key).await?;
            owned_by(&current, &owner)?;
            if new_owner == current.owner {
                return Err(CliError::Invalid(format!("device {key} is already owned by {new_owner}: nothing to transfer")));
            }
            if !yes {
                return Err(CliError::Invalid(format!(
                    "{} Transferring gives {new_owner} every claim from now on: pass --yes",
                    unclaimed_notice(ctx, &current).await
                )));
            }
            let signature = ctx.send(&[ovpp::client::transfer_device(owner.pubkey(), &key, new_owner)], &[&owner]).await?;
            ctx.emit(
                json!({"device_key": key.to_string(), "new_owner": new_owner.to_string(), "signature": signature}),
                format!("Transferred device {key} to {new_owner}\nSignature: {signature}"),
            )
        }
        DeviceCommand::Retire { device, yes } => {
            let key = parse_pubkey(device, "device")?;
            let owner = ctx.keypair()?;
            let current = fetch_device(ctx, &key).await?;
            owned_by(&current, &owner)?;
            if !yes {
                return Err(CliError::Invalid(format!(
                    "{} Retiring {key} is final (no more claims, the key can never register again): pass --yes",
                    unclaimed_notice(ctx, &current).await
                )));
            }
            let signature = ctx.send(&[ovpp::client::retire_device(owner.pubkey(), &key)], &[&owner]).await?;
            ctx.emit(
                json!({"device_key": key.to_string(), "signature": signature}),
                format!("Retired device {key}\nSignature: {signature}"),
            )
        }
        DeviceCommand::Preferences { device_keypair, reserve_pct, departure, departure_soc_pct, opt_out_hours } => {
            set_preferences(ctx, device_keypair, *reserve_pct, departure.as_deref(), *departure_soc_pct, *opt_out_hours).await
        }
        DeviceCommand::Show { device } => {
            let d = fetch_device(ctx, &parse_pubkey(device, "device")?).await?;
            ctx.emit(device_json(&d), device_display(&d))
        }
        DeviceCommand::List { owner, kind, region } => {
            let owner = match owner.as_deref() {
                None => None,
                Some("me") => Some(ctx.keypair()?.pubkey()),
                Some(text) => Some(parse_pubkey(text, "owner")?),
            };
            let region = region.as_deref().map(region_bytes).transpose()?;
            let devices = list_devices(ctx, owner, kind.map(DeviceKind::from), region).await?;
            let mut display =
                format!("{:<44}  {:<13}  {:<9}  {:<8}  {:>10}  {:>11}", "DEVICE", "KIND", "STATUS", "REGION", "POWER W", "CAPACITY Wh");
            for d in &devices {
                display += &format!(
                    "\n{:<44}  {:<13}  {:<9}  {:<8}  {:>10}  {:>11}",
                    d.device_key.to_string(),
                    ovpp_wire::device::kind_name(d.kind),
                    status_name(d.status),
                    region_text(&d.region),
                    d.rated_power_w,
                    d.energy_capacity_wh
                );
            }
            display += &format!("\n{} device(s)", devices.len());
            ctx.emit(Value::Array(devices.iter().map(device_json).collect()), display)
        }
    }
}

/// What the device has earned and not claimed, as a sentence for a confirmation prompt
/// (saying so when the oracle cannot tell).
async fn unclaimed_notice(ctx: &Context<'_>, device: &Device) -> String {
    match crate::oracle::fetch_earned(ctx, &device.device_key).await {
        Ok(earned) => {
            let unclaimed = earned.map_or(0, |e| e.leaf.cumulative_amount.saturating_sub(device.claimed));
            if unclaimed == 0 {
                format!("Device {} has no unclaimed OVPP.", device.device_key)
            } else {
                format!(
                    "Device {} has {} OVPP unclaimed: claim it first (`ovpp rewards claim {}`).",
                    device.device_key,
                    format_ovpp(unclaimed),
                    device.device_key
                )
            }
        }
        Err(e) => format!("Unclaimed OVPP of {} unknown ({e}).", device.device_key),
    }
}

/// Refuses early, with the owner named, when --keypair does not own the device.
fn owned_by(device: &Device, owner: &Keypair) -> Result<(), CliError> {
    if device.owner != owner.pubkey() {
        return Err(CliError::Invalid(format!(
            "device {} is owned by {}, not by your keypair {}",
            device.device_key,
            device.owner,
            owner.pubkey()
        )));
    }
    Ok(())
}

fn keygen(ctx: &mut Context<'_>, outfile: &std::path::Path, force: bool) -> Result<(), CliError> {
    let keypair = Keypair::new();
    crate::write_keypair(&keypair, outfile, force)?;
    ctx.emit(
        json!({"device_key": keypair.pubkey().to_string(), "path": outfile.display().to_string()}),
        format!("Wrote device keypair {}\nDevice key: {}", outfile.display(), keypair.pubkey()),
    )
}
