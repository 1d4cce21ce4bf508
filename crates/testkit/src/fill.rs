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
