//! Leader election on a Lease, with fencing: of several replicas only one acts, and a replica
//! acts only while it is certain, by its own monotonic clock, that the Lease is still its own.
//!
//! The election follows client-go's `leaderelection` package: a replica holds the Lease while
//! it renews it every `retry_period`, each write conditional on the resourceVersion it read (a
//! concurrent writer gets 409 and loses); another replica takes a Lease over only once it has
//! seen the same record unchanged for the record's `leaseDurationSeconds`, measured by its own
//! monotonic clock, so wall-clock skew between replicas does not matter.
//!
//! **Fencing.** A holder that stops renewing — paused (SIGSTOP, a long GC-like stall), cut off
//! from the API server, or slowed down — must stop acting before anyone else may start. A
//! renewal sent at instant `S` (monotonic) and answered 2xx means no other replica can take the
//! Lease over before `S + lease_duration`: the others start counting only when they see the
//! renewed record, which is after the write. The [`Fence`] therefore lets a request start only
//! while `now + request_timeout < S + lease_duration`, and every request it lets through is
//! abandoned after `request_timeout`; so no request of this replica is still under way when
//! another may hold the Lease. `request_timeout = lease_duration - renew_deadline`: acting
//! stops exactly when the replica gives up on renewing (`renew_deadline` after its last
//! successful renewal), and then it exits. The election is written here rather than taken from
//! kube-lease-manager, which reports neither when a renewal succeeded nor when renewals keep
//! failing, so it cannot fence.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

pub mod shards;

/// Which Lease to hold and how.
#[derive(Clone, Debug)]
pub struct LeaderSettings {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leading; the rest of the
    /// lease duration is the longest any of its requests may take.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate tries to take over.
    pub retry_period: Duration,
}

impl LeaderSettings {
    /// The longest any request of the leader may take: the lease duration minus the renew
    /// deadline (see the module docs).
    pub fn request_timeout(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_deadline)
    }

    /// Checks the timings: `retry_period < renew_deadline < lease_duration`.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.lease_duration
        {
            return Err(LeaderError::Timings {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        Ok(())
    }
}

/// How leadership ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Stopped on request; the lease was released for the next replica.
    Stopped,
    /// The lease was lost while leading, or could not be renewed in time: the work was
    /// aborted at once; the caller should exit so the replica restarts from a clean state.
    Lost,
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings cannot fence (see [`LeaderSettings::validate`]).
    #[error(
        "lease timings must satisfy retry period ({retry_period:?}) < renew deadline \
         ({renew_deadline:?}) < lease duration ({lease_duration:?})"
    )]
    Timings {
        /// The lease duration given.
        lease_duration: Duration,
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The retry period given.
        retry_period: Duration,
    },
    /// Sharding finds its members by the Lease name, as a label value.
    #[error("with --shards, the lease name must be 1 to 63 characters (a label value): {0:?}")]
    LeaseName(String),
}

/// Why the fence refused or ended a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// This replica cannot be sure it still holds the Lease when the request would end.
    #[error("not the leader (the lease may no longer be held when the request ends)")]
    NotLeader,
    /// The request took longer than the request timeout and was abandoned.
    #[error("the request took longer than {0:?} and was abandoned")]
    TimedOut(Duration),
}

/// Lets a request start only while this replica will still hold the Lease when the request
/// ends (see the module docs), and abandons it after the request timeout. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<FenceState>,
}

#[derive(Debug)]
struct FenceState {
    request_timeout: Duration,
    /// `None`: no leader election, every request is permitted.
    valid_until: Option<Mutex<Option<Instant>>>,
}

