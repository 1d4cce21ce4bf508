//! [`SqlStore`]: every store trait, implemented once over any [`SqlBackend`].

use std::ops::Deref;

use async_trait::async_trait;
use renkei_domain::dose::{
    AlertRule, DoseKind, DoseReport, DoseWrite, Exam, ExamFilter, Grouping, KnownDevice, Metric, PendingDose,
    ProtocolMapping, Quantiles, UnmappedDescription, WorkloadCell,
};
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, Principal, StoreOutcome, StoredInstance};
use renkei_domain::mpi::{Actor, Link, MatchOutcome, MpiStats, NewLink, PatientRecord, PersonId, RecordId};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::sharing::{BreakGlass, NewBreakGlass, NewPublication, Publication, SharedAccess};
use renkei_domain::tier::{Access, AccessCount, BlobRef, ColdRule, TierStats};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::{
    DoseStore, FacilityStore, InstanceStore, MpiStore, SharingStore, StoreError, TierStore, TokenStore,
};

use crate::query::Scope;
use crate::{Sql, dose, mpi, now_unix, sharing};

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
        crate::find(&mut *self.0.reader(), Scope::Own(facility.as_str()), query).await
    }

    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError> {
        crate::retrieve(&mut *self.0.reader(), Scope::Own(facility.as_str()), query).await
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

#[async_trait]
impl<B: SqlBackend> MpiStore for SqlStore<B> {
    async fn pending_records(&self, limit: u32) -> Result<Vec<(PatientRecord, i64)>, StoreError> {
        mpi::pending_records(&mut *self.0.reader(), limit).await
    }

    async fn records_by_keys(&self, keys: &[String], largest_block: u32) -> Result<Vec<PatientRecord>, StoreError> {
        mpi::records_by_keys(&mut *self.0.reader(), keys, largest_block).await
    }

    async fn records(&self, ids: &[RecordId]) -> Result<Vec<PatientRecord>, StoreError> {
        mpi::records(&mut *self.0.reader(), ids).await
    }

    async fn records_of_persons(&self, persons: &[PersonId]) -> Result<Vec<PatientRecord>, StoreError> {
        mpi::records_of_persons(&mut *self.0.reader(), persons).await
    }

    async fn record_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        issuer: &str,
    ) -> Result<Option<PatientRecord>, StoreError> {
        mpi::record_of_patient(&mut *self.0.reader(), facility, patient_id, issuer).await
    }

    async fn all_records(&self) -> Result<Vec<(PatientRecord, i64)>, StoreError> {
        mpi::all_records(&mut *self.0.reader()).await
    }

    async fn current_links(&self, records: &[RecordId]) -> Result<Vec<Link>, StoreError> {
        mpi::links_touching(&mut *self.0.reader(), records, true).await
    }

    async fn all_current_links(&self) -> Result<Vec<Link>, StoreError> {
        mpi::all_current_links(&mut *self.0.reader()).await
    }

    async fn link_history(&self, records: &[RecordId]) -> Result<Vec<Link>, StoreError> {
        mpi::links_touching(&mut *self.0.reader(), records, false).await
    }

    async fn candidate_links(&self, limit: u32) -> Result<Vec<Link>, StoreError> {
        mpi::candidate_links(&mut *self.0.reader(), limit).await
    }

    async fn apply_matching(&self, outcome: &MatchOutcome, now: i64) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        mpi::apply_matching(&mut *tx, outcome, now).await?;
        tx.commit().await
    }

    async fn decide(&self, add: Option<&NewLink>, retire: &[i64], by: &Actor, now: i64) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        mpi::decide(&mut *tx, add, retire, by, now).await?;
        tx.commit().await
    }

    async fn model(&self) -> Result<Option<String>, StoreError> {
        mpi::model(&mut *self.0.reader()).await
    }

    async fn save_model(&self, model: &str, now: i64) -> Result<(), StoreError> {
        mpi::save_model(&mut *self.0.reader(), model, now).await
    }

    async fn mpi_stats(&self) -> Result<MpiStats, StoreError> {
        mpi::mpi_stats(&mut *self.0.reader()).await
    }
}

#[async_trait]
impl<B: SqlBackend> SharingStore for SqlStore<B> {
    async fn publish(&self, publication: &NewPublication, now: i64) -> Result<Publication, StoreError> {
        let mut tx = self.0.transaction().await?;
        let published = sharing::publish(&mut *tx, publication, now).await?;
        tx.commit().await?;
        Ok(published)
    }

    async fn revoke(&self, id: i64, facility: Option<&FacilityId>, by: &Actor, now: i64) -> Result<(), StoreError> {
        sharing::revoke(&mut *self.0.reader(), id, facility, by, now).await
    }

    async fn publications(&self, facility: Option<&FacilityId>, limit: u32) -> Result<Vec<Publication>, StoreError> {
        sharing::publications(&mut *self.0.reader(), facility, limit).await
    }

    async fn open_break_glass(&self, access: &NewBreakGlass) -> Result<BreakGlass, StoreError> {
        let mut tx = self.0.transaction().await?;
        let opened = sharing::open_break_glass(&mut *tx, access).await?;
        tx.commit().await?;
        Ok(opened)
    }

