//! A dose report from a dose SR: CT (TID 10011), projection X-ray and mammography
//! (TID 10001), radiopharmaceutical administration (TID 10021).
//!
//! Content items are found by concept code (with the old SNOMED codes as aliases), at any
//! depth inside the container they belong to, and every number is converted by its unit
//! code. What is missing stays `None`; what is odd is noted and read anyway.

use renkei_dicom::tags::tag;
use renkei_dicom::walk::Node;
use renkei_domain::dose::{
    Administration, CtEvent, Device, DoseKind, DoseReport, DoseSource, Event, EventData, Filter, PatientSize, Phantom,
    Plane, ProjectionEvent, Ssde, SsdeMethod, Totals, sum_over,
};

use crate::codes::{self, Concept};
use crate::sr::{Code, Item, Reader};
use crate::units::Quantity;

pub const RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.67";
pub const RADIOPHARMACEUTICAL_RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.68";
pub const ENHANCED_RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.76";
/// Enhanced and Comprehensive SR: some older CTs put their dose tree in these.
pub(crate) const GENERAL_SR: [&str; 3] =
    ["1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];

/// Whether objects of this SOP class may hold a dose report (the root concept decides).
pub fn may_hold_dose_report(sop_class: &str) -> bool {
    [RDSR, RADIOPHARMACEUTICAL_RDSR, ENHANCED_RDSR].contains(&sop_class) || GENERAL_SR.contains(&sop_class)
}

/// Why an object gave no dose report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotADoseReport {
    #[error("SOP class {0} does not carry dose reports")]
    SopClass(String),
    #[error("the document is not an X-Ray or Radiopharmaceutical Radiation Dose Report")]
    Root,
    #[error("the dose report has no {0}")]
    Missing(&'static str),
}

pub(crate) const MANUFACTURER: u32 = tag(0x0008, 0x0070);
pub(crate) const INSTITUTION: u32 = tag(0x0008, 0x0080);
pub(crate) const STATION: u32 = tag(0x0008, 0x1010);
pub(crate) const MODEL: u32 = tag(0x0008, 0x1090);
pub(crate) const SERIAL: u32 = tag(0x0018, 0x1000);
pub(crate) const STUDY_DATE: u32 = tag(0x0008, 0x0020);
pub(crate) const STUDY_TIME: u32 = tag(0x0008, 0x0030);
pub(crate) const STUDY_DESCRIPTION: u32 = tag(0x0008, 0x1030);
pub(crate) const PATIENT_AGE: u32 = tag(0x0010, 0x1010);
pub(crate) const PATIENT_SIZE: u32 = tag(0x0010, 0x1020);
pub(crate) const PATIENT_WEIGHT: u32 = tag(0x0010, 0x1030);
const REQUESTED_PROCEDURE: u32 = tag(0x0032, 0x1060);

/// Reads the dose report of an SR whose top level is `nodes`.
pub fn dose_report(nodes: &[Node], big_endian: bool) -> Result<DoseReport, NotADoseReport> {
    let reader = Reader::new(nodes, big_endian);
    let sop_class = reader.string(nodes, renkei_dicom::tags::SOP_CLASS_UID);
    if !may_hold_dose_report(&sop_class) {
        return Err(NotADoseReport::SopClass(sop_class));
    }
    let root = reader.document(nodes);
    let mut notes = Notes::default();
    let (kind, source, totals, events) = if root.is(codes::XRAY_RADIATION_DOSE_REPORT) {
        let source = if sop_class == ENHANCED_RDSR { DoseSource::EnhancedRdsr } else { DoseSource::Rdsr };
        let procedure = root.all(codes::PROCEDURE_REPORTED).find_map(Item::code);
        let is_ct = match procedure {
            Some(code) => code.is(codes::COMPUTED_TOMOGRAPHY),
            None => [codes::CT_ACQUISITION, codes::CT_ACCUMULATED_DOSE_DATA, codes::CT_DOSE_LENGTH_PRODUCT_TOTAL]
                .into_iter()
                .any(|concept| root.find(concept).is_some()),
        };
        if is_ct {
            let (totals, events) = ct(&root, &mut notes);
            (DoseKind::Ct, source, totals, events)
        } else {
            let kind = if procedure.is_some_and(|c| c.is(codes::MAMMOGRAPHY)) {
                DoseKind::Mammography
            } else {
                DoseKind::Projection
            };
            let (totals, events) = projection(&root, &mut notes);
            (kind, source, totals, events)
        }
    } else if root.is(codes::RADIOPHARMACEUTICAL_RADIATION_DOSE_REPORT) {
        let (totals, events) = radiopharmaceutical(&root, &mut notes);
        (DoseKind::NuclearMedicine, DoseSource::Radiopharmaceutical, totals, events)
    } else {
        return Err(NotADoseReport::Root);
    };

    let sop_instance_uid = reader.string(nodes, renkei_dicom::tags::SOP_INSTANCE_UID);
    let study_uid = reader.string(nodes, renkei_dicom::tags::STUDY_INSTANCE_UID);
    if sop_instance_uid.is_empty() {
        return Err(NotADoseReport::Missing("SOP Instance UID"));
    }
    let mut events = events;
    for (n, event) in events.iter_mut().enumerate() {
        if event.uid.is_empty() {
            // Without its UID an event cannot be told apart from a re-sent one; it is kept
            // under its report's UID and position instead.
            event.uid = format!("{sop_instance_uid}#{}", n + 1);
            notes.add("an irradiation event without its UID");
        }
    }
    let started = root
        .all(codes::START_OF_XRAY_IRRADIATION)
        .find_map(Item::text)
        .map(str::to_owned)
        .or_else(|| events.iter().map(|e| e.started.clone()).filter(|s| !s.is_empty()).min())
        .unwrap_or_else(|| format!("{}{}", reader.string(nodes, STUDY_DATE), reader.string(nodes, STUDY_TIME)));
    Ok(DoseReport {
        sop_instance_uid,
        study_uid,
        source,
        kind,
        device: Device {
            observer_uid: root.all(codes::DEVICE_OBSERVER_UID).find_map(Item::text).unwrap_or_default().to_owned(),
            ..device(&reader, nodes)
        },
        started,
        study_description: reader.string(nodes, STUDY_DESCRIPTION),
        requested_procedure: requested_procedure(&reader, nodes),
        patient: patient_size(&reader, nodes),
        totals,
        events,
        notes: notes.0,
    })
}

/// The device named by an object's General Equipment module.
pub(crate) fn device(reader: &Reader, nodes: &[Node]) -> Device {
    Device {
        manufacturer: reader.string(nodes, MANUFACTURER),
        model: reader.string(nodes, MODEL),
        serial: reader.string(nodes, SERIAL),
        station: reader.string(nodes, STATION),
        institution: reader.string(nodes, INSTITUTION),
        observer_uid: String::new(),
    }
}

/// Patient age (from Patient's Age, `nnnY`, `nnnM`, `nnnW` or `nnnD`), weight and height.
pub(crate) fn patient_size(reader: &Reader, nodes: &[Node]) -> PatientSize {
    let age = reader.string(nodes, PATIENT_AGE);
    let age_years = age.get(..age.len().saturating_sub(1)).and_then(|n| n.parse::<f64>().ok()).and_then(|n| {
        Some(match age.chars().last()? {
            'Y' => n,
            'M' => n / 12.0,
            'W' => n * 7.0 / 365.25,
            'D' => n / 365.25,
            _ => return None,
        })
    });
    let positive = |v: Option<f64>| v.filter(|v| *v > 0.0);
    PatientSize {
        age_years,
        weight_kg: positive(reader.number(nodes, PATIENT_WEIGHT)),
        height_m: positive(reader.number(nodes, PATIENT_SIZE)),
    }
}

fn requested_procedure(reader: &Reader, nodes: &[Node]) -> String {
    let direct = reader.string(nodes, REQUESTED_PROCEDURE);
    if !direct.is_empty() {
        return direct;
    }
    crate::sr::items(nodes, tag(0x0040, 0x0275))
        .iter()
        .map(|item| reader.string(item, REQUESTED_PROCEDURE))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// What was odd about a report, each said once.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.0.contains(&note) {
            self.0.push(note);
        }
    }
}