impl Fence {
    /// A fence that permits every request (no leader election: a single replica), still
    /// abandoning each after `request_timeout` so that no request can hang a worker.
    pub fn unfenced(request_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(FenceState {
                request_timeout,
                valid_until: None,
            }),
        }
    }

    /// A fence for a Lease, closed until the first renewal.
    fn leased(request_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(FenceState {
                request_timeout,
                valid_until: Some(Mutex::new(None)),
            }),
        }
    }

    /// The longest a permitted request may take.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Whether a request started now would end while the Lease is still this replica's.
    pub fn permits(&self) -> bool {
        match &self.inner.valid_until {
            None => true,
            Some(until) => {
                let until = *until.lock().unwrap_or_else(PoisonError::into_inner);
                until.is_some_and(|until| Instant::now() + self.inner.request_timeout < until)
            }
        }
    }

    /// Runs `request` if the fence permits it, abandoning it after the request timeout.
    pub async fn run<T>(&self, request: impl Future<Output = T>) -> Result<T, Fenced> {
        if !self.permits() {
            return Err(Fenced::NotLeader);
        }
        tokio::time::timeout(self.inner.request_timeout, request)
            .await
            .map_err(|_| Fenced::TimedOut(self.inner.request_timeout))
    }

    /// Records a renewal: the Lease is this replica's until `until`.
    fn extend(&self, until: Instant) {
        if let Some(valid_until) = &self.inner.valid_until {
            let mut valid_until = valid_until.lock().unwrap_or_else(PoisonError::into_inner);
            *valid_until = Some(valid_until.map_or(until, |current| current.max(until)));
        }
    }

    /// Closes the fence for good: the Lease is lost.
    fn revoke(&self) {
        if let Some(valid_until) = &self.inner.valid_until {
            *valid_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// A future that resolves when the work must stop gracefully (SIGTERM).
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Waits until this replica holds the lease, then runs `work` with the fence until `stop`
/// turns true (graceful: the work finishes, then the lease is released) or the lease is lost
/// (the work is dropped at once, wherever it is).
pub async fn run_as_leader<F, Fut>(
    client: Client,
    settings: &LeaderSettings,
    mut stop: watch::Receiver<bool>,
    work: F,
) -> Result<Leadership, LeaderError>
where
    F: FnOnce(StopSignal, Fence) -> Fut,
    Fut: Future<Output = ()>,
{
    settings.validate()?;
    let mut elector = Elector::new(client, settings);
    let fence = Fence::leased(settings.request_timeout());
    // Candidate: try until the lease is ours.
    let acquired = loop {
        let sent = Instant::now();
        let attempt = tokio::time::timeout(settings.retry_period, elector.try_acquire_or_renew());
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(Leadership::Stopped),
            result = attempt => {
                if let Ok(Ok(true)) = result {
                    fence.extend(sent + settings.lease_duration);
                    break sent;
                }
                if let Ok(Err(error)) = result {
                    warn!(%error, "cannot read or take the lease; trying again");
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(Leadership::Stopped),
            () = tokio::time::sleep(settings.retry_period) => {}
        }
    };
    info!(identity = %settings.identity, lease = %settings.lease_name, "leading");
    let mut work_stop = stop.clone();
    let signal: StopSignal = Box::pin(async move {
        let _ = work_stop.wait_for(|s| *s).await;
    });
    let outcome = {
        let work = work(signal, fence.clone());
        let renewing = keep_renewing(&mut elector, settings, &fence, acquired, || {});
        tokio::pin!(work);
        tokio::pin!(renewing);
        tokio::select! {
            () = &mut work => Leadership::Stopped,
            // Dropping the work here aborts it wherever it is; the fence already refuses every
            // request it would still try.
            () = &mut renewing => Leadership::Lost,
        }
    };
    if outcome == Leadership::Lost {
        fence.revoke();
        warn!(identity = %settings.identity, "lost the lease: stopped acting");
        return Ok(Leadership::Lost);
    }
    if let Err(error) = elector.release().await {
        warn!(%error, "cannot release the lease; the next replica takes over when it expires");
    }
    Ok(Leadership::Stopped)
}

/// Renews the lease every retry period; returns when it is lost or could not be renewed
/// within the renew deadline.
async fn keep_renewing(
    elector: &mut Elector,
    settings: &LeaderSettings,
    fence: &Fence,
    first_renewal: Instant,
    mut after_renewal: impl FnMut(),
) {
    let mut renewed = first_renewal;
    loop {
        tokio::time::sleep(settings.retry_period).await;
        if Instant::now() >= renewed + settings.renew_deadline {
            return;
        }
        let sent = Instant::now();
        // No attempt may outlast the renew deadline.
        let left = (renewed + settings.renew_deadline).saturating_duration_since(sent);
        match tokio::time::timeout(left, elector.try_acquire_or_renew()).await {
            Ok(Ok(true)) => {
                renewed = sent;
                fence.extend(sent + settings.lease_duration);
                after_renewal();
            }
            Ok(Ok(false)) => return,
            Ok(Err(error)) => warn!(%error, "cannot renew the lease; trying again"),
            Err(_) => warn!("renewing the lease timed out; trying again"),
        }
    }
}

/// The client-go election algorithm over one Lease.
struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The last record seen (its resourceVersion) and when it was first seen, by this
    /// replica's monotonic clock.
    observed: Option<(String, Instant)>,
}

impl Elector {
    fn new(client: Client, settings: &LeaderSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            name: settings.lease_name.clone(),
            identity: settings.identity.clone(),
            lease_duration: settings.lease_duration,
            observed: None,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Takes the lease if it is free or expired, renews it if it is ours; `Ok(true)` when this
    /// replica holds it after the call. Every write is conditional on the version read.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        self.observe_or_take(true).await
    }

    /// Like [`Self::try_acquire_or_renew`] when `take`; otherwise only reads the lease, so
    /// that the time its record has stood unchanged is known when taking it is wanted later.
    async fn observe_or_take(&mut self, take: bool) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = self.api.get_opt(&self.name).await?;
        if !take {
            if let Some(lease) = &lease {
                self.seen_at(lease);
            }
            return Ok(false);
        }
        let Some(mut lease) = lease else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conditional(self.api.create(&PostParams::default(), &lease).await);
        };
        let seen_at = self.seen_at(&lease);
        let mut spec = lease.spec.take().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && holder.is_some() {
            // Held by another: expired only once the same record has stood for its duration.
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.lease_duration, Duration::from_secs);
            if Instant::now() < seen_at + duration {
                return Ok(false);
            }
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        // The resourceVersion read makes the replace conditional.
        conditional(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// When this replica first saw the lease's current record (by its monotonic clock).
    fn seen_at(&mut self, lease: &Lease) -> Instant {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((version, at));
                at
            }
        }
    }

    /// Gives the lease up, if it is still ours, so the next replica need not wait for it to
    /// expire.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        conditional(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(drop)
    }
}

