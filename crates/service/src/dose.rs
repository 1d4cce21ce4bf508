//! Radiation dose at work. Ingest queues every object that may carry dose (dose SRs, CT
//! images) in the same transaction that indexes it; the extractor (`serve`, every second,
//! one node at a time under the `dose` lease) reads them off the queue, study by study:
//! - a dose SR's report is read and kept;
//! - the study's reports of each kind are merged into its exam, each event once;
//! - a CT study with no CT report gets its exam from its images' CTDIvol.
//!
//! Objects wait `settle` seconds in the queue, so that a CT study arriving slice by slice
//! is read a few times rather than once per slice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use renkei_dicom::Syntax;
use renkei_dicom::walk::Node;
use renkei_domain::FacilityId;
use renkei_domain::dose::{
    AlertRule, DoseKind, DoseReport, DoseWrite, Exam, ExamFilter, Grouping, KnownDevice, Metric, NewExam, PendingDose,
    ProtocolMapping, Quantiles, ReadImage, ReadReport, UnmappedDescription, WorkloadCell,
};
use renkei_domain::model::{Principal, StoredInstance};
use renkei_domain::mpi::PatientRecord;
use renkei_domain::tier::date_time_in_japan;
use renkei_dose::{NotADoseReport, alerts, exam, header};

use crate::tiers::{now_unix, release_lease};
use crate::{Archive, ServiceError};

const LEASE: &str = "dose";
const LEASE_SECONDS: u32 = 120;
/// Objects read a round.
const ROUND: u32 = 500;
/// Objects whose reports and exams are written in one transaction.
const WRITE_CHUNK: usize = 32;
/// Values up to this size are held when a dose object is read; larger ones (pixel data)
/// are skipped.
const MAX_INLINE: u32 = 64 * 1024;

/// The most exams an alert check reads.
const ALERT_SCAN_LIMIT: u32 = 200_000;

/// What the alerts of a period are.
#[derive(Debug, Clone)]
pub struct DoseAlerts {
    pub exams: Vec<(Exam, Vec<alerts::Reason>)>,
    pub patients: Vec<alerts::PatientAlert>,
    pub rules: Vec<AlertRule>,
    /// Whether every exam of the period was checked (else only the newest
    /// `ALERT_SCAN_LIMIT`).
    pub complete: bool,
}

/// The most exams a history lists (decades of a heavily imaged patient fit).
const HISTORY_LIMIT: u32 = 10_000;

/// What one extractor run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoseRun {
    /// Queued objects read.
    pub read: usize,
    /// Dose reports found among them.
    pub reports: usize,
    /// Exams written.
    pub exams: usize,
}

/// Whether the extractor ran here.
#[derive(Debug)]
pub enum ExtractorRun {
    Done(DoseRun),
    /// Another node holds the lease.
    Busy,
    /// This node is ingesting: the extractor stands aside (see [`ExtractorPace`]).
    Deferred,
}

/// When the extractor reads: an object once it has waited `settle` (a CT study arriving
/// slice by slice is then read a few times, not once per slice); and not while this node
/// indexed an object within `quiet`, unless it has stood aside for `max_wait` already.
/// Reading dose then never competes with a modality's C-STORE for the index's write lock
/// and the CPU, and under an endless stream it still runs once per `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractorPace {
    pub settle: Duration,
    pub quiet: Duration,
    pub max_wait: Duration,
}

impl ExtractorPace {
    /// Everything queued, now (`renkei dose extract`).
    pub const NOW: ExtractorPace =
        ExtractorPace { settle: Duration::ZERO, quiet: Duration::ZERO, max_wait: Duration::ZERO };
}

/// When this node last indexed an object, and since when the extractor has stood aside.
#[derive(Debug, Default)]
pub(crate) struct IngestActivity {
    last_indexed: std::sync::Mutex<Option<Instant>>,
    aside_since: std::sync::Mutex<Option<Instant>>,
}

impl IngestActivity {
    pub(crate) fn indexed(&self) {
        *self.last_indexed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether the extractor should stand aside now.
    fn stand_aside(&self, pace: ExtractorPace) -> bool {
        let now = Instant::now();
        let ingesting = self
            .last_indexed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|last| now.duration_since(last) < pace.quiet);
        let mut aside = self.aside_since.lock().unwrap_or_else(|e| e.into_inner());
        if ingesting && now.duration_since(*aside.get_or_insert(now)) < pace.max_wait {
            return true;
        }
        *aside = None;
        false
    }
}

