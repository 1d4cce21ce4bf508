//! The storage traits of Renkei's index, organised by capability.
//!
//! - [`FacilityStore`]: facilities, their calling AE titles, and their DICOM nodes.
//! - [`InstanceStore`]: the instance index: group-committed writes, queries, retrieval lists, counts.
//! - [`TokenStore`]: API tokens, held only as hashes.
//! - [`TierStore`]: which blobs are cold, lifecycle candidates, access records, job leases.
//! - [`MpiStore`]: the master patient index: records, blocking keys, links and persons.
//! - [`SharingStore`]: publications, break-glass accesses, what they show, and their audit.
//! - [`DoseStore`]: dose objects waiting to be read, the reports read, exams, devices and
//!   each facility's mapping of exams to DRL categories.
//! - [`testsuite`] (feature `testsuite`): one conformance suite that every backend runs
//!   through [`store_test_suite!`].
//!
//! Backends live in `store-*` crates; SQL text exists only there.

use async_trait::async_trait;
use renkei_domain::dose::{
    AlertRule, DoseKind, DoseWrite, Exam, ExamFilter, Grouping, KnownDevice, Metric, PendingDose, ProtocolMapping,
    Quantiles, UnmappedDescription, WorkloadCell,
};
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, Principal, StoreOutcome, StoredInstance};
use renkei_domain::mpi::{Actor, Link, MatchOutcome, MpiStats, NewLink, PatientRecord, PersonId, RecordId};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::sharing::{BreakGlass, NewBreakGlass, NewPublication, Publication, SharedAccess};
use renkei_domain::tier::{Access, AccessCount, BlobRef, ColdRule, TierStats};
use renkei_domain::{AeTitle, ErrorKind, FacilityId};

#[cfg(feature = "testsuite")]
pub mod testsuite;

/// A store failure, with the kind each protocol maps.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage is full")]
    Full,
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Full => ErrorKind::OutOfResources,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}

/// Facilities, the calling AE titles that identify them, and their DICOM nodes.
#[async_trait]
pub trait FacilityStore: Send + Sync {
    /// Adds a facility. An id or an AE title that is already taken is a conflict.
    async fn add_facility(&self, facility: &Facility) -> Result<(), StoreError>;
    async fn facilities(&self) -> Result<Vec<Facility>, StoreError>;
    /// The facility a calling AE title belongs to.
    async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError>;
    /// Adds or updates a node of an existing facility.
    async fn put_node(&self, node: &Node) -> Result<(), StoreError>;
    async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, StoreError>;
}

/// The instance index.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records a batch of instances in one durable transaction (group commit). The outer
    /// error fails the whole batch; the inner results are per instance, in order.
    async fn record_instances(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError>;

    /// Entities of one facility at the query's level that match all its keys.
    async fn find(&self, facility: &FacilityId, query: &Query) -> Result<Vec<QueryMatch>, StoreError>;

    /// The current version of every instance under the entities the query matches.
    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError>;

    /// Counts per facility, for every facility.
    async fn stats(&self) -> Result<Vec<FacilityStats>, StoreError>;
}

/// API tokens. Only a hash of each token is ever stored.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records a token hash for a principal. A facility that does not exist is not found.
    async fn add_token(&self, hash: &str, principal: &Principal) -> Result<(), StoreError>;
    /// The principal a token hash stands for.
    async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError>;
}

/// Storage tiers as the index sees them, the retrieval log, and the leases that keep a
/// background job to one node at a time.
#[async_trait]
pub trait TierStore: Send + Sync {
    /// Hot blobs of the facility's current instances whose study meets the rule, at most
    /// `limit`, each once.
    async fn cold_candidates(
        &self,
        facility: &FacilityId,
        rule: &ColdRule,
        limit: u32,
    ) -> Result<Vec<BlobRef>, StoreError>;
    /// Records that the cold tier holds a verified copy of the blob.
    async fn mark_cold(&self, blob: &BlobRef) -> Result<(), StoreError>;
    /// Hot blobs of a patient's studies other than `except_study` that are cold, for prefetch.
    async fn cold_blobs_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        except_study: &str,
    ) -> Result<Vec<BlobRef>, StoreError>;
    /// Instances and bytes per facility and tier.
    async fn tier_stats(&self) -> Result<Vec<TierStats>, StoreError>;
    /// Logs retrievals, and marks their studies as just accessed.
    async fn record_accesses(&self, accesses: &[Access]) -> Result<(), StoreError>;
    /// Retrievals per facility and study-age bucket since `since` (Unix seconds).
    async fn access_report(&self, since: i64) -> Result<Vec<AccessCount>, StoreError>;
    /// Takes or renews the lease of `job` for `holder` until `now + seconds`; false if
    /// another holder's lease has not expired.
    async fn try_lease(&self, job: &str, holder: &str, now: i64, seconds: u32) -> Result<bool, StoreError>;
    /// Gives a lease up, if `holder` holds it.
    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError>;
}