/// A conditional write's outcome: `Ok(false)` when another writer came first (409).
fn conditional<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_a_request_timeout_before_the_lease_ends() {
        let fence = Fence::leased(Duration::from_secs(5));
        assert!(!fence.permits(), "closed before the first renewal");
        fence.extend(Instant::now() + Duration::from_secs(15));
        assert!(fence.permits());
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert!(
            fence.permits(),
            "5.1 s of lease left: a 5 s request ends in time"
        );
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(
            !fence.permits(),
            "4.9 s left: a request might outlast the lease"
        );
        assert_eq!(fence.run(async { 1 }).await, Err(Fenced::NotLeader));
        // A later renewal opens it again; an earlier one never shortens it.
        fence.extend(Instant::now() + Duration::from_secs(15));
        fence.extend(Instant::now() + Duration::from_secs(1));
        assert!(fence.permits());
        fence.revoke();
        assert!(!fence.permits(), "revoked for good");
    }

    #[tokio::test(start_paused = true)]
    async fn a_permitted_request_is_abandoned_after_the_timeout() {
        let fence = Fence::unfenced(Duration::from_secs(5));
        assert!(fence.permits());
        assert_eq!(fence.run(async { 7 }).await, Ok(7));
        let hung = fence.run(std::future::pending::<()>()).await;
        assert_eq!(hung, Err(Fenced::TimedOut(Duration::from_secs(5))));
    }

    #[test]
    fn timings_that_cannot_fence_are_refused() {
        let settings = |lease, renew, retry| LeaderSettings {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        };
        assert!(settings(15, 10, 2).validate().is_ok());
        assert_eq!(
            settings(15, 10, 2).request_timeout(),
            Duration::from_secs(5)
        );
        for (lease, renew, retry) in [(15, 15, 2), (15, 10, 10), (15, 20, 2), (15, 10, 0)] {
            assert!(
                settings(lease, renew, retry).validate().is_err(),
                "{lease}/{renew}/{retry}"
            );
        }
    }
}
