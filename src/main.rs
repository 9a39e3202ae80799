//! The `retention-operator` command line: `plan` and `crds`.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use retention_operator::{crds, manifest, report, retention};

/// Makes a web-hosting provider's data-retention promise executable.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what the operator would erase and when, from manifests, with no cluster.
    Plan {
        /// Manifest files or directories (searched recursively for *.yaml and *.yml); - reads
        /// standard input.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The instant to plan for (RFC 3339); defaults to the current time.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print every CRD as multi-document YAML, or write one file per CRD.
    Crds {
        /// Write `<plural>.hosting.ecuni.se.yaml` files into this directory instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-23T00:00:00Z: {e}"))
}

/// Exit code for input the user must fix (as clap uses for bad arguments).
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan { files, now, output } => plan(&files, now.unwrap_or_else(Utc::now), output),
        Command::Crds { out_dir: None } => crds::render_all().map_err(|e| (1, e.to_string())),
        Command::Crds { out_dir: Some(dir) } => crds::write_all(&dir)
            .map(|files| files.join("\n") + "\n")
            .map_err(|e| (1, e.to_string())),
    };
    // Everything is rendered before anything is printed, so bad input never half-prints.
    match result {
        Ok(text) => match io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (`| head`) is not an error worth a message.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write output: {e}");
                ExitCode::FAILURE
            }
        },
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn plan(files: &[PathBuf], now: DateTime<Utc>, output: Format) -> Result<String, (u8, String)> {
    let inventory = manifest::load(files).map_err(|e| (BAD_INPUT, e.to_string()))?;
    let plan = retention::plan(&inventory, now).map_err(|e| (BAD_INPUT, e.to_string()))?;
    match output {
        Format::Table => Ok(report::table(&plan)),
        Format::Json => report::json(&plan)
            .map(|json| json + "\n")
            .map_err(|e| (1, format!("cannot render JSON: {e}"))),
    }
}
