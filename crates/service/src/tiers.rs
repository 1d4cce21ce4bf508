//! Tiers in service: the lifecycle mover, prefetch of cold priors, and the retrieval log.
//!
//! The mover's order is what keeps every object safe: copy to the cold tier, read it back
//! and check its hash, record it as cold, and only then free the hot copy. A failure at any
//! step leaves the hot copy (and the index) as they were, so a run that dies (or whose S3
//! endpoint does) is simply run again. One node at a time moves, under a lease.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use renkei_domain::FacilityId;
use renkei_domain::Uid;
use renkei_domain::model::StoredInstance;
use renkei_domain::tier::{Access, AccessCount, ColdRule, TierStats, age_days};
use renkei_store::TierStore;

use crate::{Archive, ServiceError};

/// How long a lease lasts without renewal: a mover that died frees it after this.
const LEASE_SECONDS: u32 = 300;
/// Blobs asked for per round of the mover (the lease is renewed every round).
const ROUND: u32 = 200;
/// A study's priors are prefetched at most once per this long per node.
const PREFETCH_EVERY: Duration = Duration::from_secs(600);
/// A study's retrievals count once per this long per node: a viewer fetching frame after
/// frame is one look at the study, not hundreds (and not hundreds of index writes).
const RETRIEVAL_WINDOW: Duration = Duration::from_secs(300);

/// Keys seen lately, each remembered for a window.
#[derive(Debug, Default)]
pub(crate) struct RecentlySeen(std::sync::Mutex<HashMap<String, Instant>>);

impl RecentlySeen {
    /// True if `key` was not seen within `window`; remembers it from now either way.
    pub(crate) fn first_in(&self, key: String, window: Duration) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() > 4096 {
            seen.retain(|_, at| at.elapsed() < window);
        }
        match seen.insert(key, Instant::now()) {
            Some(at) => at.elapsed() >= window,
            None => true,
        }
    }

    /// Forgets `key`, so that it counts as first again.
    pub(crate) fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}
/// Objects the mover copies at once, and cold objects recalled ahead of a reader: each
/// costs a round trip and a sync, which overlap.
const PARALLEL: usize = 4;

/// When a facility's studies go cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FacilityPolicy {
    /// Studies dated more than this many years ago go cold (`None`: never by age).
    pub cold_after_years: Option<u32>,
    /// Studies nobody has retrieved for this many days go cold too (`None`: no such rule).
    pub cold_after_idle_days: Option<u32>,
}

impl Default for FacilityPolicy {
    /// The group's rule: three years by study date.
    fn default() -> Self {
        Self { cold_after_years: Some(3), cold_after_idle_days: None }
    }
}

/// The lifecycle policy: a default and per-facility exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub default: FacilityPolicy,
    pub facilities: BTreeMap<String, FacilityPolicy>,
}

impl LifecyclePolicy {
    pub fn of(&self, facility: &FacilityId) -> FacilityPolicy {
        self.facilities.get(facility.as_str()).copied().unwrap_or(self.default)
    }
}

/// What a lifecycle run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveReport {
    pub moved: u64,
    pub bytes: u64,
    /// Blobs listed hot whose hot copy is missing; left for an operator.
    pub missing: u64,
}

/// A lifecycle run that stopped early: what it moved, and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("lifecycle run stopped after moving {} blobs: {error}", report.moved)]
pub struct MoveFailed {
    pub report: MoveReport,
    #[source]
    pub error: ServiceError,
}

/// Whether a lifecycle run happened.
#[derive(Debug)]
pub enum LifecycleRun {
    Done(MoveReport),
    /// Another node holds the lease.
    Busy,
}

