pub mod admin;
pub mod claim;
pub mod device;
pub mod governance;
pub mod initialize;
pub mod post_epoch;

pub use admin::*;
pub use claim::*;
pub use device::*;
pub use governance::*;
pub use initialize::*;
pub use post_epoch::*;
