//! Where the points are (offsets from each model's ID register, per the SunSpec model
//! definitions) and what the gateway reads and writes there.

use tokio_modbus::client::Context;

use super::{read, revert_secs, write, ModbusError};
use crate::adapter::SetPoint;
use crate::config::{SunSpecConfig, SunSpecKind};

/// Where each model the gateway uses starts (its ID register), and its length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Models {
    pub common: Option<u16>,
    /// Inverter 101, 102 or 103 (the same layout) and its address.
    pub inverter: Option<(u16, u16)>,
    pub controls: Option<u16>,
    pub storage: Option<u16>,
    /// Meter 201 to 204 (the same layout) and its address.
    pub meter: Option<(u16, u16)>,
}

// Model 1 (common).
const MN: u16 = 2;
const MD: u16 = 18;
const SN: u16 = 50;
// Inverters 101-103.
const INV_W: u16 = 14;
const INV_W_SF: u16 = 15;
const INV_WH: u16 = 24;
const INV_WH_SF: u16 = 26;
const INV_ST: u16 = 38;
const INV_EVT1: u16 = 40;
const INV_LEN: u16 = 52;
const ST_FAULT: u16 = 7;
// Immediate controls 123.
const CTL_WMAXLIMPCT: u16 = 5;
const CTL_WMAXLIM_ENA: u16 = 9;
const CTL_WMAXLIMPCT_SF: u16 = 23;
const CTL_LEN: u16 = 26;
// Storage 124.
const STO_WCHAMAX: u16 = 2;
const STO_STORCTL_MOD: u16 = 5;
const STO_MINRSVPCT: u16 = 7;
const STO_CHASTATE: u16 = 8;
const STO_OUTWRTE: u16 = 12;
const STO_INOUTWRTE_RVRTTMS: u16 = 15;
const STO_WCHAMAX_SF: u16 = 18;
const STO_MINRSVPCT_SF: u16 = 21;
const STO_CHASTATE_SF: u16 = 22;
const STO_INOUTWRTE_SF: u16 = 25;
const STO_LEN: u16 = 26;
// The writes below cover runs of neighbouring points.
const _: () = assert!(CTL_WMAXLIMPCT + 4 == CTL_WMAXLIM_ENA && STO_OUTWRTE + 3 == STO_INOUTWRTE_RVRTTMS);
/// StorCtl_Mod bits.
const CHARGE: u16 = 1;
const DISCHARGE: u16 = 2;
// Meters 201-204.
const MTR_W: u16 = 18;
const MTR_W_SF: u16 = 22;
const MTR_TOTWHEXP: u16 = 38;
const MTR_TOTWHIMP: u16 = 46;
const MTR_TOTWH_SF: u16 = 54;
const MTR_LEN: u16 = 107;

/// `value * 10^sf`, or none when either says "not implemented".
fn scaled(value: Option<f64>, sf: u16) -> Option<f64> {
    let sf = sf as i16;
    (sf != i16::MIN && (-10..=10).contains(&sf)).then(|| value.map(|v| v * 10f64.powi(i32::from(sf)))).flatten()
}

fn uint16(w: u16) -> Option<f64> {
    (w != 0xFFFF).then_some(f64::from(w))
}

fn int16(w: u16) -> Option<f64> {
    (w != 0x8000).then_some(f64::from(w as i16))
}

fn acc32(hi: u16, lo: u16) -> Option<f64> {
    Some(f64::from((u32::from(hi) << 16) | u32::from(lo)))
}

fn text(words: &[u16]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).take_while(|b| *b != 0).collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// What one poll read, in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Polled {
    /// AC power out of the device, W (an inverter's output; a battery's discharge).
    pub power_w: Option<f64>,
    /// An inverter's lifetime energy, Wh.
    pub energy_wh: Option<f64>,
    pub import_wh: Option<f64>,
    pub export_wh: Option<f64>,
    pub soc_percent: Option<f64>,
    pub reserve_percent: Option<f64>,
    pub max_rate_w: Option<f64>,
    pub fault: bool,
}

impl Models {
    pub(super) fn found(&mut self, id: u16, address: u16, length: u16) {
        match id {
            1 => self.common = Some(address),
            101..=103 if length + 2 >= INV_LEN => self.inverter = Some((id, address)),
            123 if length + 2 >= CTL_LEN => self.controls = Some(address),
            124 if length + 2 >= STO_LEN => self.storage = Some(address),
            201..=204 if length + 2 >= MTR_LEN => self.meter = Some((id, address)),
            _ => {}
        }
    }

    /// The models a device of `kind` cannot be read without.
    pub fn check(&self, kind: SunSpecKind) -> Result<(), String> {
        match kind {
            SunSpecKind::Solar if self.inverter.is_none() => Err("no inverter model (101, 102 or 103)".into()),
            SunSpecKind::Battery if self.storage.is_none() => Err("no storage model (124)".into()),
            SunSpecKind::Meter if self.meter.is_none() => Err("no meter model (201 to 204)".into()),
            _ => Ok(()),
        }
    }

