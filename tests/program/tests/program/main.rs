//! The `ovpp` program on a solana-program-test chain: the happy path and every attack
//! the program must refuse, each with the error it must refuse it with.
#![allow(deprecated)]

mod admin;
mod claims;
mod devices;
mod epochs;
mod governance;
mod lifecycle;
mod prefund;
mod sizes;
