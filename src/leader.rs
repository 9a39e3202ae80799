//! Leader election on a Lease (kube-lease-manager), so that of several replicas only one acts:
//! two operators deleting the same data at once would race each other's checks.

use std::{future::Future, pin::Pin};

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::info;

/// Which Lease to hold and how.
#[derive(Clone, Debug)]
pub struct LeaderSettings {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// Seconds a lease is valid after its last renewal.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

/// How leadership ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Stopped on request; the lease was released for the next replica.
    Stopped,
    /// The lease was lost while leading: the work was stopped; the caller should exit so the
    /// replica restarts from a clean state.
    Lost,
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
#[error("leader election: {0}")]
pub struct LeaderError(#[from] LeaseManagerError);

/// A future that resolves when the work must stop.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Waits until this replica holds the lease, then runs `work` until `stop` turns true or the
/// lease is lost. `work` receives the signal to stop on.
pub async fn run_as_leader<F, Fut>(
    client: Client,
    settings: &LeaderSettings,
    mut stop: watch::Receiver<bool>,
    work: F,
) -> Result<Leadership, LeaderError>
where
    F: FnOnce(StopSignal) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &settings.lease_name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_seconds)
        .with_grace(settings.grace_seconds)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    let became_leader = tokio::select! {
        _ = stop.wait_for(|s| *s) => false,
        became = leading.wait_for(|l| *l) => became.is_ok(),
    };
    if !became_leader {
        drop(leading);
        let _ = task.await;
        return Ok(Leadership::Stopped);
    }
    info!(identity = %settings.identity, lease = %settings.lease_name, "leading");
    // The signal owns its receivers: if the work is dropped (the replica killed), they go with
    // it, the manager's channel closes and the lease is released.
    let mut watch_leading = leading.clone();
    let mut work_stop = stop.clone();
    let signal: StopSignal = Box::pin(async move {
        tokio::select! {
            _ = work_stop.wait_for(|s| *s) => {}
            _ = watch_leading.wait_for(|l| !*l) => {}
        }
    });
    work(signal).await;
    let lost = !*leading.borrow() && !*stop.borrow();
    // Closing the channel ends the manager's task, which releases the lease.
    drop(leading);
    let _ = task.await;
    Ok(if lost {
        Leadership::Lost
    } else {
        Leadership::Stopped
    })
}
