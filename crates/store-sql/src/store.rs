//! [`SqlStore`]: every store trait, implemented once over any [`SqlBackend`].

use std::ops::Deref;

use async_trait::async_trait;
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, Principal, StoreOutcome, StoredInstance};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::tier::{Access, AccessCount, BlobRef, ColdRule, TierStats};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::{FacilityStore, InstanceStore, StoreError, TierStore, TokenStore};

use crate::{Sql, now_unix};

/// A transaction of a backend: statements run in it until it is committed. Dropped
/// uncommitted, it rolls back.
#[async_trait]
pub trait SqlTransaction: Sql {
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// What a SQL backend provides: somewhere to read, transactions, and its way of recording
/// a batch of instances (which is where the backends really differ).
#[async_trait]
pub trait SqlBackend: Send + Sync + 'static {
    /// Where reads and single-statement writes run (the pool).
    fn reader(&self) -> Box<dyn Sql + '_>;
    /// A transaction that serialises with other writers as the backend needs.
    async fn transaction(&self) -> Result<Box<dyn SqlTransaction + '_>, StoreError>;
    /// Records a group of instances in one durable transaction, all or nothing.
    async fn record_together(&self, batch: &[NewInstance], now: i64) -> Result<Vec<StoreOutcome>, StoreError>;
}

/// The store traits over a backend.
#[derive(Clone)]
pub struct SqlStore<B>(pub B);

impl<B> Deref for SqlStore<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.0
    }
}

#[async_trait]
impl<B: SqlBackend> FacilityStore for SqlStore<B> {
    async fn add_facility(&self, facility: &Facility) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        crate::add_facility(&mut *tx, facility).await?;
        tx.commit().await
    }

    async fn facilities(&self) -> Result<Vec<Facility>, StoreError> {
        crate::facilities(&mut *self.0.reader()).await
    }

    async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError> {
        crate::facility_of_ae(&mut *self.0.reader(), ae_title).await
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        crate::put_node(&mut *self.0.reader(), node).await
    }

    async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, StoreError> {
        crate::node(&mut *self.0.reader(), facility, ae_title).await
    }
}

#[async_trait]
impl<B: SqlBackend> InstanceStore for SqlStore<B> {
    async fn record_instances(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError> {
        let now = now_unix();
        match self.0.record_together(batch, now).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            // Something in the group failed (a bad instance, or a deadlock with another
            // node's batch) and the transaction rolled back: record each instance on its
            // own, so that one bad instance fails only itself.
            Err(_) if batch.len() > 1 => {
                let mut results = Vec::with_capacity(batch.len());
                for item in batch {
                    let alone = self.0.record_together(std::slice::from_ref(item), now).await;
                    results.push(alone.map(|mut outcomes| outcomes.remove(0)));
                }
                Ok(results)
            }
            Err(error) => Ok(vec![Err(error)]),
        }
    }

    async fn find(&self, facility: &FacilityId, query: &Query) -> Result<Vec<QueryMatch>, StoreError> {
        crate::find(&mut *self.0.reader(), facility, query).await
    }

    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError> {
        crate::retrieve(&mut *self.0.reader(), facility, query).await
    }

    async fn stats(&self) -> Result<Vec<FacilityStats>, StoreError> {
        crate::stats(&mut *self.0.reader()).await
    }
}

#[async_trait]
impl<B: SqlBackend> TokenStore for SqlStore<B> {
    async fn add_token(&self, hash: &str, principal: &Principal) -> Result<(), StoreError> {
        crate::add_token(&mut *self.0.reader(), hash, principal).await
    }

    async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        crate::principal(&mut *self.0.reader(), hash).await
    }
}

#[async_trait]
impl<B: SqlBackend> TierStore for SqlStore<B> {
    async fn cold_candidates(
        &self,
        facility: &FacilityId,
        rule: &ColdRule,
        limit: u32,
    ) -> Result<Vec<BlobRef>, StoreError> {
        crate::cold_candidates(&mut *self.0.reader(), facility, rule, limit).await
    }

    async fn mark_cold(&self, blob: &BlobRef) -> Result<(), StoreError> {
        crate::mark_cold(&mut *self.0.reader(), blob).await
    }

    async fn cold_blobs_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        except_study: &str,
    ) -> Result<Vec<BlobRef>, StoreError> {
        crate::cold_blobs_of_patient(&mut *self.0.reader(), facility, patient_id, except_study).await
    }

    async fn tier_stats(&self) -> Result<Vec<TierStats>, StoreError> {
        crate::tier_stats(&mut *self.0.reader()).await
    }

    async fn record_accesses(&self, accesses: &[Access]) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        crate::record_accesses(&mut *tx, accesses).await?;
        tx.commit().await
    }

    async fn access_report(&self, since: i64) -> Result<Vec<AccessCount>, StoreError> {
        crate::access_report(&mut *self.0.reader(), since).await
    }

    async fn try_lease(&self, job: &str, holder: &str, now: i64, seconds: u32) -> Result<bool, StoreError> {
        crate::try_lease(&mut *self.0.reader(), job, holder, now, seconds).await
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        crate::release_lease(&mut *self.0.reader(), job, holder).await
    }
}
