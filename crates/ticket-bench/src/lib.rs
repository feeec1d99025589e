//! What the benchmark shares with the tests: the generated history.

pub mod history;
