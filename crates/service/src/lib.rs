//! The service layer: every read or write of patient data goes through [`Archive`], which
//! scopes it to one facility.
//!
//! - [`Archive::begin_ingest`] → [`Ingest`]: the ingest pipeline. Bytes stream to a blob as
//!   they arrive; on finish the blob is synced, validated and indexed in one walk off the
//!   runtime, committed under its content address, and its index record group-committed.
//!   Success is returned only when both are durable.
//! - `commit`: the group committer that batches index writes from concurrent ingests.
//! - `import`: reading Part-10 files for bulk import.
//! - `tokens`: API tokens: made from the OS's random source, stored only as hashes.
//! - `tiers`: the lifecycle mover (hot → cold), prefetch of cold priors, the retrieval log.
//!   Reads recall cold blobs transparently through [`Archive::local_path`].
//! - `mpi`: the master patient index (名寄せ): the matcher, rebuilds, people's decisions.
//! - `sharing`: what facilities publish to each other, break-glass access, the access
//!   audit, and shared objects relabelled on their way out.
//! - [`ServiceError`]: the transport-neutral error each protocol maps.

mod commit;
mod dose;
mod import;
mod mpi;
mod sharing;
mod tiers;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use renkei_blob::{BlobError, BlobStore, BlobWriter, CheckedBlob, StoredBlob};
use renkei_dicom::extract::{Extracted, MAX_INDEXED_VALUE, extract, is_index_tag};
use renkei_dicom::walk::walk_file;
use renkei_dicom::{Syntax, WalkError};
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, StoreOutcome, StoredInstance};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::{AeTitle, ErrorKind, FacilityId, Uid};
use renkei_store::{
    DoseStore, FacilityStore, InstanceStore, MpiStore, SharingStore, StoreError, TierStore, TokenStore,
};

pub use dose::{DoseAlerts, DoseRun, ExtractorPace, ExtractorRun};
pub use import::{ImportOutcome, Part10Prefix, part10_prefix, read_part10_header};
pub use mpi::{Decision, MatchReport, MatcherRun, PatientMatch, PersonView, RebuildReport, ReviewTask, thresholds};
pub use renkei_matching::Record as Demographics;
pub use renkei_matching::model::{Explanation, Grade};
pub use sharing::{BREAK_GLASS_DEFAULT_HOURS, BREAK_GLASS_LONGEST_HOURS, Reader, Transcoder};
pub use tiers::{FacilityPolicy, LifecyclePolicy, LifecycleRun, MoveFailed, MoveReport, now_unix};

/// A failure with the kind each protocol maps and a message that is safe to show a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Invalid, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::NotFound, message: message.into() }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Unavailable, message: message.into() }
    }

    pub fn out_of_resources() -> Self {
        Self { kind: ErrorKind::OutOfResources, message: "storage is full".into() }
    }

    /// An internal failure: the detail goes to the log, the client gets a generic message.
    fn internal(context: &'static str, error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(error), "{context}");
        Self { kind: ErrorKind::Unavailable, message: format!("{context}; see server log") }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => Self::out_of_resources(),
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(what) => Self { kind: ErrorKind::Conflict, message: what },
            StoreError::Unavailable(_) => Self::internal("index unavailable", &error),
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::Full => Self::out_of_resources(),
            BlobError::NotFound(hash) => {
                tracing::error!(blob = %hash, "indexed blob is missing");
                Self { kind: ErrorKind::Unavailable, message: "stored object is missing; see server log".into() }
            }
            BlobError::Io(_) => Self::internal("blob storage failed", &error),
        }
    }
}

