//! Radiation dose records (線量管理): what one dose object says about a study's exposure,
//! in canonical units whatever the device sent.
//!
//! Canonical units: CTDIvol, Dose at the reference point, AGD and SSDE in mGy; DLP in
//! mGy·cm; dose–area product in Gy·cm²; administered activity in MBq; times in seconds;
//! lengths in millimetres; patient weight in kg and height in m.

use serde::{Deserialize, Serialize};

/// Where a dose record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseSource {
    /// X-Ray Radiation Dose SR (or a TID 10011/10001 tree in an Enhanced or Comprehensive SR).
    Rdsr,
    /// Enhanced X-Ray Radiation Dose SR.
    EnhancedRdsr,
    /// Radiopharmaceutical Radiation Dose SR.
    Radiopharmaceutical,
    /// A CT image's own dose attributes, for a study without an RDSR.
    ImageHeader,
}

impl DoseSource {
    pub const ALL: [DoseSource; 4] =
        [DoseSource::Rdsr, DoseSource::EnhancedRdsr, DoseSource::Radiopharmaceutical, DoseSource::ImageHeader];

    pub fn as_str(self) -> &'static str {
        match self {
            DoseSource::Rdsr => "rdsr",
            DoseSource::EnhancedRdsr => "enhanced_rdsr",
            DoseSource::Radiopharmaceutical => "radiopharmaceutical",
            DoseSource::ImageHeader => "image_header",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// What kind of exposure a record is about; DRL categories and charts are per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseKind {
    /// CT (TID 10011), including the CT of PET/CT and SPECT/CT.
    Ct,
    /// Projection X-ray: fluoroscopy and angiography (IVR), radiography (TID 10001).
    Projection,
    /// Mammography (TID 10001 with Procedure reported = Mammography).
    Mammography,
    /// Nuclear medicine and PET: administered radiopharmaceuticals (TID 10021).
    #[serde(rename = "nm")]
    NuclearMedicine,
}

impl DoseKind {
    pub const ALL: [DoseKind; 4] =
        [DoseKind::Ct, DoseKind::Projection, DoseKind::Mammography, DoseKind::NuclearMedicine];

    pub fn as_str(self) -> &'static str {
        match self {
            DoseKind::Ct => "ct",
            DoseKind::Projection => "projection",
            DoseKind::Mammography => "mammography",
            DoseKind::NuclearMedicine => "nm",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// The device that irradiated (or, for NM, reported). Rooms are told apart by all of
/// these together: a station name alone is reused across rooms and sites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub station: String,
    pub institution: String,
    /// Device Observer UID, when the report names one.
    pub observer_uid: String,
}

impl Device {
    /// A short name for charts and tables: station, else model, else manufacturer.
    pub fn label(&self) -> String {
        let parts: Vec<&str> = [self.manufacturer.as_str(), self.model.as_str(), self.station.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() { "unknown device".to_owned() } else { parts.join(" ") }
    }
}

/// What the report says of the patient's size, for SSDE and for DRL comparisons (which
/// count standard-size adults only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientSize {
    pub age_years: Option<f64>,
    pub weight_kg: Option<f64>,
    pub height_m: Option<f64>,
}

/// A study's (or report's) accumulated doses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// CT Dose Length Product Total, mGy·cm.
    pub dlp: Option<f64>,
    /// Dose–area product total (all planes), Gy·cm².
    pub dap: Option<f64>,
    /// Dose at the reference point total (all planes), mGy.
    pub dose_rp: Option<f64>,
    /// Total fluoroscopy time, s.
    pub fluoro_time: Option<f64>,
    /// Accumulated average glandular dose (both breasts), mGy.
    pub agd: Option<f64>,
    /// Administered activity, MBq.
    pub activity: Option<f64>,
    /// Irradiation events (or administrations) the report counts.
    pub events: Option<u32>,
}

/// One irradiation event (or one administration of a radiopharmaceutical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Irradiation Event UID (Administration Event UID for NM).
    pub uid: String,
    /// Acquisition protocol (or the radiopharmaceutical, for NM).
    pub protocol: String,
    /// Target region, as its code meaning.
    pub target_region: String,
    /// When it started (DICOM DT).
    pub started: String,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventData {
    Ct(CtEvent),
    Projection(ProjectionEvent),
    Administration(Administration),
}

/// The phantom a CTDIvol refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phantom {
    /// IEC 16 cm head dosimetry phantom.
    Head16,
    /// IEC 32 cm body dosimetry phantom.
    Body32,
}

