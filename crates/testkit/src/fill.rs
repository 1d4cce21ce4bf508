//! Fills an index with synthetic rows for the scale benchmark: instances in the
//! [`index_instance`] layout, each built as a data set, walked and extracted exactly as
//! ingest does, and recorded through the real store in batches. No blobs are written: the
//! rows name blobs that do not exist, so they serve queries, not retrieval.

use std::time::{Duration, Instant};

use anyhow::Context;
use renkei_dicom::Syntax;
use renkei_dicom::extract::{MAX_INDEXED_VALUE, extract, is_index_tag};
use renkei_dicom::walk::walk_bytes;
use renkei_domain::FacilityId;
use renkei_domain::model::{BlobHash, NewInstance};
use renkei_store::InstanceStore;

use crate::generate::{dataset, index_instance};

/// Rows recorded per transaction.
const BATCH: u64 = 1000;

/// The index row of instance `n` of `namespace`'s layout, as ingest would record it.
fn row(facility: &FacilityId, namespace: u64, n: u64) -> anyhow::Result<NewInstance> {
    let spec = index_instance(namespace, n);
    let bytes = dataset(&spec);
    let elements = walk_bytes(&bytes, Syntax::EXPLICIT_LE, &is_index_tag, MAX_INDEXED_VALUE)?;
    let extracted = extract(&elements).map_err(|missing| anyhow::anyhow!("{missing}"))?;
    Ok(NewInstance {
        facility: facility.clone(),
        study_uid: extracted.study_uid,
        series_uid: extracted.series_uid,
        sop_instance_uid: extracted.sop_instance_uid,
        sop_class_uid: extracted.sop_class_uid,
        transfer_syntax_uid: renkei_domain::Uid::new(&spec.transfer_syntax)?,
        blob: BlobHash(format!("synthetic-{namespace}-{n}")),
        size: bytes.len() as u64,
        attributes: extracted.attributes,
        // Its blob is not stored: there is nothing for the dose extractor to read.
        dose_source: false,
    })
}

/// Records instances `start..start + count` of `namespace`; rows are built on another
/// thread while the store writes. Returns the time spent.
pub async fn fill(
    store: &dyn InstanceStore,
    facility: &FacilityId,
    namespace: u64,
    start: u64,
    count: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<NewInstance>>>(4);
    let facility_for_rows = facility.clone();
    let builder = tokio::task::spawn_blocking(move || {
        let mut next = start;
        while next < start + count {
            let end = (next + BATCH).min(start + count);
            let batch: anyhow::Result<Vec<NewInstance>> =
                (next..end).map(|n| row(&facility_for_rows, namespace, n)).collect();
            if sender.blocking_send(batch).is_err() {
                return;
            }
            next = end;
        }
    });
    let mut done = 0;
    while let Some(batch) = receiver.recv().await {
        let batch = batch?;
        for result in store.record_instances(&batch).await.context("recording a batch")? {
            result.context("recording an instance")?;
        }
        done += batch.len() as u64;
        if done % 100_000 == 0 {
            eprintln!("{done} rows in {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    builder.await?;
    Ok(started.elapsed())
}

/// One line of a synthetic population (`bench/mpi_population.py`).
pub struct PopulationRecord {
    pub facility: String,
    pub patient_id: String,
    /// The truth: records of one person share it.
    pub person: u64,
    pub name: String,
    pub birth_date: String,
    pub sex: String,
}

/// Reads a population file: a header, then facility, patient_id, person, name, birth_date,
/// sex, tab-separated.
pub fn read_population(text: &str) -> anyhow::Result<Vec<PopulationRecord>> {
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [facility, patient_id, person, name, birth_date, sex] = fields[..] else {
                anyhow::bail!("a line without six fields: {line}")
            };
            Ok(PopulationRecord {
                facility: facility.into(),
                patient_id: patient_id.into(),
                person: person.parse().with_context(|| format!("person in {line}"))?,
                name: name.into(),
                birth_date: birth_date.into(),
                sex: sex.into(),
            })
        })
        .collect()
}

/// Records one instance (no blob) for each of `people`, so that each becomes a patient of
/// its facility; the facilities must exist. Returns the time spent.
pub async fn fill_patients(store: &dyn InstanceStore, people: &[PopulationRecord]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for (chunk_number, chunk) in people.chunks(BATCH as usize).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let n = chunk_number as u64 * BATCH + i as u64;
                let uid = |level: u64| renkei_domain::Uid::new(&format!("2.25.{}{:09}", 7000 + level, n));
                Ok(NewInstance {
                    facility: FacilityId::new(&p.facility)?,
                    study_uid: uid(1)?,
                    series_uid: uid(2)?,
                    sop_instance_uid: uid(3)?,
                    sop_class_uid: renkei_domain::Uid::new("1.2.840.10008.5.1.4.1.1.7")?,
                    transfer_syntax_uid: renkei_domain::Uid::new("1.2.840.10008.1.2.1")?,
                    blob: BlobHash(format!("synthetic-patient-{n}")),
                    size: 0,
                    attributes: renkei_domain::model::IndexedAttributes {
                        patient_id: Some(p.patient_id.clone()),
                        patient_name: Some(p.name.clone()),
                        patient_birth_date: Some(p.birth_date.clone()),
                        patient_sex: Some(p.sex.clone()),
                        ..Default::default()
                    },
                    dose_source: false,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for result in store.record_instances(&batch).await.context("recording a batch")? {
            result.context("recording a patient")?;
        }
    }
    Ok(started.elapsed())
}
