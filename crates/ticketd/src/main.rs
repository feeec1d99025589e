//! `ticketd`: the complaint-handling ticket service's one binary.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