impl Phantom {
    pub fn as_str(self) -> &'static str {
        match self {
            Phantom::Head16 => "head16",
            Phantom::Body32 => "body32",
        }
    }
}

/// A CT acquisition (TID 10013).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CtEvent {
    /// Spiral, sequenced, constant angle, stationary, free (its code meaning).
    pub acquisition_type: String,
    /// Mean CTDIvol, mGy.
    pub ctdivol: Option<f64>,
    /// DLP, mGy·cm.
    pub dlp: Option<f64>,
    pub phantom: Option<Phantom>,
    pub scanning_length: Option<f64>,
    pub kvp: Option<f64>,
    /// X-ray tube current, mA (the first source's).
    pub tube_current: Option<f64>,
    pub max_tube_current: Option<f64>,
    pub exposure_time: Option<f64>,
    pub pitch: Option<f64>,
    pub total_collimation: Option<f64>,
    /// Size-specific dose estimate, from the report or computed here.
    pub ssde: Option<Ssde>,
    /// The CT's Dose Check (NEMA XR-25) raised an alert or a notification.
    pub dose_check: bool,
}

/// A size-specific dose estimate (AAPM TG-204/220).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ssde {
    pub mgy: f64,
    /// Water-equivalent or effective diameter it used, cm (when known).
    pub diameter_cm: Option<f64>,
    pub method: SsdeMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsdeMethod {
    /// Reported by the device in the RDSR.
    Reported,
    /// From the water-equivalent diameter (TG-220).
    WaterEquivalentDiameter,
}

/// The plane of a biplane system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    A,
    B,
    Single,
}

/// A projection X-ray event (TID 10003): fluoroscopy, an acquisition, a radiograph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectionEvent {
    /// Fluoroscopy, stationary, stepping or rotational acquisition (its code meaning).
    pub event_type: String,
    pub fluoroscopy: bool,
    pub plane: Option<Plane>,
    /// Dose–area product, Gy·cm².
    pub dap: Option<f64>,
    /// Dose at the reference point, mGy.
    pub dose_rp: Option<f64>,
    pub kvp: Option<f64>,
    pub tube_current: Option<f64>,
    pub exposure_time: Option<f64>,
    pub pulse_rate: Option<f64>,
    pub pulses: Option<f64>,
    pub irradiation_duration: Option<f64>,
    pub filters: Vec<Filter>,
    /// Positioner primary and secondary angles, degrees.
    pub primary_angle: Option<f64>,
    pub secondary_angle: Option<f64>,
    /// Source–image receptor distance, mm.
    pub source_detector: Option<f64>,
    /// Average glandular dose, mGy (mammography).
    pub agd: Option<f64>,
    /// Compression thickness, mm (mammography).
    pub compression_thickness: Option<f64>,
}

/// An X-ray filter in the beam.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// The material, as its code meaning (copper, aluminium…).
    pub material: String,
    pub thickness_min: Option<f64>,
    pub thickness_max: Option<f64>,
}

/// An administered radiopharmaceutical (TID 10022).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Administration {
    pub radiopharmaceutical: String,
    pub radionuclide: String,
    /// Administered activity, MBq.
    pub activity: Option<f64>,
    pub route: String,
}

/// Everything one dose object says, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseReport {
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub source: DoseSource,
    pub kind: DoseKind,
    pub device: Device,
    /// When the irradiation started, else the study date and time (DICOM DT, may be empty).
    pub started: String,
    pub study_description: String,
    pub requested_procedure: String,
    pub patient: PatientSize,
    pub totals: Totals,
    pub events: Vec<Event>,
    /// What was odd about the object but read anyway (units fixed up, values missing),
    /// for the administrator; never patient data.
    pub notes: Vec<String>,
}

impl EventData {
    pub fn ctdivol(&self) -> Option<f64> {
        if let EventData::Ct(ct) = self { ct.ctdivol } else { None }
    }

    pub fn dlp(&self) -> Option<f64> {
        if let EventData::Ct(ct) = self { ct.dlp } else { None }
    }

    pub fn dap(&self) -> Option<f64> {
        if let EventData::Projection(p) = self { p.dap } else { None }
    }

    pub fn dose_rp(&self) -> Option<f64> {
        if let EventData::Projection(p) = self { p.dose_rp } else { None }
    }

    pub fn agd(&self) -> Option<f64> {
        if let EventData::Projection(p) = self { p.agd } else { None }
    }

    pub fn activity(&self) -> Option<f64> {
        if let EventData::Administration(a) = self { a.activity } else { None }
    }
}