/// The master patient index. Its records are the archive's patients: a patient is pending
/// from the moment it is recorded, and again whenever its name, birth date or sex change,
/// until the matcher has matched it.
#[async_trait]
pub trait MpiStore: Send + Sync {
    /// Records new or changed since last matched, oldest first, each with the change counter
    /// to hand back in [`MatchOutcome::matched`].
    async fn pending_records(&self, limit: u32) -> Result<Vec<(PatientRecord, i64)>, StoreError>;
    /// Records that share at least one of `keys` (a key ending in `*` is a prefix). A key
    /// filed under more than `largest_block` records is skipped: it identifies nobody.
    async fn records_by_keys(&self, keys: &[String], largest_block: u32) -> Result<Vec<PatientRecord>, StoreError>;
    async fn records(&self, ids: &[RecordId]) -> Result<Vec<PatientRecord>, StoreError>;
    /// Every record of these persons.
    async fn records_of_persons(&self, persons: &[PersonId]) -> Result<Vec<PatientRecord>, StoreError>;
    /// The record of a facility's patient.
    async fn record_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        issuer: &str,
    ) -> Result<Option<PatientRecord>, StoreError>;
    /// Every record with its change counter (0 when matched), for a rebuild.
    async fn all_records(&self) -> Result<Vec<(PatientRecord, i64)>, StoreError>;
    /// Current links that touch any of `records`.
    async fn current_links(&self, records: &[RecordId]) -> Result<Vec<Link>, StoreError>;
    /// Every current link, for a rebuild.
    async fn all_current_links(&self) -> Result<Vec<Link>, StoreError>;
    /// Every link, current and retired, that touches any of `records`, oldest first.
    async fn link_history(&self, records: &[RecordId]) -> Result<Vec<Link>, StoreError>;
    /// Current candidate links (the review queue), strongest first.
    async fn candidate_links(&self, limit: u32) -> Result<Vec<Link>, StoreError>;
    /// Writes one round of matching in one transaction, at `now` (Unix seconds).
    async fn apply_matching(&self, outcome: &MatchOutcome, now: i64) -> Result<(), StoreError>;
    /// Records a person's decision in one transaction: retires the links `retire`, adds
    /// `add`, and marks every record involved for matching again.
    async fn decide(&self, add: Option<&NewLink>, retire: &[i64], by: &Actor, now: i64) -> Result<(), StoreError>;
    /// The matching model in use (JSON), if one was saved.
    async fn model(&self) -> Result<Option<String>, StoreError>;
    async fn save_model(&self, model: &str, now: i64) -> Result<(), StoreError>;
    async fn mpi_stats(&self) -> Result<MpiStats, StoreError>;
}

