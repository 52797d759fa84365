//! Fixtures shared by the test suites.

pub mod postgres;
