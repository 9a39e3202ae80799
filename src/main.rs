//! The `retention-operator` command line: `run`, `plan`, `inventory`, `records`, `crds` and
//! `chart-kinds`.

// Short functions: clippy.toml sets the limit.
#![warn(clippy::too_many_lines)]

use std::{
    io::{self, IsTerminal, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use retention_operator::{
    api, audit,
    clock::SystemClock,
    controller::{self, InitialLists, Settings},
    crds, http,
    leader::{Fence, LeaderSettings, Leadership, run_as_leader, shards::run_shards},
    manifest,
    metrics::Metrics,
    records, report, retention,
    shard::Shard,
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
    /// See the operator work without a cluster: the real operator on an in-memory API server
    /// with the examples (or your manifests), its clock running fast, printing a timeline of
    /// what it schedules, deletes and asks processors to erase. kubectl works against it while
    /// it runs.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Run the operator against the cluster (in-cluster config, or KUBECONFIG).
    Run(RunArgs),
    /// Show what the operator would erase and when: from manifests with no cluster, or read
    /// from a live cluster (`--cluster`, read only) before installing it there.
    Plan {
        #[command(flatten)]
        source: SourceArgs,
        /// The instant to plan for (RFC 3339); defaults to the current time.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print the record of processing activities (GDPR Art. 30(1)) the objects state: per
    /// category of personal data its purposes, legal bases, recipients, third-country
    /// transfers and retention periods. From manifests, or read from a live cluster
    /// (`--cluster`, read only).
    Records {
        #[command(flatten)]
        source: SourceArgs,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordsFormat::Markdown)]
        output: RecordsFormat,
    },
    /// Print every CRD as multi-document YAML, write one file per CRD, or apply them to a
    /// cluster (the chart's pre-upgrade hook: Helm installs CRDs only on the first install).
    Crds {
        /// Write `<plural>.hosting.ecuni.se.yaml` files into this directory instead.
        #[arg(long, conflicts_with = "apply")]
        out_dir: Option<PathBuf>,
        /// Apply them to the cluster (server-side, forcing ownership) and wait until each is
        /// Established.
        #[arg(long)]
        apply: bool,
        /// The kubeconfig for `--apply` (default: $KUBECONFIG, ~/.kube/config, or the
        /// in-cluster config).
        #[arg(long, requires = "apply")]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig context for `--apply` (default: the current context).
        #[arg(long, requires = "apply")]
        context: Option<String>,
    },
    /// Print the chart's generated list of bound kinds (its RBAC rules' resources), the
    /// content of `charts/retention-operator/templates/_bound-kinds.tpl`.
    ChartKinds,
    /// List the ErasureReceipts (of one account) from the cluster and verify each digest;
    /// exits 1 when one does not verify.
    Receipts {
        /// Only this account's receipts.
        account: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List everything stored about one account, with its schedule (the customer's right of
    /// access), read from the cluster.
    Inventory {
        /// The Account's name.
        account: String,
        /// The instant to plan for (RFC 3339); defaults to the current time.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print a completion script for the shell: `source <(retention-operator completions
    /// bash)`, or as `kubectl-retention`, completions for the plugin's name.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What the sandbox runs.
#[cfg(feature = "sandbox")]
#[derive(clap::Args)]
struct SandboxArgs {
    /// Manifest files or directories to load instead of the built-in examples.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// How many times faster than real time the clock runs (86400: a day per second).
    #[arg(long, default_value_t = 86_400.0)]
    speed: f64,
    /// Where the clock starts (RFC 3339). Default: 2026-11-23T00:00:00Z for the examples,
    /// which their dates are chosen for; the current time for your own manifests.
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Where the clock stops (RFC 3339). Default: 31 days after --from.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// The in-memory API server's port on 127.0.0.1 (0: a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig for kubectl (removed when the sandbox ends).
    #[arg(long, default_value = "sandbox.kubeconfig")]
    kubeconfig: PathBuf,
    /// After the summary, keep the API server up for kubectl until Ctrl-C.
    #[arg(long)]
    stay: bool,
}

/// The cluster a command reads.
#[derive(clap::Args)]
struct ClusterArgs {
    /// The kubeconfig (default: $KUBECONFIG, ~/.kube/config, or the in-cluster config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current context).
    #[arg(long)]
    context: Option<String>,
}

/// Where `plan` and `records` read the objects: manifests, or a live cluster.
#[derive(clap::Args)]
struct SourceArgs {
    /// Manifest files or directories (searched recursively for *.yaml and *.yml); - reads
    /// standard input.
    #[arg(
        short = 'f',
        long = "filename",
        num_args = 1..,
        required_unless_present = "cluster",
        conflicts_with = "cluster"
    )]
    files: Vec<PathBuf>,
    /// Read the objects from the cluster instead (LISTs only: nothing is written).
    #[arg(long)]
    cluster: bool,
    /// The kubeconfig for `--cluster` (default: $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster config).
    #[arg(long, requires = "cluster")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for `--cluster` (default: the current context).
    #[arg(long, requires = "cluster")]
    context: Option<String>,
}

/// Options of `run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Do everything except deletes; what would be deleted is logged and reported as events.
    #[arg(long)]
    dry_run: bool,
    /// Accounts reconciled at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// How long before a deletion a `DeletionUpcoming` event announces it (`0s` for none).
    #[arg(long, default_value = "24h", value_parser = parse_notice)]
    advance_notice: TimeDelta,
    /// The least time between two writes of a RetentionPolicy's brake count (whole seconds):
    /// the brake costs at most one status write per this much deleting (or per 2,000 deletions
    /// of a burst, whose next write goes once the last one's deletions are made), and a
    /// deletion that was not admitted with the last write may wait this long for the next.
    #[arg(long, default_value = "10s", value_parser = parse_lease_time)]
    brake_write_interval: Duration,
    /// How the caches fill at start and after a watch cannot resume: `auto` uses streaming
    /// lists (one watch per kind that sends every object first) when the API server answers a
    /// probe with them, paged lists otherwise.
    #[arg(long, value_enum, default_value_t = InitialLists::Auto)]
    initial_lists: InitialLists,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Act only while holding the Lease, so that of several replicas only one deletes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "retention-operator")]
    lease_name: String,
    /// Divide the accounts over this many shards, each owned through a Lease of its own
    /// (`<lease-name>-<i>-of-<N>`): the replicas share the shards and take over a dead
    /// replica's. Every replica must run with the same number; 1 does not shard.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    shards: u32,
    /// Namespace of the Lease; defaults to $POD_NAMESPACE, else `default`.
    #[arg(long)]
    lease_namespace: Option<String>,
    /// How long the Lease stays valid after a renewal (whole seconds, e.g. `15s`).
    #[arg(long, default_value = "15s", value_parser = parse_lease_time)]
    lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops acting and exits. The rest of
    /// the lease duration is the longest any request of the operator may take (fencing).
    #[arg(long, default_value = "10s", value_parser = parse_lease_time)]
    lease_renew_deadline: Duration,
    /// How often the leader renews the Lease and a standby tries to take it over.
    #[arg(long, default_value = "2s", value_parser = parse_lease_time)]
    lease_retry_period: Duration,
    /// A network (CIDR, e.g. 10.20.0.0/16) whose addresses processor webhooks may use although
    /// they are private, loopback or link-local; repeatable. Without it such webhooks are
    /// refused.
    #[arg(long = "webhook-allow-cidr", value_name = "CIDR")]
    webhook_allow_cidr: Vec<ipnet::IpNet>,
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

#[derive(Clone, Copy, ValueEnum)]
enum RecordsFormat {
    Markdown,
    Json,
    Csv,
}

/// A duration in the RetentionPolicy's notation (`24h`, `7d`), at most ten years.
fn parse_notice(text: &str) -> Result<TimeDelta, String> {
    let duration: api::RetentionDuration = text.parse().map_err(|e| format!("{e}"))?;
    duration
        .to_delta()
        .filter(|d| *d <= TimeDelta::days(3653))
        .ok_or_else(|| format!("{text} is longer than ten years"))
}

/// A lease timing in the RetentionPolicy's notation (`15s`, `1m`), between 1 s and 1 h.
fn parse_lease_time(text: &str) -> Result<Duration, String> {
    let duration: api::RetentionDuration = text.parse().map_err(|e| format!("{e}"))?;
    duration
        .to_delta()
        .and_then(|d| d.to_std().ok())
        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(d))
        .ok_or_else(|| format!("{text} is not between 1s and 1h"))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-23T00:00:00Z: {e}"))
}

