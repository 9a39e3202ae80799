//! Prometheus metrics of the operator, exposed on `/metrics` by [`crate::http`].
//!
//! Label values are `&'static str` on purpose: controller names, error reasons and kinds come
//! from fixed sets in the code, which keeps the series count bounded and makes it impossible to
//! put a customer's data (names, addresses, hostnames) into a label by accident.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::TimeDelta;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name.
const PREFIX: &str = "retention_operator";

/// Buckets for reconcile duration in seconds: a reconcile is a few API round trips, so most
/// land well under a second; the tail shows API latency or throttling.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets for deletion lateness in seconds. The design target is "within 2 s of deleteAt at
/// p99", so 2 is a bucket boundary and the buckets are fine below it; the coarse tail shows how
/// late deletions were after an outage or a restart.
const LATENESS_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

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

/// Labels of deletions: the kind of the deleted object (Website, Backup, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
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
    deletions: Family<KindLabels, Counter>,
    pending: Gauge,
    suspended: Gauge,
    lateness: Histogram,
    brake_engaged: Family<PolicyLabels, Gauge>,
    brake_counted: Family<PolicyLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics, registered under the `retention_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(reconcile_histogram);
        let deletions = Family::<KindLabels, Counter>::default();
        let pending = Gauge::default();
        let suspended = Gauge::default();
        let lateness = Histogram::new(LATENESS_BUCKETS);
        let brake_engaged = Family::<PolicyLabels, Gauge>::default();
        let brake_counted = Family::<PolicyLabels, Gauge>::default();

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
            "Objects deleted on schedule, by kind",
            deletions.clone(),
        );
        registry.register(
            "scheduled_deletions_pending",
            "Objects with a deletion scheduled that has not happened yet",
            pending.clone(),
        );
        registry.register(
            "suspended_deletions_due",
            "Objects due for deletion that a suspended RetentionPolicy holds back",
            suspended.clone(),
        );
        registry.register_with_unit(
            "deletion_lateness",
            "Time between an object's deleteAt and its actual deletion",
            Unit::Seconds,
            lateness.clone(),
        );

        registry.register(
            "brake_engaged",
            "1 while a RetentionPolicy's mass-deletion brake is engaged, by policy",
            brake_engaged.clone(),
        );
        registry.register(
            "brake_counted_deletions",
            "Deletions the mass-deletion brake counted in its window at its last write, by policy",
            brake_counted.clone(),
        );

        Self {
            registry: Arc::new(registry),
            reconciles,
            errors,
            reconcile_duration,
            deletions,
            pending,
            suspended,
            lateness,
            brake_engaged,
            brake_counted,
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

    /// Counts a deletion of an object of `kind` that happened `lateness` after its deleteAt.
    pub fn deleted(&self, kind: &'static str, lateness: TimeDelta) {
        self.deletions.get_or_create(&KindLabels { kind }).inc();
        // Invariant 2 forbids deleting before deleteAt, so a negative value can only be clock
        // jitter; counting it as on time keeps it from lowering the histogram's sum.
        let seconds = lateness.max(TimeDelta::zero()).as_seconds_f64();
        self.lateness.observe(seconds);
    }

    /// Sets the number of objects whose scheduled deletion is still to come.
    pub fn set_pending(&self, n: usize) {
        self.pending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The number of objects whose scheduled deletion is still to come.
    pub fn pending(&self) -> i64 {
        self.pending.get()
    }

    /// Sets the number of due objects that suspended RetentionPolicies hold back.
    pub fn set_suspended(&self, n: usize) {
        self.suspended.set(i64::try_from(n).unwrap_or(i64::MAX));
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
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
        metrics.deleted("Website", TimeDelta::milliseconds(300));
        metrics.deleted("Backup", TimeDelta::seconds(1));
        metrics.deleted("Backup", TimeDelta::seconds(1));
        metrics.set_pending(42);
        metrics.set_suspended(5);

        let text = metrics.encode().expect("encodes");
        for family in [
            "# TYPE retention_operator_reconciles counter",
            "# TYPE retention_operator_reconcile_errors counter",
            "# TYPE retention_operator_reconcile_duration_seconds histogram",
            "# UNIT retention_operator_reconcile_duration_seconds seconds",
            "# TYPE retention_operator_deletions counter",
            "# TYPE retention_operator_scheduled_deletions_pending gauge",
            "# TYPE retention_operator_suspended_deletions_due gauge",
            "# TYPE retention_operator_deletion_lateness_seconds histogram",
            "# UNIT retention_operator_deletion_lateness_seconds seconds",
        ] {
            assert!(text.contains(family), "missing {family:?} in\n{text}");
        }
        let counter = |name, labels| sample(&text, name, labels);
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
            counter("retention_operator_deletions_total", "{kind=\"Website\"}"),
            Some("1")
        );
        assert_eq!(
            counter("retention_operator_deletions_total", "{kind=\"Backup\"}"),
            Some("2")
        );
        assert_eq!(
            counter("retention_operator_scheduled_deletions_pending", ""),
            Some("42")
        );
        assert_eq!(
            counter("retention_operator_suspended_deletions_due", ""),
            Some("5")
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
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text must end with # EOF"
        );
    }

    #[test]
    fn clones_record_into_the_same_series() {
        let metrics = Metrics::new();
        let clone = metrics.clone();
        clone.set_pending(7);
        clone.error("reaper", "ApiError");
        let text = metrics.encode().expect("encodes");
        assert_eq!(
            sample(&text, "retention_operator_scheduled_deletions_pending", ""),
            Some("7")
        );
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
        metrics.deleted("Website", TimeDelta::milliseconds(1500));
        // Early by clock jitter: counted as on time, in the lowest bucket.
        metrics.deleted("Backup", TimeDelta::milliseconds(-20));
        // An hour late (e.g. the operator was down): only +Inf holds it.
        metrics.deleted("Mailbox", TimeDelta::hours(1));
        let text = metrics.encode().expect("encodes");
        let bucket = |le: &str| {
            sample(
                &text,
                "retention_operator_deletion_lateness_seconds_bucket",
                &format!("{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.1"), Some("1"));
        assert_eq!(bucket("1.0"), Some("1"));
        assert_eq!(bucket("2.0"), Some("2"));
        assert_eq!(bucket("300.0"), Some("2"));
        assert_eq!(bucket("+Inf"), Some("3"));
        assert_eq!(
            sample(
                &text,
                "retention_operator_deletion_lateness_seconds_sum",
                ""
            ),
            Some("3601.5")
        );
    }
}
