//! The oracle's ingest API against the program-test chain: registry sync from real
//! `Device` accounts, acceptance, rejections, and the fleet and device views.
#![allow(deprecated)]

mod ingest;