/// The sum of `value` over the events that have it (`None` when none has).
pub fn sum_over(events: &[Event], value: fn(&EventData) -> Option<f64>) -> Option<f64> {
    events.iter().filter_map(|e| value(&e.data)).fold(None, |total, v| Some(total.unwrap_or(0.0) + v))
}

impl DoseReport {
    /// The largest CTDIvol of its CT events (what a CT DRL compares), mGy.
    pub fn max_ctdivol(&self) -> Option<f64> {
        self.events.iter().filter_map(|e| e.data.ctdivol()).reduce(f64::max)
    }

    /// The average glandular dose of its largest exposure (what the mammography DRL
    /// compares), else its total, mGy.
    pub fn largest_agd(&self) -> Option<f64> {
        self.events.iter().filter_map(|e| e.data.agd()).reduce(f64::max).or(self.totals.agd)
    }

    /// The protocols of its events, each once, in order.
    pub fn protocols(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for event in &self.events {
            if !event.protocol.is_empty() && !seen.contains(&event.protocol.as_str()) {
                seen.push(&event.protocol);
            }
        }
        seen
    }
}

/// A stored object the dose extractor has yet to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDose {
    pub instance_pk: i64,
    pub facility: crate::FacilityId,
    pub study_pk: i64,
    pub instance: crate::model::StoredInstance,
}

/// One CT image's dose attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDose {
    pub series_uid: String,
    /// The RDSR event that made it (0008,3010), when the image says.
    #[serde(default)]
    pub irradiation_event_uid: String,
    /// Protocol Name, else Series Description.
    pub protocol: String,
    pub ctdivol: f64,
    /// The phantom the CTDIvol refers to, when the image says.
    pub phantom: Option<Phantom>,
    pub kvp: Option<f64>,
    pub tube_current: Option<f64>,
    /// Seconds.
    pub exposure_time: Option<f64>,
    pub pitch: Option<f64>,
    pub total_collimation: Option<f64>,
    pub acquisition_type: String,
    /// Position along the patient axis, mm.
    pub z: Option<f64>,
    pub slice_thickness: Option<f64>,
    /// Water-equivalent diameter, mm.
    pub water_equivalent_diameter: Option<f64>,
}

/// A CT image's dose attributes, read once from the stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadImage {
    pub instance_pk: i64,
    pub study_pk: i64,
    pub dose: ImageDose,
}

/// A report read from one stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadReport {
    pub instance_pk: i64,
    pub study_pk: i64,
    pub report: DoseReport,
}

/// A study's exam of one kind, as the extractor writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExam {
    pub facility: crate::FacilityId,
    pub study_pk: i64,
    /// The study's reports of this kind merged (or its images' dose).
    pub report: DoseReport,
    /// When it started, Unix seconds.
    pub started_at: Option<i64>,
    /// What the facility's protocol mapping keys on: the study description, else the
    /// requested procedure, else the first protocol.
    pub description: String,
}

/// What one round of the extractor writes, together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoseWrite {
    pub reports: Vec<ReadReport>,
    pub images: Vec<ReadImage>,
    /// Each replaces its study's exam of the same kind.
    pub exams: Vec<NewExam>,
    /// Pending objects now read (whatever they held).
    pub done: Vec<i64>,
}

impl DoseWrite {
    /// Adds `other`'s writes to these.
    pub fn append(&mut self, other: DoseWrite) {
        let DoseWrite { reports, images, exams, done } = other;
        self.reports.extend(reports);
        self.images.extend(images);
        self.exams.extend(exams);
        self.done.extend(done);
    }
}

/// An exam as lists, charts and exports see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exam {
    pub id: i64,
    pub facility: String,
    pub study_uid: String,
    /// The facility's patient: its index record.
    pub patient: i64,
    pub patient_id: String,
    pub kind: DoseKind,
    pub source: DoseSource,
    pub device_id: i64,
    pub device: Device,
    pub started_at: Option<i64>,
    pub description: String,
    /// The DRL category its description is mapped to.
    pub category: Option<String>,
    pub age_years: Option<f64>,
    pub weight_kg: Option<f64>,
    pub ctdivol: Option<f64>,
    pub dlp: Option<f64>,
    pub dap: Option<f64>,
    pub dose_rp: Option<f64>,
    pub fluoro_time: Option<f64>,
    pub agd: Option<f64>,
    pub activity: Option<f64>,
    pub events: u32,
}

