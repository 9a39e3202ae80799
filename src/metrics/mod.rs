//! Prometheus metrics of the operator, exposed on `/metrics` by [`crate::http`]; docs/metrics.md
//! lists each.
//!
//! Label values are `&'static str` on purpose: controller names, error reasons, kinds, rules,
//! phases and states come from fixed sets in the code, which keeps the series count bounded and
//! makes it impossible to put a customer's data (names, addresses, hostnames) into a label by
//! accident. The two exceptions are bounded by the platform's configuration, never a customer's
//! data: a RetentionPolicy's name and an HTTP status code.

mod api;
mod census;

pub use api::{ApiErrorCounter, CountApiErrors, NO_ANSWER, verb};
pub use census::{
    Census, CensusTaker, DeletionCounts, NO_PHASE, ScheduledDeletions, UNREADABLE, count_deletions,
};

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::clock::Clock;
use crate::shard::Shard;
use census::CensusGauges;

/// Prefix of every metric name.
const PREFIX: &str = "retention_operator";

/// Buckets for reconcile duration in seconds: a reconcile is a few API round trips, so most
/// land well under a second; the tail shows API latency or throttling.
const RECONCILE_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0,
];

/// Buckets for deletion lateness in seconds. The design targets are "within 2 s of deleteAt at
/// p99", also for a burst of 10,000 due at once, and a shard taken over within its lease
/// duration (15 s) + 5 s: each is a boundary, and the buckets around them are fine enough to
/// read a p99 that misses one (a burst's 10.4 s could not be told from 29 s with nothing
/// between 10 and 30). The tail shows how late deletions were after an outage.
const LATENESS_BUCKETS: [f64; 20] = [
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
    300.0, 900.0, 3600.0,
];

/// Labels of per-controller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

/// Labels of reconcile errors: the controller and a CamelCase error category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: &'static str,
}

/// Labels of deletions: the kind of the deleted object (Website, Backup, ...) and the rule
/// that scheduled it (`grace-period`, `bookkeeping`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeletionLabels {
    kind: &'static str,
    rule: &'static str,
}

/// Labels of failed API requests: the Kubernetes verb and the HTTP status (or
/// [`NO_ANSWER`]). Status codes are a small fixed set, though not known at compile time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    verb: &'static str,
    code: String,
}

/// Labels of per-resource series: a watched resource's plural (a fixed set of this operator's
/// kinds).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

/// Labels of `build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Labels of per-policy series: a RetentionPolicy's name. The one label that is not a fixed
/// string of the code: policies are the platform team's configuration (a handful per cluster),
/// never a customer's data, so the series stay few and free of personal data.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

/// A family's constructor must be nameable in the field type; a plain `fn` is.
type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

/// The operator's metrics and the registry that exposes them.
///
/// Cloning is cheap: the registry is behind an `Arc` and every metric handle is `Arc`-backed,
/// so all clones record into the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    deletions: Family<DeletionLabels, Counter>,
    lateness: Histogram,
    brake_engaged: Family<PolicyLabels, Gauge>,
    brake_counted: Family<PolicyLabels, Gauge>,
    leader: Gauge,
    api_errors: Family<ApiErrorLabels, Counter>,
    receipts_written: Counter,
    cache_lists: Family<ResourceLabels, Counter>,
    census: Arc<CensusGauges>,
}

/// `build_info`, 1 with the version as its label: the one metric whose value never changes.
fn register_build_info(registry: &mut Registry) {
    let build_info = Family::<BuildLabels, Gauge>::default();
    build_info
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register(
        "build_info",
        "Always 1; the labels name the operator's version",
        build_info,
    );
}

/// The brake's gauges, per policy.
fn register_brake(
    registry: &mut Registry,
    engaged: &Family<PolicyLabels, Gauge>,
    counted: &Family<PolicyLabels, Gauge>,
) {
    registry.register(
        "brake_engaged",
        "1 while a RetentionPolicy's mass-deletion brake is engaged, by policy",
        engaged.clone(),
    );
    registry.register(
        "brake_counted_deletions",
        "Deletions the mass-deletion brake counted in its window at its last write, by policy",
        counted.clone(),
    );
}

