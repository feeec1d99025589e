//! `ticketd`: the complaint-handling ticket service's one binary.
//!
//! - [`cli`]: the commands (`serve`, `migrate`, `replay`, `token …`) and their configuration.
//! - [`server`]: the HTTP service's lifecycle.
//! - [`http`]: the HTTP API.
//! - [`auth`]: API tokens. [`idempotency`]: `Idempotency-Key` answers.

mod auth;
mod cli;
mod http;
mod idempotency;
mod server;

fn main() -> std::process::ExitCode {
    cli::main()
}
