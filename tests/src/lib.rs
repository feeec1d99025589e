//! Shared test support: the store backends under test, and the conformance suite every
//! backend must pass (`store_conformance_suite!`).

pub mod backends;
pub mod conformance;