impl Archive {
    /// Reads every settled object in the dose queue, unless another node is doing so or
    /// this one is busy ingesting.
    pub async fn extract_dose(&self, pace: ExtractorPace) -> Result<ExtractorRun, ServiceError> {
        if self.ingest_activity.stand_aside(pace) {
            return Ok(ExtractorRun::Deferred);
        }
        if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
            return Ok(ExtractorRun::Busy);
        }
        let outcome = self.extract_rounds(pace.settle).await;
        release_lease(&*self.tiers, LEASE, &self.node).await;
        outcome.map(ExtractorRun::Done)
    }

    async fn extract_rounds(&self, settle: Duration) -> Result<DoseRun, ServiceError> {
        let mut run = DoseRun::default();
        loop {
            if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
                return Err(ServiceError::unavailable("another node took over the dose extractor's lease"));
            }
            let queued_before = now_unix() - settle.as_secs() as i64;
            let pending = self.dose.pending_dose(queued_before, ROUND).await?;
            if pending.is_empty() {
                return Ok(run);
            }
            let round = pending.len();
            let mut studies: BTreeMap<i64, Vec<PendingDose>> = BTreeMap::new();
            for item in pending {
                studies.entry(item.study_pk).or_default().push(item);
            }
            // Written a few dozen objects at a time: a commit per study cost more than reading
            // it, and one transaction for the round kept ingest waiting for the write lock.
            let mut write = DoseWrite::default();
            for (study_pk, items) in studies {
                write.append(self.study_dose(study_pk, items).await?);
                if write.done.len() >= WRITE_CHUNK {
                    self.write_dose(std::mem::take(&mut write), &mut run).await?;
                }
            }
            self.write_dose(write, &mut run).await?;
            if round < ROUND as usize {
                return Ok(run);
            }
        }
    }

    async fn write_dose(&self, write: DoseWrite, run: &mut DoseRun) -> Result<(), ServiceError> {
        if write.done.is_empty() {
            return Ok(());
        }
        run.read += write.done.len();
        run.reports += write.reports.len();
        run.exams += write.exams.len();
        Ok(self.dose.write_dose(&write).await?)
    }

    /// Reads a study's queued objects and works out its exams.
    async fn study_dose(&self, study_pk: i64, items: Vec<PendingDose>) -> Result<DoseWrite, ServiceError> {
        let facility = items[0].facility.clone();
        let mut write = DoseWrite { done: items.iter().map(|i| i.instance_pk).collect(), ..DoseWrite::default() };
        // One image read now stands for the study's device and patient if its dose comes
        // from its images.
        let mut first_image: Option<(Vec<Node>, Syntax)> = None;
        for item in &items {
            if header::is_ct_image(item.instance.sop_class_uid.as_str()) {
                let Some((nodes, syntax)) = self.read_tree(&item.instance).await? else { continue };
                if let Some(dose) = header::image_dose(&nodes, syntax.big_endian) {
                    write.images.push(ReadImage { instance_pk: item.instance_pk, study_pk, dose });
                    first_image.get_or_insert((nodes, syntax));
                }
            } else if let Some(report) = self.read_report(&item.instance).await? {
                write.reports.push(ReadReport { instance_pk: item.instance_pk, study_pk, report });
            }
        }
        // What was read before, with what was just read in its place or added.
        let mut reports = self.dose.study_reports(study_pk).await?;
        for read in &write.reports {
            match reports.iter_mut().find(|r| r.sop_instance_uid == read.report.sop_instance_uid) {
                Some(stored) => *stored = read.report.clone(),
                None => reports.push(read.report.clone()),
            }
        }
        let mut by_kind: BTreeMap<DoseKind, Vec<DoseReport>> = BTreeMap::new();
        for report in reports {
            by_kind.entry(report.kind).or_default().push(report);
        }
        let ct_reported = by_kind.contains_key(&DoseKind::Ct);
        let images = if ct_reported || first_image.is_some() {
            let mut images = self.dose.study_images(study_pk).await?;
            images.retain(|stored| !write.images.iter().any(|read| read.instance_pk == stored.instance_pk));
            images.extend(write.images.iter().cloned());
            images.into_iter().map(|read| read.dose).collect()
        } else {
            Vec::new()
        };

        for (kind, reports) in &by_kind {
            if let Some(mut merged) = exam::merge(reports) {
                if *kind == DoseKind::Ct {
                    renkei_dose::ssde::from_images(&mut merged, &images);
                }
                write.exams.push(new_exam(&facility, study_pk, merged));
            }
        }
        if let (false, Some((nodes, syntax))) = (ct_reported, first_image) {
            let uid = format!("{}/images", items[0].instance.study_uid);
            if let Some(report) = header::report(&uid, &nodes, syntax.big_endian, &images) {
                write.exams.push(new_exam(&facility, study_pk, report));
            }
        }
        Ok(write)
    }

    /// The dose report in a stored object, if it is one.
    async fn read_report(&self, instance: &StoredInstance) -> Result<Option<DoseReport>, ServiceError> {
        let Some((nodes, syntax)) = self.read_tree(instance).await? else { return Ok(None) };
        match renkei_dose::dose_report(&nodes, syntax.big_endian) {
            Ok(report) => {
                if !report.notes.is_empty() {
                    tracing::info!(sop_class = %instance.sop_class_uid, notes = ?report.notes, "dose report read with notes");
                }
                Ok(Some(report))
            }
            Err(NotADoseReport::SopClass(_) | NotADoseReport::Root) => Ok(None),
            Err(why) => {
                tracing::warn!(sop_class = %instance.sop_class_uid, %why, "dose object not read");
                Ok(None)
            }
        }
    }

    /// A stored object's data set as a tree (`None`, logged, if it cannot be read: it was
    /// validated when stored, so that is a damaged blob, not a reason to stop the queue).
    async fn read_tree(&self, instance: &StoredInstance) -> Result<Option<(Vec<Node>, Syntax)>, ServiceError> {
        let Some(syntax) = Syntax::from_uid(instance.transfer_syntax_uid.as_str()) else { return Ok(None) };
        let path = self.local_path(instance).await?;
        let tree = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path)?;
            renkei_dicom::walk::tree_file(&mut file, syntax, MAX_INLINE, &renkei_dicom::dictionary::implicit_vr)
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| ServiceError::unavailable(format!("reading a dose object failed: {e}")))?;
        match tree {
            Ok(nodes) => Ok(Some((nodes, syntax))),
            Err(error) => {
                tracing::warn!(%error, sop_class = %instance.sop_class_uid, "stored object unreadable for dose");
                Ok(None)
            }
        }
    }

    /// Forgets what was read and queues every stored dose object again; the extractor
    /// then reads them (`renkei dose reindex`).
    pub async fn reindex_dose(&self) -> Result<u64, ServiceError> {
        Ok(self.dose.requeue_dose(&renkei_dose::DOSE_SOURCE_CLASSES, now_unix()).await?)
    }

    /// Exams, as the filter says: its facility is the caller's scope (`None`: every
    /// facility's, for an administrator).
    pub async fn exams(&self, filter: &ExamFilter) -> Result<Vec<Exam>, ServiceError> {
        Ok(self.dose.exams(filter).await?)
    }

    /// The distribution of `metric` over the filtered exams, per group; the filter's
    /// facility is the caller's scope.
    pub async fn dose_quantiles(
        &self,
        filter: &ExamFilter,
        metric: Metric,
        by: Grouping,
    ) -> Result<Vec<Quantiles>, ServiceError> {
        Ok(self.dose.quantiles(filter, metric, by).await?)
    }

    pub async fn dose_workload(&self, filter: &ExamFilter) -> Result<Vec<WorkloadCell>, ServiceError> {
        Ok(self.dose.workload(filter).await?)
    }

    pub async fn dose_devices(&self, facility: Option<&FacilityId>) -> Result<Vec<KnownDevice>, ServiceError> {
        Ok(self.dose.devices(facility).await?)
    }

    /// A patient's dose history, oldest first: the exams of its record and of the other
    /// records of its person that `principal` may see (for an administrator, the person's
    /// records across the group; for a facility, its own).
    pub async fn dose_history(
        &self,
        principal: &Principal,
        facility: &FacilityId,
        patient_id: &str,
        issuer: &str,
    ) -> Result<(PatientRecord, Vec<Exam>), ServiceError> {
        if !principal.sees(facility) {
            return Err(ServiceError::not_found("patient"));
        }
        let record = self.mpi_record(facility, patient_id, issuer).await?;
        let mut patients = vec![record.id.0];
        patients.extend(self.linked_records(principal, &record).await?.iter().map(|r| r.id.0));
        let filter = ExamFilter { patients, limit: HISTORY_LIMIT, ..ExamFilter::default() };
        let mut exams = self.dose.exams(&filter).await?;
        exams.reverse();
        Ok((record, exams))
    }

    /// A facility's alert rules (every facility's for `None`).
    pub async fn alert_rules(&self, facility: Option<&FacilityId>) -> Result<Vec<AlertRule>, ServiceError> {
        Ok(self.dose.alert_rules(facility).await?)
    }

    /// Sets (or with `None` removes) a facility's alert rule on a metric and window.
    pub async fn set_alert_rule(
        &self,
        facility: &FacilityId,
        metric: Metric,
        weeks: u32,
        rule: Option<&AlertRule>,
    ) -> Result<(), ServiceError> {
        if rule.is_some_and(|r| !(r.threshold > 0.0 && r.threshold.is_finite())) {
            return Err(ServiceError::invalid("a threshold must be a positive number"));
        }
        tracing::info!(%facility, metric = metric.as_str(), weeks, set = rule.is_some(), "dose alert rule changed");
        Ok(self.dose.set_alert_rule(facility, metric, weeks, rule).await?)
    }

    /// Alerts about exams that started in `[since, until)`: exams over their DRL or a
    /// threshold, and patients over a cumulative threshold in a window ending then.
    pub async fn dose_alerts(
        &self,
        facility: Option<&FacilityId>,
        since: i64,
        until: i64,
    ) -> Result<DoseAlerts, ServiceError> {
        let rules = self.dose.alert_rules(facility).await?;
        let lookback = rules.iter().map(|r| i64::from(r.weeks) * 7 * 86_400).max().unwrap_or(0);
        let filter = ExamFilter {
            facility: facility.cloned(),
            since: Some(since - lookback),
            until: Some(until),
            limit: ALERT_SCAN_LIMIT,
            ..ExamFilter::default()
        };
        let exams = self.dose.exams(&filter).await?;
        let complete = exams.len() < ALERT_SCAN_LIMIT as usize;
        let recent: Vec<Exam> = exams.iter().filter(|e| e.started_at.is_some_and(|t| t >= since)).cloned().collect();
        let flagged = alerts::exam_alerts(&recent, &rules);
        let patients = alerts::patient_alerts(&exams, &rules).into_iter().filter(|a| a.to >= since).collect();
        let by_id: std::collections::HashMap<i64, &Exam> = recent.iter().map(|e| (e.id, e)).collect();
        let exams =
            flagged.into_iter().filter_map(|(id, reasons)| Some(((*by_id.get(&id)?).clone(), reasons))).collect();
        Ok(DoseAlerts { exams, patients, rules, complete })
    }

    /// One exam and its merged report, if it is `facility`'s (any facility's for `None`).
    pub async fn exam(&self, id: i64, facility: Option<&FacilityId>) -> Result<(Exam, DoseReport), ServiceError> {
        match self.dose.exam_report(id).await? {
            Some((exam, report)) if facility.is_none_or(|f| f.as_str() == exam.facility) => Ok((exam, report)),
            _ => Err(ServiceError::not_found("exam")),
        }
    }

    /// Confirms (or rules out) a DRL category for a facility's exam description; returns
    /// how many exams it applied to.
    pub async fn map_protocol(&self, mapping: &ProtocolMapping) -> Result<u64, ServiceError> {
        if let Some(category) = &mapping.category {
            let known = renkei_dose::drl::categories().into_iter().any(|c| &c.id == category && c.kind == mapping.kind);
            if !known {
                return Err(ServiceError::invalid(format!(
                    "{category} is no DRL category of {}",
                    mapping.kind.as_str()
                )));
            }
        }
        tracing::info!(facility = %mapping.facility, kind = mapping.kind.as_str(), category = ?mapping.category,
            "protocol mapping confirmed");
        Ok(self.dose.map_protocol(mapping).await?)
    }

    pub async fn protocol_mappings(&self, facility: Option<&FacilityId>) -> Result<Vec<ProtocolMapping>, ServiceError> {
        Ok(self.dose.protocol_mappings(facility).await?)
    }

    pub async fn unmapped_descriptions(
        &self,
        facility: Option<&FacilityId>,
        kind: Option<DoseKind>,
        limit: u32,
    ) -> Result<Vec<UnmappedDescription>, ServiceError> {
        Ok(self.dose.unmapped_descriptions(facility, kind, limit).await?)
    }
}