/// Exit code for input the user must fix (as clap uses for bad arguments).
const BAD_INPUT: u8 = 2;

/// The name the binary is called by: installed as `kubectl-retention`, it is the kubectl plugin
/// `kubectl retention`, and its help and completions say so.
fn called_as() -> String {
    let invoked = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match invoked.as_deref() {
        Some("kubectl-retention") => "kubectl retention".to_owned(),
        _ => "retention-operator".to_owned(),
    }
}

/// The completion script of `shell` for the command `bin_name`.
fn completions(shell: clap_complete::Shell, bin_name: &str) -> String {
    let mut script = Vec::new();
    // kubectl completes a plugin's arguments through `kubectl_complete-<plugin>`; the script
    // for the binary's own name is what the shell needs either way.
    let name = bin_name.replace("kubectl ", "kubectl-");
    clap_complete::generate(shell, &mut Cli::command(), name, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

fn main() -> ExitCode {
    let bin_name = called_as();
    let matches = Cli::command().bin_name(&bin_name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let result = match cli.command {
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox(args).map(|()| String::new()),
        Command::Run(args) => {
            init_logging(args.log_format);
            run(args).map(|()| String::new()).map_err(|e| (1, e))
        }
        Command::Plan {
            source,
            now,
            output,
        } => plan(
            PlanSource::new(source),
            now.unwrap_or_else(Utc::now),
            output,
        ),
        Command::Records { source, output } => records(PlanSource::new(source), output),
        Command::Crds {
            apply: true,
            kubeconfig,
            context,
            ..
        } => apply_crds(kubeconfig, context),
        Command::Crds {
            out_dir: Some(dir), ..
        } => crds::write_all(&dir)
            .map(|files| files.join("\n") + "\n")
            .map_err(|e| (1, e.to_string())),
        Command::Crds { .. } => crds::render_all().map_err(|e| (1, e.to_string())),
        Command::ChartKinds => Ok(crds::render_chart_kinds()),
        Command::Inventory {
            account,
            now,
            cluster,
            output,
        } => inventory(&account, now, cluster, output),
        Command::Receipts {
            account,
            cluster,
            output,
        } => receipts(account.as_deref(), cluster, output),
        Command::Completions { shell } => Ok(completions(shell, &bin_name)),
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

/// Runs the sandbox: its timeline goes to stdout as it happens, the operator's log (warnings
/// and errors only, unless `RUST_LOG` says otherwise) to stderr.
#[cfg(feature = "sandbox")]
fn sandbox(args: SandboxArgs) -> Result<(), (u8, String)> {
    use retention_operator::sandbox::{self, DEFAULT_SPAN, EXAMPLES_NOW, Options};
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let from = match (args.from, args.files.is_empty()) {
        (Some(from), _) => from,
        (None, true) => parse_time(EXAMPLES_NOW).map_err(|e| (1, e))?,
        (None, false) => Utc::now(),
    };
    let options = Options {
        manifests: args.files,
        speed: args.speed,
        from,
        until: args.until.unwrap_or(from + DEFAULT_SPAN),
        port: args.port,
        kubeconfig: args.kubeconfig,
        stay: args.stay,
    };
    options.validate().map_err(|e| (BAD_INPUT, e.to_string()))?;
    let (timeline_layer, timeline) = sandbox::timeline::layer();
    let phases = timeline_layer.sender();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_filter(filter)
        .with_filter(audit::not_audit());
    tracing_subscriber::registry()
        .with(log)
        .with(timeline_layer)
        .init();
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| (1, format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(sandbox::run(options, timeline, phases))
        .map_err(|e| {
            let code = if e.is_bad_input() { BAD_INPUT } else { 1 };
            (code, e.to_string())
        })
}

/// Where `plan` reads the objects.
enum PlanSource {
    /// Manifests.
    Files(Vec<PathBuf>),
    /// A live cluster.
    Cluster {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
}

impl PlanSource {
    /// The cluster with `--cluster`, else the files.
    fn new(args: SourceArgs) -> Self {
        if args.cluster {
            Self::Cluster {
                kubeconfig: args.kubeconfig,
                context: args.context,
            }
        } else {
            Self::Files(args.files)
        }
    }
}

fn plan(source: PlanSource, now: DateTime<Utc>, output: Format) -> Result<String, (u8, String)> {
    let inventory = load(source)?;
    let plan = retention::plan(&inventory, now).map_err(|e| (BAD_INPUT, e.to_string()))?;
    match output {
        Format::Table => Ok(report::table(&plan) + &report::due_now(&plan, &inventory)),
        Format::Json => report::json(&plan)
            .map(|json| json + "\n")
            .map_err(|e| (1, format!("cannot render JSON: {e}"))),
    }
}

/// The record of processing activities of the objects `source` holds.
fn records(source: PlanSource, output: RecordsFormat) -> Result<String, (u8, String)> {
    let inventory = load(source)?;
    let records = records::derive(&inventory).map_err(|e| (BAD_INPUT, e.to_string()))?;
    match output {
        RecordsFormat::Markdown => Ok(records::markdown(&records)),
        RecordsFormat::Json => {
            records::json(&records).map_err(|e| (1, format!("cannot render JSON: {e}")))
        }
        RecordsFormat::Csv => Ok(records::csv(&records)),
    }
}

/// Reads the objects `plan` and `records` work on: manifests (bad input exits 2), or LISTs of
/// a live cluster.
fn load(source: PlanSource) -> Result<retention::Inventory, (u8, String)> {
    Ok(match source {
        PlanSource::Files(files) => {
            manifest::load(&files).map_err(|e| (BAD_INPUT, e.to_string()))?
        }
        PlanSource::Cluster {
            kubeconfig,
            context,
        } => with_cluster(
            kubeconfig.as_deref(),
            context.as_deref(),
            |client| async move {
                retention_operator::inventory::collect_cluster(&client)
                    .await
                    .map_err(|e| (e.exit_code(), e.to_string()))
            },
        )?,
    })
}

/// Applies every CRD to the cluster and waits until each is Established.
fn apply_crds(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> Result<String, (u8, String)> {
    let applied = with_cluster(
        kubeconfig.as_deref(),
        context.as_deref(),
        |client| async move {
            crds::apply_all(&client)
                .await
                .map_err(|e| (1, e.to_string()))
        },
    )?;
    Ok(applied
        .iter()
        .map(|name| format!("customresourcedefinition/{name} applied and Established\n"))
        .collect())
}

/// Lists the receipts and verifies their digests. The listing is printed either way; a receipt
/// whose digest does not verify makes the command fail after it.
fn receipts(
    account: Option<&str>,
    cluster: ClusterArgs,
    output: Format,
) -> Result<String, (u8, String)> {
    use retention_operator::receipts;
    let found = with_cluster(
        cluster.kubeconfig.as_deref(),
        cluster.context.as_deref(),
        |client| async move {
            retention_operator::inventory::receipts(&client, account)
                .await
                .map_err(|e| (e.exit_code(), e.to_string()))
        },
    )?;
    let views = receipts::views(&found);
    let text = match output {
        Format::Table => receipts::table(&views),
        Format::Json => serde_json::to_string_pretty(&views)
            .map(|json| json + "\n")
            .map_err(|e| (1, format!("cannot render JSON: {e}")))?,
    };
    let tampered: Vec<&str> = views
        .iter()
        .filter(|v| !v.verified)
        .map(|v| v.name.as_str())
        .collect();
    if tampered.is_empty() {
        return Ok(text);
    }
    let _ = io::stdout().lock().write_all(text.as_bytes());
    Err((
        1,
        format!(
            "the digest of {} does not verify: the spec was changed after the operator wrote it",
            tampered.join(", ")
        ),
    ))
}

/// Runs `work` with a client of the cluster (see [`kubeconfig_client`]) on a runtime of its own:
/// the commands that read or write a cluster, as opposed to `run`.
fn with_cluster<T, F, Fut>(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
    work: F,
) -> Result<T, (u8, String)>
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, (u8, String)>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let client = kubeconfig_client(kubeconfig, context)
            .await
            .map_err(|e| (1, e))?;
        work(client).await
    })
}

/// A client of the kubeconfig at `path` (else the usual search), in `context` (else the current
/// one).
async fn kubeconfig_client(
    path: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, String> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match (path, context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("cannot use the kubeconfig: {e}"))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| format!("cannot find a cluster configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot reach the cluster: {e}"))
}

/// Reads the account's objects from the cluster and renders their plan; nothing is logged.
fn inventory(
    account: &str,
    now: Option<DateTime<Utc>>,
    cluster: ClusterArgs,
    output: Format,
) -> Result<String, (u8, String)> {
    use retention_operator::inventory;
    let found = with_cluster(
        cluster.kubeconfig.as_deref(),
        cluster.context.as_deref(),
        |client| async move {
            inventory::collect(&client, account)
                .await
                .map_err(|e| (e.exit_code(), e.to_string()))
        },
    )?;
    let plan = retention::plan(&found, now.unwrap_or_else(Utc::now))
        .map_err(|e| (BAD_INPUT, e.to_string()))?;
    match output {
        Format::Table => Ok(inventory::table(&plan)),
        Format::Json => report::json(&plan)
            .map(|json| json + "\n")
            .map_err(|e| (1, format!("cannot render JSON: {e}"))),
    }
}

/// The log on stderr, filtered by `RUST_LOG` (default `info`), and beside it the audit trail:
/// one JSON line per record in either format, never filtered (docs/audit.md).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    let log = match format {
        LogFormat::Text => log
            .with_filter(filter)
            .with_filter(audit::not_audit())
            .boxed(),
        LogFormat::Json => log
            .json()
            .with_filter(filter)
            .with_filter(audit::not_audit())
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(log)
        .with(audit::layer(io::stderr))
        .init();
}

impl RunArgs {
    /// The Lease these options name, held as `identity`.
    fn leader(&self, identity: String) -> LeaderSettings {
        LeaderSettings {
            lease_name: self.lease_name.clone(),
            namespace: self
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_owned()),
            identity,
            lease_duration: self.lease_duration,
            renew_deadline: self.lease_renew_deadline,
            retry_period: self.lease_retry_period,
        }
    }
}

/// Runs the operator and its HTTP endpoints until SIGTERM or Ctrl-C.
fn run(args: RunArgs) -> Result<(), String> {
    let RunArgs {
        dry_run,
        concurrency,
        http_addr,
        ..
    } = args;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let identity = replica_identity();
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let client = cluster_client(&identity, &metrics).await?;
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .map_err(|e| format!("cannot listen on {http_addr}: {e}"))?;
        let ready = Arc::new(AtomicBool::new(false));
        let stopped = stop_on_signal();
        let stopped_rx = stopped.clone();
        let until_stopped = move || until_true(stopped.clone());
        // With leader election, a replica is a standby until it holds the Lease.
        let standby = Arc::new(AtomicBool::new(args.leader_election));
        let state = http::HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
            standby: standby.clone(),
        };
        let server = tokio::spawn(http::serve(listener, state, until_stopped()));
        let leader = args.leader(identity);
        leader.validate().map_err(|e| e.to_string())?;
        let settings = Settings {
            clock: Arc::new(SystemClock),
            clock_moves: None,
            dry_run,
            concurrency: concurrency.max(1),
            advance_notice: args.advance_notice,
            brake_write_interval: args.brake_write_interval,
            // Without leader election nothing else acts; requests are still bounded in time.
            fence: Fence::unfenced(leader.request_timeout()),
            webhook_allowed_networks: args.webhook_allow_cidr,
            initial_lists: args.initial_lists,
            shard: Shard::WHOLE,
        };
        if args.shards > 1 {
            if !args.leader_election {
                return Err("--shards needs leader election: each shard has a Lease".to_owned());
            }
            // Every replica is ready at once, as a standby is: it serves whichever shards it
            // comes to hold, each planning only once its own caches have synced.
            ready.store(true, std::sync::atomic::Ordering::Release);
            run_sharded(client, &leader, args.shards, stopped_rx, settings, metrics).await?;
        } else if args.leader_election {
            let work_client = client.clone();
            let outcome = run_as_leader(client, &leader, stopped_rx, move |stop, fence| {
                standby.store(false, std::sync::atomic::Ordering::Release);
                controller::run(
                    work_client,
                    Settings { fence, ..settings },
                    metrics,
                    ready,
                    stop,
                )
            })
            .await
            .map_err(|e| e.to_string())?;
            if outcome == Leadership::Lost {
                // A replica that lost its lease may hold stale state: start again clean.
                return Err("lost the leader lease; exiting so the replica restarts".to_owned());
            }
        } else {
            controller::run(client, settings, metrics, ready, until_stopped()).await;
        }
        match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("metrics endpoint failed: {e}")),
            Err(e) => Err(format!("metrics endpoint failed: {e}")),
        }
    })
}