impl Metrics {
    /// Creates the metrics, registered under the `retention_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(reconcile_histogram);
        let deletions = Family::<DeletionLabels, Counter>::default();
        let lateness = Histogram::new(LATENESS_BUCKETS);
        let brake_engaged = Family::<PolicyLabels, Gauge>::default();
        let brake_counted = Family::<PolicyLabels, Gauge>::default();
        let leader = Gauge::default();
        let api_errors = Family::<ApiErrorLabels, Counter>::default();
        let receipts_written = Counter::default();
        let cache_lists = Family::<ResourceLabels, Counter>::default();
        let census = Arc::new(CensusGauges::default());

        register_build_info(&mut registry);
        registry.register(
            "leader",
            "1 while this replica acts (holds the leader Lease, or runs without leader election); \
             with --shards, the number of shards it holds",
            leader.clone(),
        );

        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error category",
            errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time a reconciliation took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "deletions",
            "Objects deleted on schedule, by kind and the rule that scheduled them",
            deletions.clone(),
        );
        registry.register_with_unit(
            "deletion_lateness",
            "Time between an object's deleteAt and its actual deletion",
            Unit::Seconds,
            lateness.clone(),
        );

        register_brake(&mut registry, &brake_engaged, &brake_counted);
        registry.register(
            "kube_api_errors",
            "Kubernetes API requests that failed, by verb and HTTP status (<error>: no answer)",
            api_errors.clone(),
        );
        registry.register(
            "erasure_receipts_written",
            "ErasureReceipts written",
            receipts_written.clone(),
        );
        registry.register(
            "cache_lists",
            "Lists the caches completed, by resource: the first at start, each later one a \
             relist after a watch could not resume",
            cache_lists.clone(),
        );
        registry.register_collector(Box::new(census.clone()));

        Self {
            registry: Arc::new(registry),
            reconciles,
            errors,
            reconcile_duration,
            deletions,
            lateness,
            brake_engaged,
            brake_counted,
            leader,
            api_errors,
            receipts_written,
            cache_lists,
            census,
        }
    }

    /// Counts a reconciliation of `controller` and times it until the returned guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileMeasurer {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileMeasurer {
            start: Instant::now(),
            histogram: self.reconcile_duration.get_or_create_owned(&labels),
        }
    }

    /// Counts a failed reconciliation of `controller`; `reason` is a CamelCase error category.
    pub fn error(&self, controller: &'static str, reason: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, reason })
            .inc();
    }

    /// Counts a deletion of an object of `kind`, scheduled by `rule`, that happened `lateness`
    /// after its deleteAt.
    pub fn deleted(&self, kind: &'static str, rule: &'static str, lateness: TimeDelta) {
        self.deletions
            .get_or_create(&DeletionLabels { kind, rule })
            .inc();
        // Invariant 2 forbids deleting before deleteAt, so a negative value can only be clock
        // jitter; counting it as on time keeps it from lowering the histogram's sum.
        let seconds = lateness.max(TimeDelta::zero()).as_seconds_f64();
        self.lateness.observe(seconds);
    }

    /// Records the scheduled deletions of `account` as its pass planned them (none: forgets
    /// it). The pending, overdue and suspended gauges count them against the clock at each
    /// scrape.
    pub fn record_deletions(&self, account: &str, deletions: ScheduledDeletions) {
        self.census.record(account, deletions);
    }

    /// The number of objects whose scheduled deletion is still to come.
    pub fn pending(&self) -> usize {
        self.census.deletions(DateTime::<Utc>::MIN_UTC).pending
    }

    /// This replica acts for `shard` from now until the returned guard drops: `leader`
    /// counts it, and the account gauges count what `take_census` finds at each scrape, with
    /// `clock`'s time.
    pub fn acting(&self, shard: Shard, take_census: CensusTaker, clock: Arc<dyn Clock>) -> Acting {
        self.census.go_live(shard, take_census, clock);
        self.leader.inc();
        Acting {
            shard,
            leader: self.leader.clone(),
            census: self.census.clone(),
        }
    }

    /// Counts a failed Kubernetes API request.
    pub fn api_error(&self, verb: &'static str, code: &str) {
        self.api_errors
            .get_or_create(&ApiErrorLabels {
                verb,
                code: code.to_owned(),
            })
            .inc();
    }

    /// Counts a list one of the caches completed.
    pub fn cache_listed(&self, resource: &str) {
        self.cache_lists
            .get_or_create(&ResourceLabels {
                resource: resource.to_owned(),
            })
            .inc();
    }

    /// Counts an ErasureReceipt written.
    pub fn receipt_written(&self) {
        self.receipts_written.inc();
    }

    /// Sets the brake state of `policy`: engaged or not, and the deletions counted.
    pub fn set_brake(&self, policy: &str, engaged: bool, counted: u32) {
        let labels = PolicyLabels {
            policy: policy.to_owned(),
        };
        self.brake_engaged
            .get_or_create(&labels)
            .set(i64::from(engaged));
        self.brake_counted
            .get_or_create(&labels)
            .set(i64::from(counted));
    }

    /// Renders every metric in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Renders every metric in Prometheus's classic text format (0.0.4), for clients that do
    /// not ask for OpenMetrics: see [`prometheus_text`].
    pub fn encode_prometheus_text(&self) -> Result<String, fmt::Error> {
        self.encode().map(|text| prometheus_text(&text))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Turns OpenMetrics text into Prometheus's classic text format (0.0.4), which curl users,
/// older scrapers and `promtool check metrics` read. The samples are the same; the metadata
/// differs: OpenMetrics names a counter family without its `_total` suffix (`# TYPE
/// x counter`, samples `x_total`), where 0.0.4 names it as its samples are named, and 0.0.4 has
/// no `# UNIT` line and no `# EOF`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let metadata = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|tag| Some((tag, line.strip_prefix(tag)?)));
        match metadata {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                text.push_str(&format!("{tag}{name}{suffix} {tail}"));
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// While alive, this replica acts (see [`Metrics::acting`]); dropped, wherever the controller
/// stopped (a lost lease drops it mid-pass), the replica shows as standby and its account
/// gauges empty: counts it took while acting are stale for whoever acts next.
#[must_use = "the replica stops showing as acting when this guard drops"]
#[derive(Debug)]
pub struct Acting {
    shard: Shard,
    leader: Gauge,
    census: Arc<CensusGauges>,
}

impl Drop for Acting {
    fn drop(&mut self) {
        self.leader.dec();
        self.census.go_standby(self.shard);
    }
}

/// Records the time since [`Metrics::reconcile`] into the reconcile duration histogram when
/// dropped, so every exit path of a reconcile (including `?` and panics) is measured.
#[must_use = "the duration is recorded when this guard drops; bind it to a variable"]
#[derive(Debug)]
pub struct ReconcileMeasurer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileMeasurer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample line of `name` with exactly `labels`, e.g. `{kind="Website"}`.
    fn sample<'a>(text: &'a str, name: &str, labels: &str) -> Option<&'a str> {
        let prefix = format!("{name}{labels} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
    }

    #[test]
    fn encoding_names_every_family_with_its_labels() {
        let metrics = Metrics::new();
        drop(metrics.reconcile("account"));
        metrics.error("account", "PolicyMissing");
        metrics.deleted("Website", "grace-period", TimeDelta::milliseconds(300));
        metrics.deleted("Backup", "backup-schedule", TimeDelta::seconds(1));
        metrics.deleted("Backup", "backup-schedule", TimeDelta::seconds(1));
        metrics.api_error("patch", "409");
        metrics.receipt_written();

        let text = metrics.encode().expect("encodes");
        assert_eq!(missing_families(&text), Vec::<&str>::new(), "in\n{text}");
        assert_counts(&text);
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text must end with # EOF"
        );
    }

    /// The families of docs/metrics.md that a scrape lacks.
    fn missing_families(text: &str) -> Vec<&'static str> {
        [
            "# TYPE retention_operator_reconciles counter",
            "# TYPE retention_operator_reconcile_errors counter",
            "# TYPE retention_operator_reconcile_duration_seconds histogram",
            "# UNIT retention_operator_reconcile_duration_seconds seconds",
            "# TYPE retention_operator_deletions counter",
            "# TYPE retention_operator_scheduled_deletions_pending gauge",
            "# TYPE retention_operator_overdue_deletions gauge",
            "# TYPE retention_operator_suspended_deletions_due gauge",
            "# TYPE retention_operator_accounts gauge",
            "# TYPE retention_operator_account_conditions gauge",
            "# TYPE retention_operator_erasure_requests gauge",
            "# TYPE retention_operator_erasure_request_oldest_timestamp_seconds gauge",
            "# TYPE retention_operator_policy_suspended gauge",
            "# TYPE retention_operator_leader gauge",
            "# TYPE retention_operator_build_info gauge",
            "# TYPE retention_operator_kube_api_errors counter",
            "# TYPE retention_operator_erasure_receipts_written counter",
            "# TYPE retention_operator_deletion_lateness_seconds histogram",
            "# UNIT retention_operator_deletion_lateness_seconds seconds",
        ]
        .into_iter()
        .filter(|family| !text.contains(family))
        .collect()
    }

    /// Checks the samples recorded by [`encoding_names_every_family_with_its_labels`].
    fn assert_counts(text: &str) {
        let counter = |name, labels| sample(text, name, labels);
        assert_eq!(
            counter(
                "retention_operator_reconciles_total",
                "{controller=\"account\"}"
            ),
            Some("1")
        );
        assert_eq!(
            counter(
                "retention_operator_reconcile_errors_total",
                "{controller=\"account\",reason=\"PolicyMissing\"}"
            ),
            Some("1")
        );
        assert_eq!(
            counter(
                "retention_operator_deletions_total",
                "{kind=\"Website\",rule=\"grace-period\"}"
            ),
            Some("1")
        );
        assert_eq!(
            counter(
                "retention_operator_deletions_total",
                "{kind=\"Backup\",rule=\"backup-schedule\"}"
            ),
            Some("2")
        );
        assert_eq!(
            counter(
                "retention_operator_kube_api_errors_total",
                "{verb=\"patch\",code=\"409\"}"
            ),
            Some("1")
        );
        assert_eq!(
            counter("retention_operator_erasure_receipts_written_total", ""),
            Some("1")
        );
        let version = format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            counter("retention_operator_build_info", &version),
            Some("1")
        );
        assert_eq!(
            counter("retention_operator_leader", ""),
            Some("0"),
            "a replica that does not act"
        );
        assert_eq!(
            counter("retention_operator_scheduled_deletions_pending", ""),
            Some("0")
        );
        assert_eq!(
            counter(
                "retention_operator_reconcile_duration_seconds_count",
                "{controller=\"account\"}"
            ),
            Some("1")
        );
        assert_eq!(
            counter("retention_operator_deletion_lateness_seconds_count", ""),
            Some("3")
        );
    }

    #[test]
    fn the_classic_text_format_names_counters_as_their_samples_and_has_no_openmetrics_lines() {
        let metrics = Metrics::new();
        metrics.deleted("Website", "grace-period", TimeDelta::seconds(1));
        let openmetrics = metrics.encode().expect("encodes");
        let classic = prometheus_text(&openmetrics);
        assert!(classic.contains("# TYPE retention_operator_deletions_total counter\n"));
        assert!(classic.contains("# HELP retention_operator_deletions_total Objects deleted"));
        assert!(classic.contains("# TYPE retention_operator_leader gauge\n"));
        assert!(
            classic.contains("# TYPE retention_operator_deletion_lateness_seconds histogram\n")
        );
        assert!(!classic.contains("# EOF"));
        assert!(!classic.contains("# UNIT"));
        let samples = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(samples(&classic), samples(&openmetrics), "the same samples");
    }

    #[test]
    fn clones_record_into_the_same_series() {
        let metrics = Metrics::new();
        let clone = metrics.clone();
        clone.record_deletions(
            "acme",
            ScheduledDeletions {
                delete_at: vec![DateTime::<Utc>::MAX_UTC; 7],
                suspended: false,
            },
        );
        clone.error("reaper", "ApiError");
        let text = metrics.encode().expect("encodes");
        assert_eq!(metrics.pending(), 7);
        assert_eq!(
            sample(
                &text,
                "retention_operator_reconcile_errors_total",
                "{controller=\"reaper\",reason=\"ApiError\"}"
            ),
            Some("1")
        );
    }

    #[test]
    fn a_replica_acts_while_its_guard_lives_and_counts_against_its_clock() {
        struct Fixed;
        impl Clock for Fixed {
            fn now(&self) -> DateTime<Utc> {
                "2026-05-02T00:00:00Z".parse().expect("a time")
            }
        }
        let metrics = Metrics::new();
        let due = ScheduledDeletions {
            delete_at: vec!["2026-05-01T00:00:00Z".parse().expect("a time")],
            suspended: false,
        };
        let gauge = |text: &str, name: &str| sample(text, name, "").map(str::to_owned);
        {
            let _acting = metrics.acting(
                Shard::WHOLE,
                Box::new(|census: &mut Census| census.add_account(None)),
                Arc::new(Fixed),
            );
            metrics.record_deletions("acme", due);
            let text = metrics.encode().expect("encodes");
            assert_eq!(
                gauge(&text, "retention_operator_leader").as_deref(),
                Some("1")
            );
            assert_eq!(
                gauge(&text, "retention_operator_overdue_deletions").as_deref(),
                Some("1")
            );
            assert_eq!(
                sample(&text, "retention_operator_accounts", "{phase=\"Unknown\"}"),
                Some("1")
            );
        }
        let text = metrics.encode().expect("encodes");
        assert_eq!(
            gauge(&text, "retention_operator_leader").as_deref(),
            Some("0")
        );
        assert_eq!(
            gauge(&text, "retention_operator_overdue_deletions").as_deref(),
            Some("0"),
            "a standby counts nothing"
        );
        assert_eq!(
            sample(&text, "retention_operator_accounts", "{phase=\"Unknown\"}"),
            None
        );
    }

    #[test]
    fn drop_timer_records_the_reconcile_duration() {
        let metrics = Metrics::new();
        let recorded = |part: &str| {
            let text = metrics.encode().expect("encodes");
            let name = format!("retention_operator_reconcile_duration_seconds_{part}");
            sample(&text, &name, "{controller=\"account\"}").map(str::to_owned)
        };
        {
            let _timer = metrics.reconcile("account");
            assert_eq!(
                recorded("count").as_deref(),
                Some("0"),
                "nothing recorded while it lives"
            );
            // Busy-wait on the monotonic clock (no sleep) until time has visibly passed.
            let start = Instant::now();
            while start.elapsed().is_zero() {
                std::hint::spin_loop();
            }
        }
        assert_eq!(recorded("count").as_deref(), Some("1"));
        let sum: f64 = recorded("sum")
            .and_then(|s| s.parse().ok())
            .expect("a numeric sum");
        assert!(sum > 0.0, "a positive duration is recorded, got {sum}");
    }

    #[test]
    fn lateness_lands_in_the_right_bucket() {
        let metrics = Metrics::new();
        // 1.5 s late: above the 1 s bucket, inside the 2 s one (the p99 target).
        metrics.deleted("Website", "grace-period", TimeDelta::milliseconds(1500));
        // Early by clock jitter: counted as on time, in the lowest bucket.
        metrics.deleted("Backup", "backup-schedule", TimeDelta::milliseconds(-20));
        // 12 s late (a burst): between the 10 s and 15 s buckets.
        metrics.deleted("Website", "grace-period", TimeDelta::seconds(12));
        // Two hours late (e.g. the operator was down): only +Inf holds it.
        metrics.deleted("Mailbox", "grace-period", TimeDelta::hours(2));
        let text = metrics.encode().expect("encodes");
        let bucket = |le: &str| {
            sample(
                &text,
                "retention_operator_deletion_lateness_seconds_bucket",
                &format!("{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.05"), Some("1"));
        assert_eq!(bucket("1.0"), Some("1"));
        assert_eq!(bucket("1.5"), Some("2"));
        assert_eq!(bucket("10.0"), Some("2"));
        assert_eq!(bucket("15.0"), Some("3"));
        assert_eq!(bucket("3600.0"), Some("3"));
        assert_eq!(bucket("+Inf"), Some("4"));
        assert_eq!(
            sample(
                &text,
                "retention_operator_deletion_lateness_seconds_sum",
                ""
            ),
            Some("7213.5")
        );
    }
}