/// The value of the first `concept` at any depth under `within`, in the canonical unit of
/// `quantity`.
fn measure(within: &Item, concept: Concept, quantity: Quantity, what: &str, notes: &mut Notes) -> Option<f64> {
    within.find(concept).and_then(|item| value_of(item, quantity, what, notes))
}

fn value_of(item: &Item, quantity: Quantity, what: &str, notes: &mut Notes) -> Option<f64> {
    let (value, unit) = item.number()?;
    let Some(factor) = quantity.factor(&unit.value) else {
        notes.add(format!("{what} in a unit not understood ({}); left out", unit.value));
        return None;
    };
    let standard = match quantity {
        Quantity::DoseArea => unit.value == "Gy.m2",
        Quantity::Dose => matches!(unit.value.as_str(), "Gy" | "mGy"),
        _ => true,
    };
    if !standard {
        notes.add(format!("{what} sent in {} (the standard says {}); converted", unit.value, quantity.standard()));
    }
    Some(value * factor)
}

fn text(within: &Item, concept: Concept) -> String {
    within.all(concept).find_map(Item::text).unwrap_or_default().to_owned()
}

fn ct(root: &Item, notes: &mut Notes) -> (Totals, Vec<Event>) {
    let mut events = Vec::new();
    for acquisition in root.all(codes::CT_ACQUISITION) {
        let phantom = acquisition.find(codes::CTDIW_PHANTOM_TYPE).and_then(Item::code).and_then(phantom);
        let ssde = measure(acquisition, codes::SIZE_SPECIFIC_DOSE_ESTIMATE, Quantity::Dose, "SSDE", notes)
            .map(|mgy| Ssde { mgy, diameter_cm: None, method: SsdeMethod::Reported });
        let data = CtEvent {
            acquisition_type: acquisition
                .find(codes::CT_ACQUISITION_TYPE)
                .and_then(Item::text)
                .unwrap_or_default()
                .into(),
            ctdivol: measure(acquisition, codes::MEAN_CTDIVOL, Quantity::Dose, "CTDIvol", notes),
            dlp: measure(acquisition, codes::DLP, Quantity::DoseLength, "DLP", notes),
            phantom,
            scanning_length: measure(acquisition, codes::SCANNING_LENGTH, Quantity::Length, "scanning length", notes),
            kvp: measure(acquisition, codes::KVP, Quantity::Voltage, "kVp", notes),
            tube_current: measure(acquisition, codes::XRAY_TUBE_CURRENT, Quantity::Current, "tube current", notes),
            max_tube_current: measure(
                acquisition,
                codes::MAXIMUM_XRAY_TUBE_CURRENT,
                Quantity::Current,
                "tube current",
                notes,
            ),
            exposure_time: measure(acquisition, codes::EXPOSURE_TIME, Quantity::Time, "exposure time", notes),
            pitch: measure(acquisition, codes::PITCH_FACTOR, Quantity::Ratio, "pitch", notes),
            total_collimation: measure(
                acquisition,
                codes::TOTAL_COLLIMATION_WIDTH,
                Quantity::Length,
                "collimation",
                notes,
            ),
            ssde,
            dose_check: dose_check_fired(acquisition, notes),
        };
        events.push(Event {
            uid: text(acquisition, codes::IRRADIATION_EVENT_UID),
            protocol: text(acquisition, codes::ACQUISITION_PROTOCOL),
            target_region: text(acquisition, codes::TARGET_REGION),
            started: String::new(),
            data: EventData::Ct(data),
        });
    }
    let mut dlp = measure(root, codes::CT_DOSE_LENGTH_PRODUCT_TOTAL, Quantity::DoseLength, "DLP total", notes);
    if dlp.is_none() {
        dlp = sum_over(&events, EventData::dlp);
        if dlp.is_some() {
            notes.add("no DLP total; the events' DLPs were added up");
        }
    }
    let count = measure(root, codes::TOTAL_NUMBER_OF_IRRADIATION_EVENTS, Quantity::Ratio, "event count", notes)
        .map(|n| n as u32)
        .or(Some(events.len() as u32));
    (Totals { dlp, events: count, ..Totals::default() }, events)
}