    /// Manufacturer, model and serial number from model 1.
    pub(super) async fn identity(&self, ctx: &mut Context) -> Result<String, ModbusError> {
        let Some(at) = self.common else { return Ok(String::new()) };
        let words = read(ctx, at, 66).await?;
        let field = |from: u16, len: u16| text(&words[usize::from(from)..usize::from(from + len)]);
        Ok(format!("{} {} (serial {})", field(MN, 16), field(MD, 16), field(SN, 16)))
    }

    pub(super) async fn poll(&self, ctx: &mut Context, kind: SunSpecKind) -> Result<Polled, ModbusError> {
        let mut p = Polled::default();
        if let Some((_, at)) = self.inverter {
            let w = read(ctx, at, INV_LEN).await?;
            let r = |o: u16| w[usize::from(o)];
            p.power_w = scaled(int16(r(INV_W)), r(INV_W_SF));
            p.energy_wh = scaled(acc32(r(INV_WH), r(INV_WH + 1)), r(INV_WH_SF));
            p.fault = r(INV_ST) == ST_FAULT || (r(INV_EVT1) | r(INV_EVT1 + 1)) != 0;
        }
        if let (Some(at), SunSpecKind::Battery) = (self.storage, kind) {
            let w = read(ctx, at, STO_LEN).await?;
            let r = |o: u16| w[usize::from(o)];
            p.soc_percent = scaled(uint16(r(STO_CHASTATE)), r(STO_CHASTATE_SF));
            p.reserve_percent = scaled(uint16(r(STO_MINRSVPCT)), r(STO_MINRSVPCT_SF));
            p.max_rate_w = scaled(uint16(r(STO_WCHAMAX)), r(STO_WCHAMAX_SF));
        }
        if let (Some((_, at)), SunSpecKind::Meter) = (self.meter, kind) {
            let w = read(ctx, at, MTR_LEN).await?;
            let r = |o: u16| w[usize::from(o)];
            p.power_w = scaled(int16(r(MTR_W)), r(MTR_W_SF));
            p.export_wh = scaled(acc32(r(MTR_TOTWHEXP), r(MTR_TOTWHEXP + 1)), r(MTR_TOTWH_SF));
            p.import_wh = scaled(acc32(r(MTR_TOTWHIMP), r(MTR_TOTWHIMP + 1)), r(MTR_TOTWH_SF));
        }
        Ok(p)
    }

    /// Writes `command`, then reads the registers back: `Ok` only if the device holds them.
    pub(super) async fn command(&self, ctx: &mut Context, command: &Command) -> Result<(), ModbusError> {
        let (at, first, words) = match *command {
            Command::Curtail { limit_w, rated_w, revert } => {
                let at =
                    self.controls.ok_or_else(|| ModbusError::MissingModel("no immediate controls model (123) for curtailment".into()))?;
                let sf = read(ctx, at + CTL_WMAXLIMPCT_SF, 1).await?[0] as i16;
                let pct = (limit_w / rated_w * 100.0).clamp(0.0, 100.0);
                let raw = (pct / 10f64.powi(i32::from(sf))).round() as u16;
                // WMaxLimPct, its window, its revert timeout, its ramp, WMaxLim_Ena.
                (at, CTL_WMAXLIMPCT, vec![raw, 0, revert, 0, 1])
            }
            Command::EndCurtail => {
                let at = self.controls.ok_or_else(|| ModbusError::MissingModel("no immediate controls model (123)".into()))?;
                (at, CTL_WMAXLIM_ENA, vec![0])
            }
            Command::Storage { mode, rate_w, revert } => {
                let at = self.storage.ok_or_else(|| ModbusError::MissingModel("no storage model (124)".into()))?;
                let head = read(ctx, at, STO_LEN).await?;
                let max = scaled(uint16(head[usize::from(STO_WCHAMAX)]), head[usize::from(STO_WCHAMAX_SF)])
                    .filter(|m| *m > 0.0)
                    .ok_or_else(|| ModbusError::MissingModel("the storage model has no WChaMax".into()))?;
                let sf = head[usize::from(STO_INOUTWRTE_SF)] as i16;
                let pct = (rate_w / max * 100.0).clamp(0.0, 100.0);
                let raw = ((pct / 10f64.powi(i32::from(sf))).round() as i16) as u16;
                let (out_rate, in_rate) = if mode == DISCHARGE { (raw, 0) } else { (0, raw) };
                // OutWRte, InWRte, their window and revert timeout, first; then the mode.
                write(ctx, at + STO_OUTWRTE, &[out_rate, in_rate, 0, revert]).await?;
                let back = read(ctx, at + STO_OUTWRTE, 4).await?;
                if back != [out_rate, in_rate, 0, revert] {
                    return Err(ModbusError::Io(format!("the rates read back as {back:?}, not {:?}", [out_rate, in_rate, 0, revert])));
                }
                (at, STO_STORCTL_MOD, vec![mode])
            }
            Command::EndStorage => {
                let at = self.storage.ok_or_else(|| ModbusError::MissingModel("no storage model (124)".into()))?;
                (at, STO_STORCTL_MOD, vec![0])
            }
        };
        write(ctx, at + first, &words).await?;
        let back = read(ctx, at + first, words.len() as u16).await?;
        if back != words {
            return Err(ModbusError::Io(format!("registers at {} read back as {back:?}, not {words:?}", at + first)));
        }
        Ok(())
    }
}