/// Why an object was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The bytes are not a well-formed dataset (truncated, garbled).
    #[error("{0}")]
    Malformed(String),
    /// A well-formed dataset that lacks identifying attributes or contradicts the request.
    #[error("{0}")]
    DoesNotMatch(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<BlobError> for IngestError {
    fn from(error: BlobError) -> Self {
        Self::Service(error.into())
    }
}

/// The archive: index, blobs and the group committer, shared by every protocol.
pub struct Archive {
    facilities: Arc<dyn FacilityStore>,
    instances: Arc<dyn InstanceStore>,
    tokens: Arc<dyn TokenStore>,
    tiers: Arc<dyn TierStore>,
    mpi: Arc<dyn MpiStore>,
    sharing: Arc<dyn SharingStore>,
    dose: Arc<dyn DoseStore>,
    blobs: Arc<BlobStore>,
    committer: commit::Committer,
    /// This process, as a lease holder.
    node: String,
    /// Whether a new study warms its patient's cold priors (asked for, and a cold tier there).
    prefetch: bool,
    /// Studies whose priors this node prefetched lately.
    prefetched: tiers::RecentlySeen,
    /// Studies whose retrieval this node logged lately.
    retrieved: tiers::RecentlySeen,
    /// Shared studies whose access this node recorded lately.
    audited: tiers::RecentlySeen,
    mpi_model: mpi::ModelCache,
    /// When this node last indexed an object, for the dose extractor's pace.
    ingest_activity: dose::IngestActivity,
    /// The hub's own matching thresholds, over whatever model is in use.
    mpi_thresholds: Option<renkei_matching::model::Thresholds>,
}

/// The stores an archive works on.
pub struct Stores {
    pub facilities: Arc<dyn FacilityStore>,
    pub instances: Arc<dyn InstanceStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub tiers: Arc<dyn TierStore>,
    pub mpi: Arc<dyn MpiStore>,
    pub sharing: Arc<dyn SharingStore>,
    pub dose: Arc<dyn DoseStore>,
}

impl Stores {
    /// Every store from one backend.
    pub fn of<
        S: FacilityStore + InstanceStore + TokenStore + TierStore + MpiStore + SharingStore + DoseStore + 'static,
    >(
        store: S,
    ) -> Stores {
        let shared = Arc::new(store);
        Stores {
            facilities: shared.clone(),
            instances: shared.clone(),
            tokens: shared.clone(),
            tiers: shared.clone(),
            mpi: shared.clone(),
            sharing: shared.clone(),
            dose: shared,
        }
    }
}

/// What an ingest must agree with: what the protocol announced (the C-STORE command, a
/// STOW-RS part's file meta and URL), if anything.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub sop_class_uid: Option<Uid>,
    pub sop_instance_uid: Option<Uid>,
    /// The study a STOW-RS request to `/studies/{study}` stores into.
    pub study_uid: Option<Uid>,
}

/// The result of a successful ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub sop_class_uid: Uid,
    pub sop_instance_uid: Uid,
    pub outcome: StoreOutcome,
}

impl Archive {
    /// Builds the archive and starts its group committer; it must be created inside a Tokio
    /// runtime. `prefetch` warms a patient's cold priors when a new study arrives.
    pub fn new(stores: Stores, blobs: Arc<BlobStore>, prefetch: bool) -> Self {
        let Stores { facilities, instances, tokens, tiers, mpi, sharing, dose } = stores;
        let committer = commit::Committer::start(instances.clone());
        let mut random = [0u8; 4];
        let _ = getrandom::fill(&mut random);
        let node = format!("{}-{:08x}", std::process::id(), u32::from_le_bytes(random));
        let prefetch = prefetch && blobs.cold().is_some();
        let (prefetched, retrieved, audited) = Default::default();
        Self {
            facilities,
            instances,
            tokens,
            tiers,
            mpi,
            sharing,
            dose,
            blobs,
            committer,
            node,
            prefetch,
            prefetched,
            retrieved,
            audited,
            mpi_model: Default::default(),
            ingest_activity: Default::default(),
            mpi_thresholds: None,
        }
    }

    /// Matches patients with these thresholds instead of the model's.
    pub fn with_matching_thresholds(mut self, thresholds: renkei_matching::model::Thresholds) -> Self {
        self.mpi_thresholds = Some(thresholds);
        self
    }

    /// Opens a blob store under `data_dir`, with its buckets, cleaning temporaries older
    /// than an hour.
    pub fn open_blobs(data_dir: &Path, tiers: renkei_blob::Tiers) -> Result<Arc<BlobStore>, ServiceError> {
        let blobs = BlobStore::open_tiered(data_dir, tiers)?;
        let removed = blobs.clean_stale_temporaries(std::time::Duration::from_secs(3600))?;
        if removed > 0 {
            tracing::info!(removed, "removed stale temporary blobs");
        }
        Ok(Arc::new(blobs))
    }