/// The phantom a code names.
pub(crate) fn phantom(code: &Code) -> Option<Phantom> {
    if code.is(codes::IEC_HEAD_PHANTOM) {
        Some(Phantom::Head16)
    } else if code.is(codes::IEC_BODY_PHANTOM) {
        Some(Phantom::Body32)
    } else {
        None
    }
}

/// Whether the CT's Dose Check (TID 10015) was exceeded: a forward estimate reached its
/// configured alert or notification value, or the operator gave a reason for proceeding.
fn dose_check_fired(acquisition: &Item, notes: &mut Notes) -> bool {
    let mut fired = false;
    let checks = [
        (
            codes::DOSE_CHECK_ALERT_DETAILS,
            codes::DLP_ALERT_VALUE,
            codes::ACCUMULATED_DLP_FORWARD_ESTIMATE,
            Quantity::DoseLength,
        ),
        (
            codes::DOSE_CHECK_ALERT_DETAILS,
            codes::CTDIVOL_ALERT_VALUE,
            codes::ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE,
            Quantity::Dose,
        ),
        (
            codes::DOSE_CHECK_NOTIFICATION_DETAILS,
            codes::DLP_NOTIFICATION_VALUE,
            codes::DLP_FORWARD_ESTIMATE,
            Quantity::DoseLength,
        ),
        (
            codes::DOSE_CHECK_NOTIFICATION_DETAILS,
            codes::CTDIVOL_NOTIFICATION_VALUE,
            codes::CTDIVOL_FORWARD_ESTIMATE,
            Quantity::Dose,
        ),
    ];
    for (details, limit, estimate, quantity) in checks {
        for container in acquisition.find_all(details) {
            fired |= container.find(codes::REASON_FOR_PROCEEDING).is_some();
            let limit = measure(container, limit, quantity, "Dose Check value", notes);
            let estimate = measure(container, estimate, quantity, "Dose Check estimate", notes);
            fired |= matches!((limit, estimate), (Some(l), Some(e)) if e >= l);
        }
    }
    fired
}

