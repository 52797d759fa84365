//! Everything the fleet simulator sends passes ingest, and its physics look like a day.

use std::collections::HashMap;

use ovpp::state::DeviceKind;
use ovpp_simulator::{clear_sky_fraction, Fleet};
use ovpp_wire::telemetry::validate::{validate, DeviceCursor, Policy};

const DAY: i64 = 86_400;
/// 2026-06-21 00:00 UTC, midsummer.
const MIDSUMMER: i64 = 1_782_000_000 - 1_782_000_000 % DAY;

#[test]
fn two_simulated_days_pass_ingest_with_plausible_physics() {
    let mut fleet = Fleet::new(40, 7, 48.1, 11.6);
    let secs = 600;
    let end = MIDSUMMER + 2 * DAY;
    let mut cursors: HashMap<[u8; 32], DeviceCursor> = HashMap::new();
    let mut solar_noon_wh = 0u64;
    let mut solar_midnight_wh = 0u64;
    let mut ev_offline_midday = 0;
    let (mut meter_export_noon_wh, mut meter_import_evening_wh) = (0u64, 0u64);
    let (mut battery_soc_dawn, mut battery_soc_afternoon) = (Vec::new(), Vec::new());
    let mut t = MIDSUMMER;
    while t < end {
        let batches = fleet.tick(t, secs);
        for (batch, device) in batches.iter().zip(&fleet.devices) {
            assert!(batch.verify_signature());
            let cursor = cursors.entry(batch.batch.device_key).or_default();
            let result = validate(&batch.batch, Some(&device.profile), cursor, t + i64::from(secs), &Policy::default());
            assert_eq!(result, Ok(()), "{:?} at {t}: {:?}", device.profile.kind, batch.batch.readings[0]);
            *cursor = DeviceCursor {
                last_sequence: Some(batch.batch.sequence),
                last_interval_end: Some(t + i64::from(secs)),
                last_signature: None,
            };
            let r = batch.batch.readings[0];
            let local_h = ((t % DAY) as f64 / 3600.0 + 11.6 / 15.0) % 24.0;
            match device.profile.kind {
                DeviceKind::RooftopSolar if (11.5..12.5).contains(&local_h) => solar_noon_wh += u64::from(r.energy_generated_wh),
                DeviceKind::RooftopSolar if !(4.0..21.0).contains(&local_h) => solar_midnight_wh += u64::from(r.energy_generated_wh),
                DeviceKind::Ev if (11.0..14.0).contains(&local_h) && !r.online => ev_offline_midday += 1,
                DeviceKind::SmartMeter if (11.5..12.5).contains(&local_h) => meter_export_noon_wh += u64::from(r.energy_exported_wh),
                DeviceKind::SmartMeter if (18.5..20.0).contains(&local_h) => meter_import_evening_wh += u64::from(r.energy_imported_wh),
                DeviceKind::HomeBattery if (5.0..5.2).contains(&local_h) => battery_soc_dawn.extend(r.state_of_charge_permille),
                DeviceKind::HomeBattery if (16.0..16.2).contains(&local_h) => battery_soc_afternoon.extend(r.state_of_charge_permille),
                _ => {}
            }
            if let Some(soc) = r.state_of_charge_permille {
                assert!(soc <= 1000);
            }
        }
        t += i64::from(secs);
    }
    assert!(solar_noon_wh > 0, "PV produces at noon");
    assert_eq!(solar_midnight_wh, 0, "PV is dark at night");
    assert!(ev_offline_midday > 0, "EVs are away at midday");
    assert!(meter_export_noon_wh > 0 && meter_import_evening_wh > 0, "homes export at noon and import in the evening");
    let mean = |v: &[u16]| v.iter().map(|&x| u64::from(x)).sum::<u64>() / v.len().max(1) as u64;
    assert!(mean(&battery_soc_afternoon) > mean(&battery_soc_dawn) + 200, "batteries fill with midday solar");
}

#[test]
fn the_sun_rises_and_sets() {
    let noon_utc = MIDSUMMER + 12 * 3600;
    assert!(clear_sky_fraction(noon_utc, 48.1, 0.0) > 0.8);
    assert_eq!(clear_sky_fraction(MIDSUMMER, 48.1, 0.0), 0.0);
    // Winter noon is lower than summer noon at the same latitude.
    assert!(clear_sky_fraction(noon_utc + 182 * DAY, 48.1, 0.0) < clear_sky_fraction(noon_utc, 48.1, 0.0));
}

#[test]
fn the_same_seed_gives_the_same_keys() {
    let a = Fleet::new(5, 42, 48.0, 11.0);
    let b = Fleet::new(5, 42, 48.0, 11.0);
    let c = Fleet::new(5, 43, 48.0, 11.0);
    let keys = |f: &Fleet| f.devices.iter().map(|d| d.key.verifying_key().to_bytes()).collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));
    assert_ne!(keys(&a), keys(&c));
}