/// Which exams to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExamFilter {
    /// One facility's, or every facility's.
    pub facility: Option<crate::FacilityId>,
    /// These patient records' only (a person's records), when not empty.
    pub patients: Vec<i64>,
    pub kind: Option<DoseKind>,
    pub category: Option<String>,
    pub device: Option<i64>,
    /// Started at or after, Unix seconds.
    pub since: Option<i64>,
    /// Started before, Unix seconds.
    pub until: Option<i64>,
    pub limit: u32,
}

/// A facility's confirmed mapping of one exam description to a DRL category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolMapping {
    pub facility: String,
    pub kind: DoseKind,
    pub description: String,
    /// `None`: confirmed as matching no category.
    pub category: Option<String>,
    pub confirmed_by: String,
    pub confirmed_at: i64,
}

/// An exam description no mapping covers yet, and how many exams have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmappedDescription {
    pub facility: String,
    pub kind: DoseKind,
    pub description: String,
    pub exams: u64,
}

/// What a level is set on, in its canonical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The largest CTDIvol of the exam's acquisitions, mGy.
    Ctdivol,
    /// The exam's DLP total, mGy·cm.
    Dlp,
    /// Air kerma at the reference point (Ka,r), total, mGy.
    DoseRp,
    /// Dose–area product (PKA), total, Gy·cm².
    Dap,
    /// Average glandular dose of the exam's largest exposure, mGy.
    Agd,
    /// Administered activity, total, MBq.
    Activity,
}

impl Metric {
    pub const ALL: [Metric; 6] =
        [Metric::Ctdivol, Metric::Dlp, Metric::DoseRp, Metric::Dap, Metric::Agd, Metric::Activity];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Ctdivol => "ctdivol",
            Metric::Dlp => "dlp",
            Metric::DoseRp => "dose_rp",
            Metric::Dap => "dap",
            Metric::Agd => "agd",
            Metric::Activity => "activity",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// The canonical unit, as the DRL tables write it.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Ctdivol | Metric::DoseRp | Metric::Agd => "mGy",
            Metric::Dlp => "mGy.cm",
            Metric::Dap => "Gy.cm2",
            Metric::Activity => "MBq",
        }
    }

    /// This metric of one exam's report.
    pub fn of(self, report: &DoseReport) -> Option<f64> {
        match self {
            Metric::Ctdivol => report.max_ctdivol(),
            Metric::Dlp => report.totals.dlp,
            Metric::DoseRp => report.totals.dose_rp,
            Metric::Dap => report.totals.dap,
            Metric::Agd => report.largest_agd(),
            Metric::Activity => report.totals.activity,
        }
    }

    /// This metric of a stored exam.
    pub fn of_exam(self, exam: &Exam) -> Option<f64> {
        match self {
            Metric::Ctdivol => exam.ctdivol,
            Metric::Dlp => exam.dlp,
            Metric::DoseRp => exam.dose_rp,
            Metric::Dap => exam.dap,
            Metric::Agd => exam.agd,
            Metric::Activity => exam.activity,
        }
    }
}

/// How exams are grouped into distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Facility,
    /// Facility and device.
    Device,
    /// Facility and month (in Japan).
    Month,
    /// Facility, device and month: each device's trend.
    DeviceMonth,
}

/// How many exams started in one hour of one weekday (in Japan): a cell of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkloadCell {
    /// 0 Sunday … 6 Saturday.
    pub weekday: u8,
    /// 0…23.
    pub hour: u8,
    pub exams: u64,
}

/// The distribution of one metric over a group of exams: quartiles and median interpolated
/// between the nearest ranks (as PostgreSQL's `percentile_cont`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    pub facility: String,
    pub device_id: Option<i64>,
    /// `YYYY-MM`.
    pub month: Option<String>,
    pub exams: u64,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

/// A device as charts name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownDevice {
    pub id: i64,
    pub facility: String,
    pub device: Device,
}

/// A facility's alert threshold on one metric, in its canonical unit: for one exam
/// (`weeks` 0), or for a patient's exams summed over a rolling `weeks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub facility: String,
    pub metric: Metric,
    pub weeks: u32,
    pub threshold: f64,
    pub set_by: String,
    pub set_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_json_are_the_names_in_queries_and_tables() {
        for kind in DoseKind::ALL {
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(kind.as_str())));
        }
        for source in DoseSource::ALL {
            assert_eq!(serde_json::to_value(source).ok(), Some(serde_json::json!(source.as_str())));
        }
        for metric in Metric::ALL {
            assert_eq!(serde_json::to_value(metric).ok(), Some(serde_json::json!(metric.as_str())));
        }
    }
}