    /// Stops accepting index writes and waits for queued ones to commit.
    pub async fn shutdown(&self) {
        self.committer.shutdown().await;
    }

    pub async fn add_facility(&self, facility: &Facility) -> Result<(), ServiceError> {
        Ok(self.facilities.add_facility(facility).await?)
    }

    pub async fn facilities(&self) -> Result<Vec<Facility>, ServiceError> {
        Ok(self.facilities.facilities().await?)
    }

    pub async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, ServiceError> {
        Ok(self.facilities.facility_of_ae(ae_title).await?)
    }

    pub async fn put_node(&self, node: &Node) -> Result<(), ServiceError> {
        Ok(self.facilities.put_node(node).await?)
    }

    pub async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, ServiceError> {
        Ok(self.facilities.node(facility, ae_title).await?)
    }

    pub async fn stats(&self) -> Result<Vec<FacilityStats>, ServiceError> {
        Ok(self.instances.stats().await?)
    }

    /// Starts receiving one object for `facility`, encoded in `transfer_syntax`.
    pub async fn begin_ingest(&self, facility: FacilityId, transfer_syntax: Uid) -> Result<Ingest<'_>, ServiceError> {
        let syntax = Syntax::from_uid(transfer_syntax.as_str())
            .ok_or_else(|| ServiceError::invalid("transfer syntax is not a standard one"))?;
        let writer = self.blobs.create();
        Ok(Ingest { archive: self, facility, transfer_syntax, syntax, writer })
    }

    /// Entities of `facility` matching the query.
    pub async fn find(&self, facility: &FacilityId, query: &Query) -> Result<Vec<QueryMatch>, ServiceError> {
        Ok(self.instances.find(facility, query).await?)
    }

    /// The instances of `facility` under the query's matches. Logs the retrieval of their
    /// studies, with the studies' ages.
    pub async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, ServiceError> {
        let instances = self.instances.retrieve(facility, query).await?;
        self.log_retrieval(facility, &instances);
        self.read_ahead(&instances);
        Ok(instances)
    }

    /// Where the stored bytes of an instance are on local disk, for blocking readers: a
    /// cold instance is recalled first (streamed to the recall cache, never held in memory).
    pub async fn local_path(&self, instance: &StoredInstance) -> Result<std::path::PathBuf, ServiceError> {
        Ok(self.blobs.make_local(&instance.blob).await?)
    }

    /// A nameless scratch file on the data disk, gone once dropped (see
    /// [`BlobStore::scratch_file`]). Blocking.
    pub fn scratch_file(&self) -> Result<std::fs::File, ServiceError> {
        Ok(self.blobs.scratch_file()?)
    }

    /// Opens the stored bytes of an instance (its dataset, as received).
    pub async fn open_instance(&self, instance: &StoredInstance) -> Result<tokio::fs::File, ServiceError> {
        Ok(self.blobs.open_blob(&instance.blob).await?)
    }
}

/// One object being received. Feed it with [`write`](Self::write), then [`finish`](Self::finish)
/// or [`abort`](Self::abort).
pub struct Ingest<'a> {
    archive: &'a Archive,
    facility: FacilityId,
    transfer_syntax: Uid,
    syntax: Syntax,
    writer: BlobWriter,
}

impl Ingest<'_> {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        Ok(self.writer.write(chunk).await?)
    }

    /// Abandons the object: nothing of it is kept.
    pub async fn abort(self) {
        self.writer.abort().await;
    }

    /// Validates, stores and indexes the object. Returns only when it is durable.
    pub async fn finish(self, expected: &Expected) -> Result<Ingested, IngestError> {
        let Ingest { archive, facility, transfer_syntax, syntax, writer } = self;
        let (stored, extracted) = writer.finish(validator(syntax, expected.clone())).await??;
        archive.index(record(facility, transfer_syntax, stored, extracted)).await
    }

    /// Validates the object and makes its bytes durable, but keeps them out of sight:
    /// [`Archive::commit_staged`] gives them their content address and indexes them, and
    /// [`Staged::discard`] removes them.
    pub async fn finish_staged(self, expected: &Expected) -> Result<Staged, IngestError> {
        let Ingest { archive: _, facility, transfer_syntax, syntax, writer } = self;
        let (blob, extracted) = writer.check(validator(syntax, expected.clone())).await??;
        Ok(Staged { record: record(facility, transfer_syntax, blob.stored().clone(), extracted), blob })
    }
}

