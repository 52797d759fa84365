//! Smart meters: a site's grid connection as its meter reports it, from the meter's own
//! interface (an optical or P1 port, read through a serial line or a TCP bridge such as
//! ser2net). Two formats: DSMR P1 telegrams (the Netherlands, Belgium, Luxembourg; text
//! with a CRC) and SML (Germany's smart meter language; binary, CRC-checked), each reduced
//! to the same [`Registers`]: import and export energy registers and the net power.

pub mod dsmr;
pub mod sml;

/// What one telegram or frame says about the grid connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Registers {
    /// Energy imported from the grid, all tariffs, Wh (a register: it only grows).
    pub import_wh: Option<f64>,
    /// Energy exported to the grid, all tariffs, Wh.
    pub export_wh: Option<f64>,
    /// Net active power now, W: positive while importing, negative while exporting.
    pub power_w: Option<f64>,
}

/// Why a telegram or frame was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MeterError {
    #[error("checksum mismatch: the telegram says {stated:04X}, its bytes give {computed:04X}")]
    Checksum { stated: u16, computed: u16 },
    #[error("malformed: {0}")]
    Malformed(String),
}
