//! Fills an index with synthetic dose exams for the benchmark view's measurement: a group of
//! facilities, each with its CTs and angiography rooms, whose exams spread over the adult
//! CT and IVR DRL categories (a few common, most rare, as in a real department) and over
//! three years. Each exam goes through the real store the way the extractor writes it: a
//! study recorded (no blob), its queued dose object taken from the queue, and a merged
//! report with two or three irradiation events written against it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use renkei_domain::dose::{
    CtEvent, Device, DoseKind, DoseReport, DoseSource, DoseWrite, Event, EventData, NewExam, PatientSize, PendingDose,
    Phantom, ProjectionEvent, ProtocolMapping, Totals,
};
use renkei_domain::model::{BlobHash, Facility, IndexedAttributes, NewInstance};
use renkei_domain::{AeTitle, FacilityId, Uid};
use renkei_dose::drl;
use renkei_store::{DoseStore, FacilityStore, InstanceStore};

use crate::generate::splitmix;

/// Exams written per transaction.
const BATCH: u64 = 1000;
/// CTs and angiography rooms per facility.
const CT_ROOMS: u64 = 3;
const ANGIO_ROOMS: u64 = 1;
/// 2023-01-01T00:00:00+09:00, and the three years after it.
const FIRST_DAY: i64 = 1_672_498_800;
const SPAN: i64 = 3 * 365 * 86_400;

/// What a store must do for [`fill_exams`].
pub trait ExamSink: FacilityStore + InstanceStore + DoseStore {}
impl<T: FacilityStore + InstanceStore + DoseStore> ExamSink for T {}

/// A DRL category exams are drawn from, with its share and its levels.
struct Category {
    id: String,
    kind: DoseKind,
    /// The description every facility's protocol carries for it.
    description: String,
    /// The current edition's level of each metric the category has.
    levels: Vec<(renkei_domain::dose::Metric, f64)>,
}

/// The current edition's adult CT and IVR categories, in the table's order.
fn categories() -> Vec<Category> {
    let edition = drl::current();
    let mut out: Vec<Category> = Vec::new();
    for level in edition.levels.iter().filter(|l| l.ages.is_none()) {
        if !matches!(level.kind, DoseKind::Ct | DoseKind::Projection) {
            continue;
        }
        match out.iter_mut().find(|c| c.id == level.category) {
            Some(category) => category.levels.push((level.metric, level.value)),
            None => out.push(Category {
                id: level.category.clone(),
                kind: level.kind,
                description: level.name_ja.clone(),
                levels: vec![(level.metric, level.value)],
            }),
        }
    }
    out
}