/// The check every received object passes on the blocking pool, on the synced file, before
/// it gets its content address: it walks whole, and says what the request said it is.
fn validator(
    syntax: Syntax,
    expected: Expected,
) -> impl FnOnce(&mut std::fs::File) -> Result<Extracted, IngestError> + Send + 'static {
    move |file: &mut std::fs::File| {
        let elements = walk_file(file, syntax, &is_index_tag, MAX_INDEXED_VALUE).map_err(|error| match error {
            WalkError::Io(error) => IngestError::from(BlobError::from(error)),
            invalid => IngestError::Malformed(invalid.to_string()),
        })?;
        let extracted = extract(&elements).map_err(|missing| IngestError::DoesNotMatch(missing.to_string()))?;
        match mismatch(&expected, &extracted) {
            Some(mismatch) => Err(IngestError::DoesNotMatch(mismatch)),
            None => Ok(extracted),
        }
    }
}

fn record(facility: FacilityId, transfer_syntax: Uid, stored: StoredBlob, extracted: Extracted) -> NewInstance {
    let dose_source = renkei_dose::is_dose_source(extracted.sop_class_uid.as_str());
    NewInstance {
        facility,
        study_uid: extracted.study_uid,
        series_uid: extracted.series_uid,
        sop_instance_uid: extracted.sop_instance_uid,
        sop_class_uid: extracted.sop_class_uid,
        transfer_syntax_uid: transfer_syntax,
        blob: stored.hash,
        size: stored.size,
        dose_source,
        attributes: extracted.attributes,
    }
}

/// A validated object whose bytes are durable but neither under their content address nor
/// indexed yet.
#[derive(Debug)]
pub struct Staged {
    record: NewInstance,
    blob: CheckedBlob,
}

impl Staged {
    pub fn sop_class_uid(&self) -> &Uid {
        &self.record.sop_class_uid
    }

    pub fn sop_instance_uid(&self) -> &Uid {
        &self.record.sop_instance_uid
    }

    pub fn study_uid(&self) -> &Uid {
        &self.record.study_uid
    }

    /// Removes the object's bytes: nothing of it is kept.
    pub async fn discard(self) {
        self.blob.discard().await;
    }
}

impl Archive {
    /// Publishes a staged object's bytes and indexes it (group-committed). Returns only when
    /// both are durable.
    pub async fn commit_staged(&self, staged: Staged) -> Result<Ingested, IngestError> {
        let Staged { record, blob } = staged;
        blob.publish().await?;
        self.index(record).await
    }

    async fn index(&self, record: NewInstance) -> Result<Ingested, IngestError> {
        let (sop_class_uid, sop_instance_uid) = (record.sop_class_uid.clone(), record.sop_instance_uid.clone());
        // Only what prefetch needs outlives the record, and only when prefetch is on.
        let prior_of = self
            .prefetch
            .then(|| (record.facility.clone(), record.study_uid.clone(), record.attributes.patient_id.clone()));
        let outcome = self.committer.commit(record).await?;
        self.ingest_activity.indexed();
        if let (Some((facility, study, Some(patient))), StoreOutcome::Created) = (prior_of, outcome) {
            self.prefetch_priors(facility, study, patient);
        }
        Ok(Ingested { sop_class_uid, sop_instance_uid, outcome })
    }
}

fn mismatch(expected: &Expected, extracted: &Extracted) -> Option<String> {
    let checks = [
        (&expected.sop_instance_uid, &extracted.sop_instance_uid, "SOP Instance UID"),
        (&expected.sop_class_uid, &extracted.sop_class_uid, "SOP Class UID"),
        (&expected.study_uid, &extracted.study_uid, "Study Instance UID"),
    ];
    for (want, found, name) in checks {
        if let Some(want) = want
            && want != found
        {
            return Some(format!("{name} in data set ({found}) differs from the request ({want})"));
        }
    }
    None
}
