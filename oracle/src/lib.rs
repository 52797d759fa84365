//! OpenVPP oracle (crate `ovpp-oracle`).
//!
//! Planned pipeline, built by later issues: ingest -> store -> fleet -> dispatch ->
//! measure -> score -> epoch -> relay. Until then this crate holds no behaviour: it only
//! links the program's shared definitions (PDA seeds, leaf hashing, epoch message, Merkle
//! tree) so the wire contracts stay in one place.

pub use ovpp::{merkle, protocol};
