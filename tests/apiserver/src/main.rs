//! `test-apiserver --port 0 --crds crds/ --kubeconfig OUT`: serves until stopped (Ctrl-C or
//! SIGTERM), writes a kubeconfig for itself, and prints the address.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use test_apiserver::{Config, TestApiServer};

/// An in-memory Kubernetes API server for tests.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// CRD files or directories to serve (repeatable).
    #[arg(long = "crds")]
    crds: Vec<PathBuf>,
    /// Write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch events retained for resuming watches.
    #[arg(long, default_value_t = 10_000)]
    event_window: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 1)]
    bookmark_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config::default()
        .event_window(args.event_window)
        .bookmark_interval(Duration::from_secs(args.bookmark_seconds.max(1)));
    config.port = args.port;
    config.crd_paths = args.crds;
    let server = match TestApiServer::start(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.kubeconfig
        && let Err(error) = std::fs::write(path, server.kubeconfig())
    {
        eprintln!("error: cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    // The address on stdout lets a parent process find the server.
    println!("{}", server.url());
    wait_for_stop().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = interrupt.await;
}