/// A set point in a SunSpec device's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Limit an inverter's output to `limit_w` of `rated_w` (model 123).
    Curtail {
        limit_w: f64,
        rated_w: f64,
        revert: u16,
    },
    EndCurtail,
    /// Charge or discharge at `rate_w` (model 124).
    Storage {
        mode: u16,
        rate_w: f64,
        revert: u16,
    },
    EndStorage,
}

impl Command {
    /// What `setpoint` (W: + deliver, - absorb) asks of `config`'s device, which outputs
    /// `power_w` now; none ends the set point.
    pub fn for_setpoint(config: &SunSpecConfig, power_w: f64, setpoint: Option<&SetPoint>, now: i64) -> Result<Self, String> {
        let rated = config.power_w as f64;
        match (config.kind, setpoint) {
            (SunSpecKind::Meter, _) => Err(format!("{} is a meter: it measures, it cannot follow a set point", config.name)),
            (SunSpecKind::Solar, None) => Ok(Command::EndCurtail),
            (SunSpecKind::Battery, None) => Ok(Command::EndStorage),
            (SunSpecKind::Solar, Some(sp)) if sp.setpoint_w > 0 => {
                Err(format!("{} is a PV inverter: it cannot produce more than the sun gives", config.name))
            }
            (SunSpecKind::Solar, Some(sp)) => Ok(Command::Curtail {
                limit_w: (power_w.max(0.0) - sp.setpoint_w.unsigned_abs() as f64).max(0.0),
                rated_w: rated,
                revert: revert_secs(sp.valid_until, now),
            }),
            (SunSpecKind::Battery, Some(sp)) => Ok(Command::Storage {
                mode: if sp.setpoint_w >= 0 { DISCHARGE } else { CHARGE },
                rate_w: (sp.setpoint_w.unsigned_abs() as f64).min(rated),
                revert: revert_secs(sp.valid_until, now),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: SunSpecKind) -> SunSpecConfig {
        SunSpecConfig {
            name: "d".into(),
            kind,
            address: "127.0.0.1:502".into(),
            unit_id: 1,
            region: "DE-BY".into(),
            power_w: 6_000,
            capacity_wh: 0,
            poll_secs: 10,
            interval_secs: 60,
        }
    }

    fn sp(w: i64) -> SetPoint {
        SetPoint { command_id: "c".into(), setpoint_w: w, valid_from: 1_000, valid_until: 1_060 }
    }

    #[test]
    fn scale_factors_and_unimplemented_points() {
        assert_eq!(scaled(Some(1234.0), (-2i16) as u16), Some(12.34));
        assert_eq!(scaled(Some(5.0), 3), Some(5000.0));
        assert_eq!(scaled(Some(5.0), 0x8000), None);
        assert_eq!((uint16(0xFFFF), int16(0x8000), int16(0xFFFE)), (None, None, Some(-2.0)));
        assert_eq!(text(&[0x4142, 0x4300, 0]), "ABC");
    }

    #[test]
    fn set_points_in_sunspec_terms() {
        // Curtail 1 kW off 4 kW of output, reverting 30 s after the end.
        let c = Command::for_setpoint(&config(SunSpecKind::Solar), 4_000.0, Some(&sp(-1_000)), 1_000).unwrap();
        assert_eq!(c, Command::Curtail { limit_w: 3_000.0, rated_w: 6_000.0, revert: 90 });
        assert!(Command::for_setpoint(&config(SunSpecKind::Solar), 4_000.0, Some(&sp(500)), 1_000).is_err());
        assert_eq!(Command::for_setpoint(&config(SunSpecKind::Solar), 0.0, None, 1_000).unwrap(), Command::EndCurtail);
        let discharge = Command::for_setpoint(&config(SunSpecKind::Battery), 0.0, Some(&sp(2_500)), 1_030).unwrap();
        assert_eq!(discharge, Command::Storage { mode: DISCHARGE, rate_w: 2_500.0, revert: 60 });
        let charge = Command::for_setpoint(&config(SunSpecKind::Battery), 0.0, Some(&sp(-9_000)), 1_000).unwrap();
        assert_eq!(charge, Command::Storage { mode: CHARGE, rate_w: 6_000.0, revert: 90 });
        assert!(Command::for_setpoint(&config(SunSpecKind::Meter), 0.0, Some(&sp(1)), 1_000).is_err());
    }
}