/// A uniform draw in [0, 1) from `seed`.
fn unit(seed: u64) -> f64 {
    (splitmix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// A log-normal factor with median `median` and a spread of about ±40%.
fn spread(seed: u64, median: f64) -> f64 {
    // The sum of four uniforms, centred: close enough to normal for a dose distribution.
    let normal = (0..4).map(|i| unit(seed ^ (i << 56))).sum::<f64>() - 2.0;
    median * (normal * 0.6).exp()
}

/// Category index for exam `n`: category `i` has weight 1 / (i + 1), so the first (routine
/// head CT) holds about a quarter of all exams.
fn pick(n: u64, count: usize) -> usize {
    let total: f64 = (1..=count).map(|i| 1.0 / i as f64).sum();
    let mut target = unit(n ^ 0xCA7E) * total;
    for i in 0..count {
        target -= 1.0 / (i + 1) as f64;
        if target < 0.0 {
            return i;
        }
    }
    count - 1
}

fn facility_id(f: u64) -> anyhow::Result<FacilityId> {
    Ok(FacilityId::new(&format!("dose{f:02}"))?)
}

fn device(f: u64, room: u64, kind: DoseKind) -> Device {
    let (manufacturer, model) = match (kind, room % 3) {
        (DoseKind::Ct, 0) => ("CANON_MEC", "Aquilion ONE"),
        (DoseKind::Ct, 1) => ("SIEMENS", "SOMATOM Force"),
        (DoseKind::Ct, _) => ("GE MEDICAL SYSTEMS", "Revolution CT"),
        _ => ("Philips", "Azurion 7 M20"),
    };
    Device {
        manufacturer: manufacturer.into(),
        model: model.into(),
        serial: format!("{f:02}{room:02}"),
        station: format!("{}{}", if kind == DoseKind::Ct { "CT" } else { "ANGIO" }, room + 1),
        institution: format!("施設{f:02}"),
        observer_uid: String::new(),
    }
}

/// Exam `n` of facility `f`: its report (device, events, totals) and start.
fn report(n: u64, f: u64, category: &Category, study_uid: &str) -> (DoseReport, i64) {
    let started_at = FIRST_DAY + (unit(n ^ 0x7135) * SPAN as f64) as i64;
    // Each device sits at its own dose level, so that the benchmark has something to show.
    let room = splitmix(n ^ 0x800A) % if category.kind == DoseKind::Ct { CT_ROOMS } else { ANGIO_ROOMS };
    let habit = 0.5 + unit(f * 31 + room) * 0.5;
    let level = |metric: &str| {
        category
            .levels
            .iter()
            .find(|(m, _)| m.as_str() == metric)
            .map(|(_, v)| spread(n ^ metric.len() as u64, v * habit))
    };
    let uid = |e: u64| format!("2.25.{}{e}", splitmix(n ^ 0xE7E7) >> 4);
    let events: Vec<Event> = match category.kind {
        DoseKind::Ct => {
            let (ctdivol, dlp) = (level("ctdivol").unwrap_or(10.0), level("dlp").unwrap_or(500.0));
            let phantom = if category.id == "ct.head" { Phantom::Head16 } else { Phantom::Body32 };
            (0..2)
                .map(|e| Event {
                    uid: uid(e),
                    protocol: category.description.clone(),
                    target_region: String::new(),
                    started: String::new(),
                    data: EventData::Ct(CtEvent {
                        acquisition_type: "Spiral Acquisition".into(),
                        ctdivol: Some(ctdivol),
                        dlp: Some(dlp / 2.0),
                        phantom: Some(phantom),
                        scanning_length: Some(dlp / 2.0 / ctdivol * 10.0),
                        kvp: Some(120.0),
                        tube_current: Some(200.0),
                        max_tube_current: Some(350.0),
                        exposure_time: Some(5.0),
                        pitch: Some(0.8),
                        total_collimation: Some(40.0),
                        ssde: None,
                        dose_check: false,
                    }),
                })
                .collect()
        }
        _ => {
            let (dap, dose_rp) = (level("dap").unwrap_or(50.0), level("dose_rp").unwrap_or(500.0));
            (0..3)
                .map(|e| Event {
                    uid: uid(e),
                    protocol: category.description.clone(),
                    target_region: String::new(),
                    started: String::new(),
                    data: EventData::Projection(ProjectionEvent {
                        event_type: if e == 0 { "Fluoroscopy" } else { "Stationary Acquisition" }.into(),
                        fluoroscopy: e == 0,
                        dap: Some(dap / 3.0),
                        dose_rp: Some(dose_rp / 3.0),
                        kvp: Some(80.0),
                        primary_angle: Some(30.0),
                        source_detector: Some(1100.0),
                        ..ProjectionEvent::default()
                    }),
                })
                .collect()
        }
    };
    let totals = Totals {
        dlp: renkei_domain::dose::sum_over(&events, EventData::dlp),
        dap: renkei_domain::dose::sum_over(&events, EventData::dap),
        dose_rp: renkei_domain::dose::sum_over(&events, EventData::dose_rp),
        events: Some(events.len() as u32),
        ..Totals::default()
    };
    let report = DoseReport {
        sop_instance_uid: format!("2.25.{}", splitmix(n ^ 0x50B) >> 1),
        study_uid: study_uid.into(),
        source: DoseSource::Rdsr,
        kind: category.kind,
        device: device(f, room, category.kind),
        started: String::new(),
        study_description: category.description.clone(),
        requested_procedure: String::new(),
        patient: PatientSize {
            age_years: Some(20.0 + (splitmix(n ^ 0xA6E) % 70) as f64),
            weight_kg: Some(60.0),
            height_m: None,
        },
        totals,
        events,
        notes: Vec::new(),
    };
    (report, started_at)
}

/// Adds `facilities` facilities (`dose01`…), maps each category's description to it in each,
/// and writes `count` exams spread over them. Returns the time spent.
pub async fn fill_exams(store: &dyn ExamSink, facilities: u64, count: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let categories = categories();
    let existing = store.facilities().await?;
    for f in 1..=facilities {
        let id = facility_id(f)?;
        if !existing.iter().any(|e| e.id == id) {
            let ae = AeTitle::new(&format!("DOSE{f:02}"))?;
            store.add_facility(&Facility { name: format!("線量 {f:02}"), id: id.clone(), ae_titles: vec![ae] }).await?;
        }
        for category in &categories {
            let mapping = ProtocolMapping {
                facility: id.as_str().to_owned(),
                kind: category.kind,
                description: category.description.clone(),
                category: Some(category.id.clone()),
                confirmed_by: "bench".into(),
                confirmed_at: FIRST_DAY,
            };
            store.map_protocol(&mapping).await?;
        }
    }
    let rdsr = Uid::new(crate::dose::RDSR)?;
    let syntax = Uid::new("1.2.840.10008.1.2.1")?;
    let mut next = 0;
    while next < count {
        let end = (next + BATCH).min(count);
        let mut planned = Vec::new();
        let mut instances = Vec::new();
        for n in next..end {
            let f = 1 + splitmix(n ^ 0xFAC1) % facilities;
            let uid = |level: u64| Uid::new(&format!("2.25.{}{:010}", 8100 + level, n));
            let study_uid = uid(1)?;
            instances.push(NewInstance {
                facility: facility_id(f)?,
                study_uid: study_uid.clone(),
                series_uid: uid(2)?,
                sop_instance_uid: uid(3)?,
                sop_class_uid: rdsr.clone(),
                transfer_syntax_uid: syntax.clone(),
                blob: BlobHash(format!("synthetic-dose-{n}")),
                size: 0,
                attributes: IndexedAttributes {
                    // About three exams per patient.
                    patient_id: Some(format!("D{:08}", n / 3)),
                    patient_name: Some("Yamada^Tarou=山田^太郎=やまだ^たろう".into()),
                    ..IndexedAttributes::default()
                },
                dose_source: true,
            });
            planned.push((n, f, study_uid));
        }
        for result in store.record_instances(&instances).await.context("recording studies")? {
            result.context("recording a study")?;
        }
        // The queue hands back each study's key, as it does to the extractor.
        let pending = store.pending_dose(i64::MAX, BATCH as u32).await?;
        let queue: HashMap<&str, &PendingDose> = pending.iter().map(|p| (p.instance.study_uid.as_str(), p)).collect();
        let mut write = DoseWrite::default();
        for (n, f, study_uid) in &planned {
            let queued = queue.get(study_uid.as_str()).context("a recorded study is not in the dose queue")?;
            let category = &categories[pick(*n, categories.len())];
            let (report, started_at) = report(*n, *f, category, study_uid.as_str());
            write.done.push(queued.instance_pk);
            write.exams.push(NewExam {
                facility: facility_id(*f)?,
                study_pk: queued.study_pk,
                report,
                started_at: Some(started_at),
                description: category.description.clone(),
            });
        }
        store.write_dose(&write).await?;
        next = end;
        if next % 100_000 == 0 {
            eprintln!("{next} exams in {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(started.elapsed())
}
