//! `tenantry`: the admin binary. Inspects and repairs a tenantry database (SQLite file or
//! PostgreSQL): migrations, jobs, dead letters, spend, budgets and a health check. Every command
//! is a thin layer over the libraries' calls; see `tenantry --help` and the crate's README.
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod context;
mod exit;
mod output;
mod parse;
mod view;

use cli::{Cli, Command};
use exit::Failure;

async fn run(cli: &Cli) -> Result<(), Failure> {
    let url = cli.database.as_deref();
    let json = cli.json;
    match &cli.command {
        Command::Migrate(args) => commands::migrate::run(url, args, json).await,
        Command::Doctor(args) => commands::doctor::run(url, args, json).await,
        command => {
            let t = context::handle(context::connect(url, false).await?).await?;
            match command {
                Command::Jobs(c) => commands::jobs::run(&t, c, json).await,
                Command::DeadLetters(c) => commands::dead_letters::run(&t, c, json).await,
                Command::Spend(args) => commands::spend::run(&t, args, json).await,
                Command::Budgets(c) => commands::budgets::run(&t, c, json).await,
                Command::Batches(c) => commands::batches::run(&t, c, json).await,
                Command::Migrate(_) | Command::Doctor(_) => unreachable!("handled above"),
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            if cli.json {
                eprintln!(
                    "{}",
                    serde_json::json!({"error": failure.name(), "message": failure.message})
                );
            } else {
                eprintln!("tenantry: {failure}");
            }
            ExitCode::from(failure.code)
        }
    }
}
