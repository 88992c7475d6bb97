//! `ttpo` — the TTPO command-line tool. See docs/CLI.md.

mod args;
mod commands;
mod coverage;
mod engine;
mod error;
mod input;
mod models;
mod saved;
mod ui;

use args::{Cli, Command};
use clap::Parser;
use error::{code, CliResult};

fn main() {
    // The CLI is a process of our own: let malloc keep freed memory between tensors
    // (docs/BENCHMARKS.md; never done inside libttpo, which lives in other processes).
    ttpo::device::keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    std::process::exit(
                        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            code::USAGE
                        } else {
                            code::OK
                        },
                    );
                }
                _ => {
                    let msg = e.to_string();
                    let first = msg
                        .lines()
                        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim_start_matches("error: ")
                        .to_string();
                    eprintln!("error: {first} (see `ttpo --help`)");
                    std::process::exit(code::USAGE);
                }
            }
        }
    };
    ui::install_interrupt_handler();
    let result = run(cli);
    match result {
        Ok(()) => std::process::exit(code::OK),
        Err(e) => {
            eprintln!("error: {}", e.message);
            std::process::exit(e.code);
        }
    }
}

fn run(cli: Cli) -> CliResult<()> {
    let g = cli.global;
    match cli.command {
        Command::Refine(a) => commands::refine::run(&g, a),
        Command::Candidates(a) => commands::candidates::run(&g, a),
        Command::Score(a) => commands::score::run(&g, a),
        Command::Batch(a) => commands::batch::run(&g, a),
        Command::Restore(a) => commands::restore::run(&g, a),
        Command::Models(m) => commands::models::run(&g, m),
    }
}
