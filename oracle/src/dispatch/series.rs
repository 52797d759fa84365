//! A device's metered history as baselines read it: net import (`import - export`, Wh) per
//! metering slot.

use std::collections::HashMap;

/// Net import per slot, keyed by slot `(t - origin) / slot_secs`.
pub struct LoadSeries {
    pub slot_secs: i64,
    /// Any time on the devices' slot grid.
    pub origin: i64,
    pub slots: HashMap<i64, f64>,
}

impl LoadSeries {
    /// The slot starting at `t`, if `t` is on the grid.
    pub fn slot_at(&self, t: i64) -> Option<i64> {
        let offset = t - self.origin;
        (self.slot_secs > 0 && offset % self.slot_secs == 0).then(|| offset.div_euclid(self.slot_secs))
    }

    /// The mean over `slots`, `None` if any is missing or there are none.
    pub fn mean(&self, slots: impl Iterator<Item = i64>) -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0usize);
        for s in slots {
            sum += *self.slots.get(&s)?;
            n += 1;
        }
        (n > 0).then(|| sum / n as f64)
    }
}