/// Gives a job's lease up; if that fails, the lease expires by itself.
pub(crate) async fn release_lease(tiers: &dyn TierStore, job: &str, holder: &str) {
    if let Err(error) = tiers.release_lease(job, holder).await {
        tracing::warn!(%error, job, "cannot release a lease; it expires by itself");
    }
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Archive {
    /// Moves every facility's blobs that its policy sends cold: copy, verify, record, free.
    pub async fn run_lifecycle(&self, policy: &LifecyclePolicy) -> Result<LifecycleRun, MoveFailed> {
        let fail = |report: &MoveReport, error: ServiceError| MoveFailed { report: report.clone(), error };
        let mut report = MoveReport::default();
        if self.blobs.cold().is_none() {
            return Err(fail(&report, ServiceError::invalid("no cold tier is configured")));
        }
        let facilities = self.facilities().await.map_err(|e| fail(&report, e))?;
        if !self
            .tiers
            .try_lease("lifecycle", &self.node, now_unix(), LEASE_SECONDS)
            .await
            .map_err(|e| fail(&report, e.into()))?
        {
            return Ok(LifecycleRun::Busy);
        }
        let outcome = self.move_all(policy, &facilities, &mut report).await;
        release_lease(&*self.tiers, "lifecycle", &self.node).await;
        match outcome {
            Ok(()) => Ok(LifecycleRun::Done(report)),
            Err(error) => Err(fail(&report, error)),
        }
    }

    async fn move_all(
        &self,
        policy: &LifecyclePolicy,
        facilities: &[renkei_domain::model::Facility],
        report: &mut MoveReport,
    ) -> Result<(), ServiceError> {
        for facility in facilities {
            let policy = policy.of(&facility.id);
            let rule = ColdRule::at(now_unix(), policy.cold_after_years, policy.cold_after_idle_days);
            if rule.is_empty() {
                continue;
            }
            // Blobs whose hot copy is missing stay candidates: remember them and look past them.
            let mut missing: HashSet<String> = HashSet::new();
            loop {
                if !self.tiers.try_lease("lifecycle", &self.node, now_unix(), LEASE_SECONDS).await? {
                    return Err(ServiceError::unavailable("another node took over the lifecycle lease"));
                }
                let limit = ROUND + missing.len() as u32;
                let candidates = self.tiers.cold_candidates(&facility.id, &rule, limit).await?;
                let exhausted = candidates.len() < limit as usize;
                let mut movable = Vec::with_capacity(candidates.len());
                let mut progressed = false;
                for blob in candidates {
                    if missing.contains(&blob.blob.0) {
                        continue;
                    }
                    progressed = true;
                    if self.blobs.is_hot(&blob.blob).await? {
                        movable.push(blob);
                    } else {
                        tracing::error!(blob = %blob.blob.0, "a blob listed hot has no hot copy");
                        report.missing += 1;
                        missing.insert(blob.blob.0);
                    }
                }
                let moved = std::sync::Mutex::new(&mut *report);
                futures_util::stream::iter(movable.into_iter().map(Ok))
                    .try_for_each_concurrent(PARALLEL, |blob| {
                        let moved = &moved;
                        async move {
                            self.blobs.copy_to_cold(&blob.blob).await?;
                            self.tiers.mark_cold(&blob).await?;
                            self.blobs.remove_hot(&blob.blob).await?;
                            let mut report = moved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                            report.moved += 1;
                            report.bytes += blob.size;
                            Ok::<(), ServiceError>(())
                        }
                    })
                    .await?;
                if exhausted || !progressed {
                    break;
                }
            }
            tracing::info!(facility = %facility.id, moved = report.moved, "lifecycle pass done");
        }
        Ok(())
    }

    /// Instances and bytes per facility and tier.
    pub async fn tier_stats(&self) -> Result<Vec<TierStats>, ServiceError> {
        Ok(self.tiers.tier_stats().await?)
    }

    /// Retrievals per facility and study-age bucket since `since` (Unix seconds).
    pub async fn access_report(&self, since: i64) -> Result<Vec<AccessCount>, ServiceError> {
        Ok(self.tiers.access_report(since).await?)
    }

    /// Starts recalling the cold ones among `instances`, in order, a few at a time, so that
    /// a reader going through them finds each one recalled or on its way.
    pub(crate) fn read_ahead(&self, instances: &[StoredInstance]) {
        if !self.blobs.has_buckets() || instances.is_empty() {
            return;
        }
        let blobs = self.blobs.clone();
        let hashes: Vec<_> = instances.iter().map(|instance| instance.blob.clone()).collect();
        tokio::spawn(async move {
            let recalls = futures_util::stream::iter(hashes).map(|hash| {
                let blobs = blobs.clone();
                async move { blobs.make_local(&hash).await.map(drop) }
            });
            let mut recalls = recalls.buffered(PARALLEL);
            while let Some(recalled) = recalls.next().await {
                if let Err(error) = recalled {
                    tracing::warn!(%error, "read-ahead stopped");
                    return;
                }
            }
        });
    }

    /// Logs the retrieval of these instances' studies, off the request's path, once per
    /// study per window.
    pub(crate) fn log_retrieval(&self, facility: &FacilityId, instances: &[StoredInstance]) {
        let now = now_unix();
        let mut studies: HashMap<&str, Option<&str>> = HashMap::new();
        for instance in instances {
            studies.entry(instance.study_uid.as_str()).or_insert(instance.study_date.as_deref());
        }
        let accesses: Vec<Access> = studies
            .into_iter()
            .filter(|(study, _)| self.retrieved.first_in(format!("{facility}:{study}"), RETRIEVAL_WINDOW))
            .map(|(study, date)| Access {
                facility: facility.to_string(),
                study_uid: study.to_owned(),
                age_days: age_days(date, now),
                at: now,
            })
            .collect();
        if accesses.is_empty() {
            return;
        }
        let tiers = self.tiers.clone();
        tokio::spawn(async move {
            if let Err(error) = tiers.record_accesses(&accesses).await {
                tracing::warn!(%error, "cannot log a retrieval");
            }
        });
    }

    /// After a new instance is indexed: warms the cold priors of its patient, once per
    /// study per node, and under a lease so that nodes do not all do it.
    pub(crate) fn prefetch_priors(&self, facility: FacilityId, study: Uid, patient: String) {
        let key = format!("prefetch:{facility}:{study}");
        if !self.prefetched.first_in(key.clone(), PREFETCH_EVERY) {
            return;
        }
        let study = study.to_string();
        let (tiers, blobs, node) = (self.tiers.clone(), self.blobs.clone(), self.node.clone());
        tokio::spawn(async move {
            match tiers.try_lease(&key, &node, now_unix(), LEASE_SECONDS).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => return tracing::warn!(%error, "cannot take a prefetch lease"),
            }
            let priors = tiers.cold_blobs_of_patient(&facility, &patient, &study).await;
            let mut warmed = 0;
            for blob in priors.unwrap_or_default() {
                match blobs.make_local(&blob.blob).await {
                    Ok(_) => warmed += 1,
                    Err(error) => {
                        tracing::warn!(%error, "cannot prefetch a prior");
                        break;
                    }
                }
            }
            if warmed > 0 {
                tracing::info!(warmed, "prefetched cold priors");
            }
            release_lease(&*tiers, &key, &node).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_counts_once_per_window() {
        let seen = RecentlySeen::default();
        assert!(seen.first_in("a".into(), Duration::from_secs(60)));
        assert!(!seen.first_in("a".into(), Duration::from_secs(60)), "again within the window");
        assert!(seen.first_in("b".into(), Duration::from_secs(60)));
        assert!(seen.first_in("a".into(), Duration::ZERO), "a window that has passed");
    }
}