    async fn break_glasses(
        &self,
        facility: Option<&FacilityId>,
        unreviewed: bool,
        limit: u32,
    ) -> Result<Vec<BreakGlass>, StoreError> {
        sharing::break_glasses(&mut *self.0.reader(), facility, unreviewed, limit).await
    }

    async fn close_break_glass(
        &self,
        id: i64,
        facility: Option<&FacilityId>,
        by: &Actor,
        now: i64,
    ) -> Result<(), StoreError> {
        sharing::close_break_glass(&mut *self.0.reader(), id, facility, by, now).await
    }

    async fn review_break_glass(&self, id: i64, by: &Actor, now: i64) -> Result<(), StoreError> {
        sharing::review_break_glass(&mut *self.0.reader(), id, by, now).await
    }

    async fn find_shared(&self, facility: &FacilityId, query: &Query, now: i64) -> Result<Vec<QueryMatch>, StoreError> {
        crate::find(&mut *self.0.reader(), Scope::SharedWith { facility: facility.as_str(), now }, query).await
    }

    async fn retrieve_shared(
        &self,
        facility: &FacilityId,
        query: &Query,
        now: i64,
    ) -> Result<Vec<StoredInstance>, StoreError> {
        crate::retrieve(&mut *self.0.reader(), Scope::SharedWith { facility: facility.as_str(), now }, query).await
    }

    async fn published_to(
        &self,
        facility: &FacilityId,
        records: &[RecordId],
        now: i64,
    ) -> Result<Vec<RecordId>, StoreError> {
        sharing::published_to(&mut *self.0.reader(), facility, records, now).await
    }

    async fn record_shared_accesses(&self, accesses: &[SharedAccess]) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        sharing::record_shared_accesses(&mut *tx, accesses).await?;
        tx.commit().await
    }

    async fn shared_accesses(
        &self,
        facility: Option<&FacilityId>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<SharedAccess>, StoreError> {
        sharing::shared_accesses(&mut *self.0.reader(), facility, since, limit).await
    }
}

#[async_trait]
impl<B: SqlBackend> DoseStore for SqlStore<B> {
    async fn pending_dose(&self, queued_before: i64, limit: u32) -> Result<Vec<PendingDose>, StoreError> {
        dose::pending(&mut *self.0.reader(), queued_before, limit).await
    }

    async fn study_reports(&self, study_pk: i64) -> Result<Vec<DoseReport>, StoreError> {
        dose::study_reports(&mut *self.0.reader(), study_pk).await
    }

    async fn study_images(&self, study_pk: i64) -> Result<Vec<renkei_domain::dose::ReadImage>, StoreError> {
        dose::study_images(&mut *self.0.reader(), study_pk).await
    }

    async fn write_dose(&self, write: &DoseWrite) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        dose::write(&mut *tx, write).await?;
        tx.commit().await
    }

    async fn requeue_dose(&self, sop_classes: &[&str], now: i64) -> Result<u64, StoreError> {
        let mut tx = self.0.transaction().await?;
        let queued = dose::requeue(&mut *tx, sop_classes, now).await?;
        tx.commit().await?;
        Ok(queued)
    }

    async fn exams(&self, filter: &ExamFilter) -> Result<Vec<Exam>, StoreError> {
        dose::exams(&mut *self.0.reader(), filter).await
    }

    async fn quantiles(&self, filter: &ExamFilter, metric: Metric, by: Grouping) -> Result<Vec<Quantiles>, StoreError> {
        dose::quantiles(&mut *self.0.reader(), filter, metric, by).await
    }

    async fn workload(&self, filter: &ExamFilter) -> Result<Vec<WorkloadCell>, StoreError> {
        dose::workload(&mut *self.0.reader(), filter).await
    }

    async fn devices(&self, facility: Option<&FacilityId>) -> Result<Vec<KnownDevice>, StoreError> {
        dose::devices(&mut *self.0.reader(), facility).await
    }

    async fn exam_report(&self, id: i64) -> Result<Option<(Exam, DoseReport)>, StoreError> {
        dose::exam_report(&mut *self.0.reader(), id).await
    }

    async fn map_protocol(&self, mapping: &ProtocolMapping) -> Result<u64, StoreError> {
        let mut tx = self.0.transaction().await?;
        let applied = dose::map_protocol(&mut *tx, mapping).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn protocol_mappings(&self, facility: Option<&FacilityId>) -> Result<Vec<ProtocolMapping>, StoreError> {
        dose::protocol_mappings(&mut *self.0.reader(), facility).await
    }

    async fn unmapped_descriptions(
        &self,
        facility: Option<&FacilityId>,
        kind: Option<DoseKind>,
        limit: u32,
    ) -> Result<Vec<UnmappedDescription>, StoreError> {
        dose::unmapped(&mut *self.0.reader(), facility, kind, limit).await
    }

    async fn set_alert_rule(
        &self,
        facility: &FacilityId,
        metric: Metric,
        weeks: u32,
        rule: Option<&AlertRule>,
    ) -> Result<(), StoreError> {
        let mut tx = self.0.transaction().await?;
        dose::set_alert_rule(&mut *tx, facility, metric, weeks, rule).await?;
        tx.commit().await
    }

    async fn alert_rules(&self, facility: Option<&FacilityId>) -> Result<Vec<AlertRule>, StoreError> {
        dose::alert_rules(&mut *self.0.reader(), facility).await
    }
}
