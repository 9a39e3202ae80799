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
    // Handle the signals before printing the address: a parent may send SIGTERM the moment it
    // has read it.
    let stop = stop_signal();
    // The address on stdout lets a parent process find the server.
    println!("{}", server.url());
    stop.await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Registers for Ctrl-C and SIGTERM now (a signal that arrives before registration kills the
/// process, and one that arrives during it can be lost); the future completes on either.
#[cfg(unix)]
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Ok(mut only), Err(error)) | (Err(error), Ok(mut only)) => {
                eprintln!("warning: cannot handle a signal: {error}");
                only.recv().await;
            }
            (Err(error), Err(_)) => eprintln!("error: cannot handle signals: {error}"),
        }
    }
}

#[cfg(not(unix))]
fn stop_signal() -> impl Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