/// Runs the controller of every shard of `shards` this replica comes to hold, each behind its
/// shard's Lease, until stopped; an error when a Lease was lost.
async fn run_sharded(
    client: kube::Client,
    leader: &LeaderSettings,
    shards: u32,
    stopped: tokio::sync::watch::Receiver<bool>,
    settings: Settings,
    metrics: Arc<Metrics>,
) -> Result<(), String> {
    let work_client = client.clone();
    let work = |shard, stop, fence| {
        let settings = Settings {
            fence,
            shard,
            clock: settings.clock.clone(),
            clock_moves: None,
            webhook_allowed_networks: settings.webhook_allowed_networks.clone(),
            ..settings
        };
        // Each shard plans only once its own caches have synced.
        let ready = Arc::new(AtomicBool::new(false));
        controller::run(work_client.clone(), settings, metrics.clone(), ready, stop)
    };
    let outcome = run_shards(client, leader, shards, stopped, work)
        .await
        .map_err(|e| e.to_string())?;
    if outcome == Leadership::Lost {
        // A replica that lost a lease may hold stale state: start again clean.
        return Err("lost a shard's lease; exiting so the replica restarts".to_owned());
    }
    Ok(())
}

/// Turns true on SIGTERM or Ctrl-C.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping");
        let _ = stop.send(true);
    });
    stopped
}

/// Resolves once `flag` turns true (or its sender is gone).
async fn until_true(mut flag: tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

/// A client of the cluster (in-cluster config, or KUBECONFIG) that names this replica in every
/// request, so the API server's audit log tells which replica did what, and counts the
/// requests that fail in `metrics`.
async fn cluster_client(identity: &str, metrics: &Arc<Metrics>) -> Result<kube::Client, String> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot reach the cluster: {e}"))?;
    let agent = format!(
        "retention-operator/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    if let (Ok(name), Ok(agent)) = ("user-agent".parse(), agent.parse()) {
        config.headers.push((name, agent));
    }
    let builder = kube::client::ClientBuilder::try_from(controller::client_config(config))
        .map_err(|e| format!("cannot reach the cluster: {e}"))?;
    Ok(builder
        .with_layer(&retention_operator::metrics::CountApiErrors::new(
            metrics.clone(),
        ))
        .build())
}

/// This replica's identity for the Lease: the pod name in a cluster, else host and process.
fn replica_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        format!("{host}-{}", std::process::id())
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
