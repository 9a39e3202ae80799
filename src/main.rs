//! The `retention-operator` command line: `run`, `plan` and `crds`.

use std::{
    io::{self, IsTerminal, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use retention_operator::{
    clock::SystemClock,
    controller::{self, Settings},
    crds, http, manifest,
    metrics::Metrics,
    report, retention,
};

/// Makes a web-hosting provider's data-retention promise executable.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster (in-cluster config, or KUBECONFIG).
    Run {
        /// Do everything except deletes; what would be deleted is logged and reported as events.
        #[arg(long)]
        dry_run: bool,
        /// Accounts reconciled at once.
        #[arg(long, default_value_t = 8)]
        concurrency: u16,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
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
enum LogFormat {
    Text,
    Json,
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
        Command::Run {
            dry_run,
            concurrency,
            http_addr,
            log_format,
        } => {
            init_logging(log_format);
            run(dry_run, concurrency, http_addr)
                .map(|()| String::new())
                .map_err(|e| (1, e))
        }
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the operator and its HTTP endpoints until SIGTERM or Ctrl-C.
fn run(dry_run: bool, concurrency: u16, http_addr: SocketAddr) -> Result<(), String> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot reach the cluster: {e}"))?;
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .map_err(|e| format!("cannot listen on {http_addr}: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping");
            let _ = stop.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let state = http::HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        };
        let server = tokio::spawn(http::serve(listener, state, until_stopped()));
        let settings = Settings {
            clock: Arc::new(SystemClock),
            clock_moves: None,
            dry_run,
            concurrency: concurrency.max(1),
        };
        controller::run(client, settings, metrics, ready, until_stopped()).await;
        match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("metrics endpoint failed: {e}")),
            Err(e) => Err(format!("metrics endpoint failed: {e}")),
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    if let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