/// Sharing between facilities: publications, break-glass accesses, what they let a facility
/// see, and the audit of every such access. Times are Unix seconds.
#[async_trait]
pub trait SharingStore: Send + Sync {
    /// Records a publication. The patient, and the study if one is named, must be the
    /// publishing facility's: otherwise not found.
    async fn publish(&self, publication: &NewPublication, now: i64) -> Result<Publication, StoreError>;
    /// Revokes a publication that is not revoked yet, if it is `facility`'s (any facility's
    /// when `None`); otherwise not found.
    async fn revoke(&self, id: i64, facility: Option<&FacilityId>, by: &Actor, now: i64) -> Result<(), StoreError>;
    /// Publications by `facility` (every one when `None`), newest first.
    async fn publications(&self, facility: Option<&FacilityId>, limit: u32) -> Result<Vec<Publication>, StoreError>;
    /// Records a break-glass access; the patient must be the facility's, otherwise not found.
    async fn open_break_glass(&self, access: &NewBreakGlass) -> Result<BreakGlass, StoreError>;
    /// Break-glass accesses of `facility` (every one when `None`), newest first; only those
    /// no administrator has reviewed when `unreviewed`.
    async fn break_glasses(
        &self,
        facility: Option<&FacilityId>,
        unreviewed: bool,
        limit: u32,
    ) -> Result<Vec<BreakGlass>, StoreError>;
    /// Ends a break-glass access that is still open, if it is `facility`'s (any facility's
    /// when `None`); otherwise not found.
    async fn close_break_glass(
        &self,
        id: i64,
        facility: Option<&FacilityId>,
        by: &Actor,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Marks a break-glass access reviewed; not found if there is no such unreviewed access.
    async fn review_break_glass(&self, id: i64, by: &Actor, now: i64) -> Result<(), StoreError>;
    /// What other facilities share with `facility` at `now` and the query matches (study level
    /// and below), under the facility's own patients. A study the facility itself holds under
    /// the same UID is not repeated.
    async fn find_shared(&self, facility: &FacilityId, query: &Query, now: i64) -> Result<Vec<QueryMatch>, StoreError>;
    /// The instances under what [`find_shared`](Self::find_shared) would find.
    async fn retrieve_shared(
        &self,
        facility: &FacilityId,
        query: &Query,
        now: i64,
    ) -> Result<Vec<StoredInstance>, StoreError>;
    /// Those of `records` that a current publication at `now` shares with `facility`.
    async fn published_to(
        &self,
        facility: &FacilityId,
        records: &[RecordId],
        now: i64,
    ) -> Result<Vec<RecordId>, StoreError>;
    async fn record_shared_accesses(&self, accesses: &[SharedAccess]) -> Result<(), StoreError>;
    /// Accesses by `facility` or to its studies (every one when `None`) since `since`, newest
    /// first.
    async fn shared_accesses(
        &self,
        facility: Option<&FacilityId>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<SharedAccess>, StoreError>;
}

/// Wraps a pattern of DICOM wildcards (`*`, `?`) as a SQL `LIKE` pattern with `\` as the
/// escape character. Shared by the backends so both match identically.
pub fn like_pattern(wildcard: &str) -> String {
    let mut out = String::with_capacity(wildcard.len() + 4);
    for c in wildcard.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Radiation dose: what the extractor has to read and what it read, exams for lists, charts
/// and benchmarks, and each facility's protocol mapping.
#[async_trait]
pub trait DoseStore: Send + Sync {
    /// Objects waiting for the extractor that were queued at or before `queued_before`,
    /// oldest first.
    async fn pending_dose(&self, queued_before: i64, limit: u32) -> Result<Vec<PendingDose>, StoreError>;
    /// The reports read so far from a study's objects, in the order they were stored.
    async fn study_reports(&self, study_pk: i64) -> Result<Vec<renkei_domain::dose::DoseReport>, StoreError>;
    /// The dose attributes of a study's CT images read so far.
    async fn study_images(&self, study_pk: i64) -> Result<Vec<renkei_domain::dose::ReadImage>, StoreError>;
    /// Writes one round: reports, images, exams (each replacing its study's exam of that kind, its
    /// device recorded, its category looked up in the facility's mapping) and the pending
    /// objects done, in one transaction.
    async fn write_dose(&self, write: &DoseWrite) -> Result<(), StoreError>;
    /// Forgets every report, image and exam and queues every stored object of `sop_classes`
    /// again (`renkei dose reindex`); returns how many were queued.
    async fn requeue_dose(&self, sop_classes: &[&str], now: i64) -> Result<u64, StoreError>;
    async fn exams(&self, filter: &ExamFilter) -> Result<Vec<Exam>, StoreError>;
    /// The distribution of `metric` over the filtered exams that have it, per group (the
    /// filter's limit does not apply).
    async fn quantiles(&self, filter: &ExamFilter, metric: Metric, by: Grouping) -> Result<Vec<Quantiles>, StoreError>;
    /// How many of the filtered exams started in each weekday and hour (in Japan), busy
    /// cells only (the filter's limit does not apply).
    async fn workload(&self, filter: &ExamFilter) -> Result<Vec<WorkloadCell>, StoreError>;
    /// Every device that has exams, of one facility or all.
    async fn devices(&self, facility: Option<&FacilityId>) -> Result<Vec<KnownDevice>, StoreError>;
    /// One exam's merged report.
    async fn exam_report(&self, id: i64) -> Result<Option<(Exam, renkei_domain::dose::DoseReport)>, StoreError>;
    /// Confirms (or, with `None`, rules out) the category of a facility's exam description,
    /// and applies it to the exams that have it.
    async fn map_protocol(&self, mapping: &ProtocolMapping) -> Result<u64, StoreError>;
    async fn protocol_mappings(&self, facility: Option<&FacilityId>) -> Result<Vec<ProtocolMapping>, StoreError>;
    /// Sets a facility's alert rule on a metric and window, or with `None` removes it.
    async fn set_alert_rule(
        &self,
        facility: &FacilityId,
        metric: Metric,
        weeks: u32,
        rule: Option<&AlertRule>,
    ) -> Result<(), StoreError>;
    async fn alert_rules(&self, facility: Option<&FacilityId>) -> Result<Vec<AlertRule>, StoreError>;
    /// Descriptions of exams that no mapping covers, most exams first.
    async fn unmapped_descriptions(
        &self,
        facility: Option<&FacilityId>,
        kind: Option<DoseKind>,
        limit: u32,
    ) -> Result<Vec<UnmappedDescription>, StoreError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_sql_wildcards() {
        assert_eq!(super::like_pattern("YAMA*"), "YAMA%");
        assert_eq!(super::like_pattern("a?b%c_d\\"), "a_b\\%c\\_d\\\\");
    }
}