fn new_exam(facility: &FacilityId, study_pk: i64, report: DoseReport) -> NewExam {
    let description = [report.study_description.as_str(), report.requested_procedure.as_str()]
        .into_iter()
        .chain(report.protocols())
        .map(str::trim)
        .find(|d| !d.is_empty())
        .unwrap_or_default()
        .to_owned();
    let started_at = date_time_in_japan(&report.started);
    NewExam { facility: facility.clone(), study_pk, report, started_at, description }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extractor_stands_aside_while_this_node_ingests_but_not_forever() {
        let pace = |quiet_ms, max_wait_ms| ExtractorPace {
            settle: Duration::ZERO,
            quiet: Duration::from_millis(quiet_ms),
            max_wait: Duration::from_millis(max_wait_ms),
        };
        let activity = IngestActivity::default();
        assert!(!activity.stand_aside(pace(1000, 60_000)), "nothing stored yet");
        activity.indexed();
        assert!(activity.stand_aside(pace(1000, 60_000)), "just stored");
        assert!(!activity.stand_aside(ExtractorPace::NOW));
        assert!(!activity.stand_aside(pace(1000, 0)), "waited long enough");
        std::thread::sleep(Duration::from_millis(30));
        assert!(activity.stand_aside(pace(1000, 20)), "standing aside afresh");
        std::thread::sleep(Duration::from_millis(30));
        assert!(!activity.stand_aside(pace(1000, 20)), "for no longer than max_wait");
        assert!(!activity.stand_aside(pace(10, 60_000)), "quiet again");
    }
}