fn projection(root: &Item, notes: &mut Notes) -> (Totals, Vec<Event>) {
    let mut totals = Totals::default();
    for accumulated in root.all(codes::ACCUMULATED_XRAY_DOSE_DATA) {
        let add = |total: &mut Option<f64>, value: Option<f64>| {
            if let Some(value) = value {
                *total = Some(total.unwrap_or(0.0) + value);
            }
        };
        add(
            &mut totals.dap,
            measure(accumulated, codes::DOSE_AREA_PRODUCT_TOTAL, Quantity::DoseArea, "dose–area product", notes),
        );
        add(&mut totals.dose_rp, measure(accumulated, codes::DOSE_RP_TOTAL, Quantity::Dose, "Dose (RP)", notes));
        add(
            &mut totals.fluoro_time,
            measure(accumulated, codes::TOTAL_FLUORO_TIME, Quantity::Time, "fluoroscopy time", notes),
        );
        for agd in accumulated.find_all(codes::ACCUMULATED_AVERAGE_GLANDULAR_DOSE) {
            add(&mut totals.agd, value_of(agd, Quantity::Dose, "AGD", notes));
        }
    }
    let mut events = Vec::new();
    for event in root.all(codes::IRRADIATION_EVENT_XRAY_DATA) {
        let event_type = event.find(codes::IRRADIATION_EVENT_TYPE).and_then(Item::code);
        let plane = event.find(codes::ACQUISITION_PLANE).and_then(Item::code).and_then(|code| {
            [(codes::PLANE_A, Plane::A), (codes::PLANE_B, Plane::B), (codes::SINGLE_PLANE, Plane::Single)]
                .into_iter()
                .find_map(|(concept, plane)| code.is(concept).then_some(plane))
        });
        let filters = event
            .find_all(codes::XRAY_FILTERS)
            .into_iter()
            .map(|filter| Filter {
                material: filter.find(codes::XRAY_FILTER_MATERIAL).and_then(Item::text).unwrap_or_default().to_owned(),
                thickness_min: measure(filter, codes::XRAY_FILTER_THICKNESS_MINIMUM, Quantity::Length, "filter", notes),
                thickness_max: measure(filter, codes::XRAY_FILTER_THICKNESS_MAXIMUM, Quantity::Length, "filter", notes),
            })
            .collect();
        let data = ProjectionEvent {
            event_type: event_type.map(|c| c.meaning.clone()).unwrap_or_default(),
            fluoroscopy: event_type.is_some_and(|c| c.is(codes::FLUOROSCOPY)),
            plane,
            dap: measure(event, codes::DOSE_AREA_PRODUCT, Quantity::DoseArea, "dose–area product", notes),
            dose_rp: measure(event, codes::DOSE_RP, Quantity::Dose, "Dose (RP)", notes),
            kvp: measure(event, codes::KVP, Quantity::Voltage, "kVp", notes),
            tube_current: measure(event, codes::XRAY_TUBE_CURRENT, Quantity::Current, "tube current", notes),
            exposure_time: measure(event, codes::EXPOSURE_TIME, Quantity::Time, "exposure time", notes),
            pulse_rate: measure(event, codes::PULSE_RATE, Quantity::Rate, "pulse rate", notes),
            pulses: measure(event, codes::NUMBER_OF_PULSES, Quantity::Ratio, "pulses", notes),
            irradiation_duration: measure(
                event,
                codes::IRRADIATION_DURATION,
                Quantity::Time,
                "irradiation duration",
                notes,
            ),
            filters,
            primary_angle: measure(event, codes::POSITIONER_PRIMARY_ANGLE, Quantity::Angle, "angle", notes),
            secondary_angle: measure(event, codes::POSITIONER_SECONDARY_ANGLE, Quantity::Angle, "angle", notes),
            source_detector: measure(event, codes::DISTANCE_SOURCE_TO_DETECTOR, Quantity::Length, "distance", notes),
            agd: measure(event, codes::AVERAGE_GLANDULAR_DOSE, Quantity::Dose, "AGD", notes),
            compression_thickness: measure(event, codes::COMPRESSION_THICKNESS, Quantity::Length, "thickness", notes),
        };
        events.push(Event {
            uid: text(event, codes::IRRADIATION_EVENT_UID),
            protocol: text(event, codes::ACQUISITION_PROTOCOL),
            target_region: event.find(codes::TARGET_REGION).and_then(Item::text).unwrap_or_default().to_owned(),
            started: text(event, codes::DATETIME_STARTED),
            data: EventData::Projection(data),
        });
    }
    // Totals the device left out are the sums of its events.
    totals.dap = totals.dap.or_else(|| sum_over(&events, EventData::dap));
    totals.dose_rp = totals.dose_rp.or_else(|| sum_over(&events, EventData::dose_rp));
    totals.agd = totals.agd.or_else(|| sum_over(&events, EventData::agd));
    totals.events = Some(events.len() as u32);
    (totals, events)
}

fn radiopharmaceutical(root: &Item, notes: &mut Notes) -> (Totals, Vec<Event>) {
    let mut events = Vec::new();
    for administration in root.find_all(codes::RADIOPHARMACEUTICAL_ADMINISTRATION) {
        let code_text = |concept| administration.find(concept).and_then(Item::text).unwrap_or_default().to_owned();
        let data = Administration {
            radiopharmaceutical: code_text(codes::RADIOPHARMACEUTICAL_AGENT),
            radionuclide: code_text(codes::RADIONUCLIDE),
            activity: measure(administration, codes::ADMINISTERED_ACTIVITY, Quantity::Activity, "activity", notes),
            route: code_text(codes::ROUTE_OF_ADMINISTRATION),
        };
        events.push(Event {
            uid: code_text(codes::RADIOPHARMACEUTICAL_ADMINISTRATION_EVENT_UID),
            protocol: data.radiopharmaceutical.clone(),
            target_region: String::new(),
            started: code_text(codes::RADIOPHARMACEUTICAL_START_DATETIME),
            data: EventData::Administration(data),
        });
    }
    let activity = sum_over(&events, EventData::activity);
    (Totals { activity, events: Some(events.len() as u32), ..Totals::default() }, events)
}
