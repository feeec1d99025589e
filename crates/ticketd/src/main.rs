//! `ticketd`: the complaint-handling ticket service's one binary.
//!
//! - [`cli`]: the commands (`serve`, `migrate`, `replay`, `token …`) and their configuration.
//! - [`server`]: the HTTP service's lifecycle.
//! - [`http`]: the HTTP API. [`pages`]: the public web pages (survey, contact form).
//! - [`auth`]: API tokens. [`idempotency`]: `Idempotency-Key` answers.

mod accounts;
mod auth;
mod cli;
mod commands;
mod console;
mod http;
mod idempotency;
mod intake;
mod metrics;
mod numbers;
#[cfg(feature = "otel")]
mod otel;
mod pages;
mod privacy;
mod record;
mod server;
mod sql;

fn main() -> std::process::ExitCode {
    cli::main()
}
