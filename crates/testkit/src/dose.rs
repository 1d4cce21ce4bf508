//! Synthetic dose objects, written the way real devices write them: X-Ray Radiation Dose
//! SRs for CT (TID 10011) and for fluoroscopy, angiography and mammography (TID 10001), an
//! Enhanced RDSR, a Radiopharmaceutical RDSR (TID 10021), and CT images that carry only
//! their CTDIvol. Every value is given by the test, so it can check what extraction reads.
//!
//! The quirks of real files are options: legacy SNOMED RT codes, Canon's dGy·cm² and mGy,
//! a report without its DLP total, events without UIDs, Siemens' continued reports (the
//! same events sent again with new ones).

use renkei_dicom::Syntax;
use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::tags::tag;
use renkei_dicom::write::DatasetWriter;

use crate::generate::{CT_IMAGE, Patient};

pub const RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.67";
pub const RADIOPHARMACEUTICAL_RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.68";
pub const ENHANCED_RDSR: &str = "1.2.840.10008.5.1.4.1.1.88.76";

/// A code: (value, scheme, meaning).
pub type Code = (&'static str, &'static str, &'static str);

/// Which generation of codes a device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codes {
    /// SNOMED CT, as DICOM has since 2019.
    Current,
    /// SNOMED RT, as older devices still do.
    Legacy,
}

impl Codes {
    fn pick(self, current: Code, legacy: Code) -> Code {
        if self == Codes::Current { current } else { legacy }
    }
}

/// The study, patient and device of a dose object.
#[derive(Debug, Clone)]
pub struct Header {
    pub patient: Patient,
    /// Patient's Age (AS), e.g. `045Y`.
    pub age: String,
    pub weight_kg: Option<f64>,
    pub height_m: Option<f64>,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub study_description: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub station: String,
    pub institution: String,
    pub syntax: Syntax,
}

impl Header {
    /// The `n`th synthetic study: a Japanese patient (romaji, kanji and kana), a CT room of
    /// East Hospital, in `syntax`.
    pub fn synthetic(n: u64, syntax: Syntax) -> Header {
        use crate::generate::uid;
        const NAMES: [&str; 4] = [
            "Yamada^Taro=山田^太郎=ヤマダ^タロウ",
            "Saito^Hanako=齋藤^花子=サイトウ^ハナコ",
            "Takahashi^Ichiro=髙橋^一郎=タカハシ^イチロウ",
            "Watanabe^Yuki=渡邊^由紀=ワタナベ^ユキ",
        ];
        Header {
            patient: Patient {
                id: format!("DOSE{n:05}"),
                name: NAMES[(n % 4) as usize].into(),
                birth_date: format!("19{:02}0{}1{}", 40 + n % 50, 1 + n % 9, n % 10),
                sex: if n.is_multiple_of(2) { "M" } else { "F" }.into(),
                character_set: None,
            },
            age: format!("{:03}Y", 30 + n % 50),
            weight_kg: Some(50.0 + (n % 30) as f64),
            height_m: Some(1.55 + (n % 30) as f64 / 100.0),
            study_uid: uid(0xD05E, n * 4),
            series_uid: uid(0xD05E, n * 4 + 1),
            sop_instance_uid: uid(0xD05E, n * 4 + 2),
            study_date: format!("2026{:02}{:02}", 1 + n % 12, 1 + n % 28),
            study_time: "093000".into(),
            study_description: "頭部単純CT".into(),
            manufacturer: "Renkei Medical".into(),
            model: "Synthetica 64".into(),
            serial: format!("SN-{:03}", n % 7),
            station: format!("CT{}", n % 3 + 1),
            institution: "East Hospital".into(),
            syntax,
        }
    }
}

/// A CT acquisition of a CT report.
#[derive(Debug, Clone)]
pub struct CtAcquisition {
    pub protocol: String,
    /// Target region (an SCT code).
    pub target: Code,
    pub event_uid: Option<String>,
    pub ctdivol: f64,
    pub dlp: f64,
    pub head_phantom: bool,
    pub kvp: f64,
    pub tube_current: f64,
    pub exposure_time: f64,
    pub pitch: f64,
    pub scanning_length_mm: f64,
    /// A reported SSDE, mGy.
    pub ssde: Option<f64>,
    /// A Dose Check alert: (DLP alert value, accumulated DLP forward estimate).
    pub dose_check: Option<(f64, f64)>,
}

/// A CT dose report.
#[derive(Debug, Clone)]
pub struct CtReport {
    pub header: Header,
    pub codes: Codes,
    pub acquisitions: Vec<CtAcquisition>,
    /// Leave the DLP total out, as some devices do.
    pub without_total: bool,
    /// Send it as an Enhanced X-Ray Radiation Dose SR.
    pub enhanced: bool,
}

/// One projection X-ray event.
#[derive(Debug, Clone)]
pub struct ProjectionEvent {
    pub fluoroscopy: bool,
    pub protocol: String,
    pub event_uid: Option<String>,
    pub plane_b: bool,
    /// Gy·cm² (written in the report's units).
    pub dap: f64,
    /// mGy (written in the report's units).
    pub dose_rp: f64,
    pub kvp: f64,
    pub tube_current: f64,
    pub pulse_rate: f64,
    pub pulses: f64,
    pub duration_s: f64,
    pub primary_angle: f64,
    pub secondary_angle: f64,
    /// (material, thickness mm).
    pub filter: Option<(Code, f64)>,
    /// Average glandular dose, mGy (mammography).
    pub agd: Option<f64>,
}

/// A projection X-ray (fluoroscopy, angiography, mammography) dose report.
#[derive(Debug, Clone)]
pub struct ProjectionReport {
    pub header: Header,
    pub codes: Codes,
    pub mammography: bool,
    pub events: Vec<ProjectionEvent>,
    /// Canon's units: DAP in dGy·cm², Dose (RP) in mGy.
    pub canon_units: bool,
    /// The accumulated fluoroscopy time, s.
    pub fluoro_time: f64,
}

/// One radiopharmaceutical administration.
#[derive(Debug, Clone)]
pub struct Administration {
    pub agent: Code,
    pub nuclide: Code,
    pub activity_mbq: f64,
    pub event_uid: String,
    pub started: String,
}

/// A radiopharmaceutical dose report.
#[derive(Debug, Clone)]
pub struct RadiopharmaceuticalReport {
    pub header: Header,
    pub codes: Codes,
    pub administrations: Vec<Administration>,
}

/// Writes SR content items.
struct Sr<'a>(&'a mut DatasetWriter, SpecificCharacterSet);

impl Sr<'_> {
    fn code_sequence(&mut self, t: u32, (value, scheme, meaning): Code) {
        let meaning = self.1.encode(meaning, TextKind::MultiValued).expect("test text fits its character set");
        self.0
            .begin_sequence(t)
            .begin_item()
            .text(tag(0x0008, 0x0100), *b"SH", value)
            .text(tag(0x0008, 0x0102), *b"SH", scheme)
            .element(tag(0x0008, 0x0104), *b"LO", &meaning)
            .end_item()
            .end_sequence();
    }

    fn head(&mut self, relationship: &str, value_type: &str, concept: Code) {
        self.0.begin_item().text(tag(0x0040, 0xA010), *b"CS", relationship).text(
            tag(0x0040, 0xA040),
            *b"CS",
            value_type,
        );
        self.code_sequence(tag(0x0040, 0xA043), concept);
    }

    fn container(&mut self, concept: Code, content: impl FnOnce(&mut Self)) {
        self.head("CONTAINS", "CONTAINER", concept);
        self.0.text(tag(0x0040, 0xA050), *b"CS", "SEPARATE").begin_sequence(tag(0x0040, 0xA730));
        content(self);
        self.0.end_sequence().end_item();
    }

    fn num(&mut self, concept: Code, value: f64, unit: &'static str) {
        self.head("CONTAINS", "NUM", concept);
        self.0.begin_sequence(tag(0x0040, 0xA300)).begin_item();
        self.code_sequence(tag(0x0040, 0x08EA), (unit, "UCUM", unit));
        self.0.text(tag(0x0040, 0xA30A), *b"DS", &decimal(value)).end_item().end_sequence().end_item();
    }

    fn code(&mut self, concept: Code, value: Code) {
        self.head("CONTAINS", "CODE", concept);
        self.code_sequence(tag(0x0040, 0xA168), value);
        self.0.end_item();
    }

    fn text(&mut self, concept: Code, value: &str) {
        self.head("CONTAINS", "TEXT", concept);
        let value = self.1.encode(value, TextKind::Text).expect("test text fits its character set");
        self.0.element(tag(0x0040, 0xA160), *b"UT", &value).end_item();
    }

    fn uid(&mut self, concept: Code, value: &str) {
        self.head("CONTAINS", "UIDREF", concept);
        self.0.text(tag(0x0040, 0xA124), *b"UI", value).end_item();
    }

    fn date_time(&mut self, concept: Code, value: &str) {
        self.head("CONTAINS", "DATETIME", concept);
        self.0.text(tag(0x0040, 0xA120), *b"DT", value).end_item();
    }
}

/// A DS value: at most 16 characters.
fn decimal(value: f64) -> String {
    let text = format!("{}", (value * 1e6).round() / 1e6);
    if text.len() <= 16 { text } else { format!("{value:.6e}") }
}

const DCM: &str = "DCM";

fn dcm(value: &'static str, meaning: &'static str) -> Code {
    (value, DCM, meaning)
}

/// The header and the root of a dose SR, then `content`.
fn sr_document(header: &Header, sop_class: &str, root: Code, content: impl FnOnce(&mut Sr)) -> Vec<u8> {
    let mut w = DatasetWriter::new(header.syntax);
    let declared = match &header.patient.character_set {
        Some(declared) => Some(declared.as_str()),
        None if !header.patient.name.is_ascii() || !header.study_description.is_ascii() => Some("ISO_IR 192"),
        None => None,
    };
    if let Some(declared) = declared {
        w.text(tag(0x0008, 0x0005), *b"CS", declared);
    }
    let charset = declared.map(SpecificCharacterSet::parse).unwrap_or_default();
    let encode = |text: &str, kind| charset.encode(text, kind).expect("test text fits its character set");
    w.text(tag(0x0008, 0x0016), *b"UI", sop_class)
        .text(tag(0x0008, 0x0018), *b"UI", &header.sop_instance_uid)
        .text(tag(0x0008, 0x0020), *b"DA", &header.study_date)
        .text(tag(0x0008, 0x0030), *b"TM", &header.study_time)
        .text(tag(0x0008, 0x0050), *b"SH", "")
        .text(tag(0x0008, 0x0060), *b"CS", "SR")
        .text(tag(0x0008, 0x0070), *b"LO", &header.manufacturer)
        .element(tag(0x0008, 0x0080), *b"LO", &encode(&header.institution, TextKind::MultiValued))
        .text(tag(0x0008, 0x1010), *b"SH", &header.station)
        .element(tag(0x0008, 0x1030), *b"LO", &encode(&header.study_description, TextKind::MultiValued))
        .text(tag(0x0008, 0x103E), *b"LO", "Dose Report")
        .text(tag(0x0008, 0x1090), *b"LO", &header.model)
        .element(tag(0x0010, 0x0010), *b"PN", &encode(&header.patient.name, TextKind::PersonName))
        .text(tag(0x0010, 0x0020), *b"LO", &header.patient.id)
        .text(tag(0x0010, 0x0030), *b"DA", &header.patient.birth_date)
        .text(tag(0x0010, 0x0040), *b"CS", &header.patient.sex)
        .text(tag(0x0010, 0x1010), *b"AS", &header.age);
    if let Some(height) = header.height_m {
        w.text(tag(0x0010, 0x1020), *b"DS", &decimal(height));
    }
    if let Some(weight) = header.weight_kg {
        w.text(tag(0x0010, 0x1030), *b"DS", &decimal(weight));
    }
    w.text(tag(0x0018, 0x1000), *b"LO", &header.serial)
        .text(tag(0x0020, 0x000D), *b"UI", &header.study_uid)
        .text(tag(0x0020, 0x000E), *b"UI", &header.series_uid)
        .text(tag(0x0020, 0x0010), *b"SH", "1")
        .text(tag(0x0020, 0x0011), *b"IS", "999")
        .text(tag(0x0020, 0x0013), *b"IS", "1")
        .text(tag(0x0040, 0xA040), *b"CS", "CONTAINER");
    let mut sr = Sr(&mut w, charset);
    sr.code_sequence(tag(0x0040, 0xA043), root);
    sr.0.text(tag(0x0040, 0xA050), *b"CS", "SEPARATE")
        .text(tag(0x0040, 0xA491), *b"CS", "COMPLETE")
        .text(tag(0x0040, 0xA493), *b"CS", "UNVERIFIED")
        .begin_sequence(tag(0x0040, 0xA730));
    content(&mut sr);
    sr.0.end_sequence();
    w.into_bytes()
}

/// A CT dose report (TID 10011).
pub fn ct_rdsr(report: &CtReport) -> Vec<u8> {
    let codes = report.codes;
    let class = if report.enhanced { ENHANCED_RDSR } else { RDSR };
    let ct =
        codes.pick(("77477000", "SCT", "Computed Tomography X-Ray"), ("P5-08000", "SRT", "Computed Tomography X-Ray"));
    let spiral = codes.pick(("116152004", "SCT", "Spiral Acquisition"), ("P5-08001", "SRT", "Spiral Acquisition"));
    sr_document(&report.header, class, dcm("113701", "X-Ray Radiation Dose Report"), |sr| {
        sr.code(dcm("121058", "Procedure reported"), ct);
        sr.uid(dcm("121012", "Device Observer UID"), &format!("{}.1", report.header.series_uid));
        sr.date_time(
            dcm("113809", "Start of X-Ray Irradiation"),
            &format!("{}{}", report.header.study_date, report.header.study_time),
        );
        sr.container(dcm("113811", "CT Accumulated Dose Data"), |sr| {
            sr.num(dcm("113812", "Total Number of Irradiation Events"), report.acquisitions.len() as f64, "{events}");
            if !report.without_total {
                let total: f64 = report.acquisitions.iter().map(|a| a.dlp).sum();
                sr.num(dcm("113813", "CT Dose Length Product Total"), total, "mGy.cm");
            }
        });
        for a in &report.acquisitions {
            sr.container(dcm("113819", "CT Acquisition"), |sr| {
                sr.text(dcm("125203", "Acquisition Protocol"), &a.protocol);
                sr.code(dcm("123014", "Target Region"), a.target);
                sr.code(dcm("113820", "CT Acquisition Type"), spiral);
                if let Some(uid) = &a.event_uid {
                    sr.uid(dcm("113769", "Irradiation Event UID"), uid);
                }
                sr.container(dcm("113822", "CT Acquisition Parameters"), |sr| {
                    sr.num(dcm("113824", "Exposure Time"), a.exposure_time, "s");
                    sr.num(dcm("113825", "Scanning Length"), a.scanning_length_mm, "mm");
                    sr.num(dcm("113827", "Nominal Total Collimation Width"), 40.0, "mm");
                    sr.num(dcm("113828", "Pitch Factor"), a.pitch, "{ratio}");
                    sr.num(dcm("113823", "Number of X-Ray Sources"), 1.0, "{X-Ray sources}");
                    sr.container(dcm("113831", "CT X-Ray Source Parameters"), |sr| {
                        sr.text(dcm("113832", "Identification of the X-Ray Source"), "A");
                        sr.num(dcm("113733", "KVP"), a.kvp, "kV");
                        sr.num(dcm("113833", "Maximum X-Ray Tube Current"), a.tube_current * 1.5, "mA");
                        sr.num(dcm("113734", "X-Ray Tube Current"), a.tube_current, "mA");
                    });
                });
                sr.container(dcm("113829", "CT Dose"), |sr| {
                    sr.num(dcm("113830", "Mean CTDIvol"), a.ctdivol, "mGy");
                    let phantom = if a.head_phantom {
                        dcm("113690", "IEC Head Dosimetry Phantom")
                    } else {
                        dcm("113691", "IEC Body Dosimetry Phantom")
                    };
                    sr.code(dcm("113835", "CTDIw Phantom Type"), phantom);
                    sr.num(dcm("113838", "DLP"), a.dlp, "mGy.cm");
                    if let Some(ssde) = a.ssde {
                        sr.num(dcm("113930", "Size Specific Dose Estimation"), ssde, "mGy");
                    }
                    if let Some((value, estimate)) = a.dose_check {
                        sr.container(dcm("113900", "Dose Check Alert Details"), |sr| {
                            sr.code(dcm("113901", "DLP Alert Value Configured"), ("373066001", "SCT", "Yes"));
                            sr.num(dcm("113903", "DLP Alert Value"), value, "mGy.cm");
                            sr.num(dcm("113905", "Accumulated DLP Forward Estimate"), estimate, "mGy.cm");
                        });
                    }
                });
            });
        }
    })
}

/// A projection X-ray dose report (TID 10001): fluoroscopy and angiography, or mammography.
pub fn projection_rdsr(report: &ProjectionReport) -> Vec<u8> {
    let codes = report.codes;
    let procedure = if report.mammography {
        codes.pick(("71651007", "SCT", "Mammography"), ("P5-40010", "SRT", "Mammography"))
    } else {
        dcm("113704", "Projection X-Ray")
    };
    let fluoroscopy = codes.pick(("44491008", "SCT", "Fluoroscopy"), ("P5-06000", "SRT", "Fluoroscopy"));
    // Canon writes DAP in dGy·cm² and Dose (RP) in mGy; the standard says Gy·m² and Gy.
    let (dap_unit, dap_factor, rp_unit, rp_factor) =
        if report.canon_units { ("dGy.cm2", 10.0, "mGy", 1.0) } else { ("Gy.m2", 1e-4, "Gy", 1e-3) };
    sr_document(&report.header, RDSR, dcm("113701", "X-Ray Radiation Dose Report"), |sr| {
        sr.code(dcm("121058", "Procedure reported"), procedure);
        for plane_b in [false, true] {
            let events: Vec<&ProjectionEvent> = report.events.iter().filter(|e| e.plane_b == plane_b).collect();
            if events.is_empty() {
                continue;
            }
            sr.container(dcm("113702", "Accumulated X-Ray Dose Data"), |sr| {
                let plane = if plane_b { dcm("113621", "Plane B") } else { dcm("113620", "Plane A") };
                sr.code(dcm("113764", "Acquisition Plane"), plane);
                if report.mammography {
                    let agd: f64 = events.iter().filter_map(|e| e.agd).sum();
                    sr.num(dcm("111637", "Accumulated Average Glandular Dose"), agd, "mGy");
                } else {
                    let dap: f64 = events.iter().map(|e| e.dap).sum();
                    let rp: f64 = events.iter().map(|e| e.dose_rp).sum();
                    sr.num(dcm("113722", "Dose Area Product Total"), dap * dap_factor, dap_unit);
                    sr.num(dcm("113725", "Dose (RP) Total"), rp * rp_factor, rp_unit);
                    sr.num(dcm("113730", "Total Fluoro Time"), if plane_b { 0.0 } else { report.fluoro_time }, "s");
                }
            });
        }
        for e in &report.events {
            sr.container(dcm("113706", "Irradiation Event X-Ray Data"), |sr| {
                let plane = if e.plane_b { dcm("113621", "Plane B") } else { dcm("113620", "Plane A") };
                sr.code(dcm("113764", "Acquisition Plane"), plane);
                sr.date_time(
                    dcm("111526", "DateTime Started"),
                    &format!("{}{}", report.header.study_date, report.header.study_time),
                );
                let kind = if e.fluoroscopy { fluoroscopy } else { dcm("113611", "Stationary Acquisition") };
                sr.code(dcm("113721", "Irradiation Event Type"), kind);
                sr.text(dcm("125203", "Acquisition Protocol"), &e.protocol);
                if let Some(uid) = &e.event_uid {
                    sr.uid(dcm("113769", "Irradiation Event UID"), uid);
                }
                if report.mammography {
                    if let Some(agd) = e.agd {
                        sr.num(dcm("111631", "Average Glandular Dose"), agd, "mGy");
                    }
                    sr.num(dcm("111633", "Compression Thickness"), 45.0, "mm");
                } else {
                    sr.num(dcm("122130", "Dose Area Product"), e.dap * dap_factor, dap_unit);
                    sr.num(dcm("113738", "Dose (RP)"), e.dose_rp * rp_factor, rp_unit);
                }
                sr.num(dcm("112011", "Positioner Primary Angle"), e.primary_angle, "deg");
                sr.num(dcm("112012", "Positioner Secondary Angle"), e.secondary_angle, "deg");
                if let Some((material, thickness)) = e.filter {
                    sr.container(dcm("113771", "X-Ray Filters"), |sr| {
                        sr.code(dcm("113772", "X-Ray Filter Type"), dcm("113650", "Strip filter"));
                        sr.code(dcm("113757", "X-Ray Filter Material"), material);
                        sr.num(dcm("113758", "X-Ray Filter Thickness Minimum"), thickness, "mm");
                        sr.num(dcm("113773", "X-Ray Filter Thickness Maximum"), thickness, "mm");
                    });
                }
                if e.fluoroscopy {
                    sr.num(dcm("113791", "Pulse Rate"), e.pulse_rate, "{pulse}/s");
                }
                sr.num(dcm("113768", "Number of Pulses"), e.pulses, "{pulses}");
                sr.num(dcm("113742", "Irradiation Duration"), e.duration_s, "s");
                sr.num(dcm("113733", "KVP"), e.kvp, "kV");
                sr.num(dcm("113734", "X-Ray Tube Current"), e.tube_current, "mA");
            });
        }
    })
}

/// A radiopharmaceutical dose report (TID 10021).
pub fn radiopharmaceutical_rdsr(report: &RadiopharmaceuticalReport) -> Vec<u8> {
    let codes = report.codes;
    let agent_concept =
        codes.pick(("349358000", "SCT", "Radiopharmaceutical agent"), ("F-61FDB", "SRT", "Radiopharmaceutical agent"));
    let nuclide_concept = codes.pick(("89457008", "SCT", "Radionuclide"), ("C-10072", "SRT", "Radionuclide"));
    let route_concept =
        codes.pick(("410675002", "SCT", "Route of administration"), ("G-C340", "SRT", "Route of administration"));
    let intravenous = codes.pick(("47625008", "SCT", "Intravenous route"), ("G-D101", "SRT", "Intravenous route"));
    sr_document(
        &report.header,
        RADIOPHARMACEUTICAL_RDSR,
        dcm("113500", "Radiopharmaceutical Radiation Dose Report"),
        |sr| {
            for a in &report.administrations {
                sr.container(dcm("113502", "Radiopharmaceutical Administration"), |sr| {
                    sr.code(agent_concept, a.agent);
                    sr.code(nuclide_concept, a.nuclide);
                    sr.uid(dcm("113503", "Radiopharmaceutical Administration Event UID"), &a.event_uid);
                    sr.date_time(dcm("123003", "Radiopharmaceutical Start DateTime"), &a.started);
                    sr.num(dcm("113507", "Administered activity"), a.activity_mbq, "MBq");
                    sr.code(route_concept, intravenous);
                });
            }
        },
    )
}

/// A CT image that reports its own dose (no RDSR in its study).
#[derive(Debug, Clone)]
pub struct CtImage {
    pub header: Header,
    pub protocol: String,
    pub ctdivol: f64,
    pub body_phantom: bool,
    pub slice_z: f64,
    pub slice_thickness: f64,
    pub water_equivalent_diameter: Option<f64>,
    /// The RDSR event that made it (0008,3010).
    pub irradiation_event_uid: Option<String>,
    pub instance_number: u32,
}

/// An 8×8 CT slice with its dose attributes.
pub fn ct_image(image: &CtImage) -> Vec<u8> {
    let h = &image.header;
    let mut w = DatasetWriter::new(h.syntax);
    w.text(tag(0x0008, 0x0005), *b"CS", "ISO_IR 192")
        .text(tag(0x0008, 0x0016), *b"UI", CT_IMAGE)
        .text(tag(0x0008, 0x0018), *b"UI", &h.sop_instance_uid)
        .text(tag(0x0008, 0x0020), *b"DA", &h.study_date)
        .text(tag(0x0008, 0x0030), *b"TM", &h.study_time)
        .text(tag(0x0008, 0x0060), *b"CS", "CT")
        .text(tag(0x0008, 0x0070), *b"LO", &h.manufacturer)
        .text(tag(0x0008, 0x0080), *b"LO", &h.institution)
        .text(tag(0x0008, 0x1010), *b"SH", &h.station)
        .text(tag(0x0008, 0x1030), *b"LO", &h.study_description)
        .text(tag(0x0008, 0x103E), *b"LO", &image.protocol)
        .text(tag(0x0008, 0x1090), *b"LO", &h.model);
    if let Some(event) = &image.irradiation_event_uid {
        w.text(tag(0x0008, 0x3010), *b"UI", event);
    }
    w.text(tag(0x0010, 0x0010), *b"PN", &h.patient.name)
        .text(tag(0x0010, 0x0020), *b"LO", &h.patient.id)
        .text(tag(0x0010, 0x0030), *b"DA", &h.patient.birth_date)
        .text(tag(0x0010, 0x0040), *b"CS", &h.patient.sex)
        .text(tag(0x0010, 0x1010), *b"AS", &h.age)
        .text(tag(0x0018, 0x0050), *b"DS", &decimal(image.slice_thickness))
        .text(tag(0x0018, 0x0060), *b"DS", "120")
        .text(tag(0x0018, 0x1000), *b"LO", &h.serial)
        .text(tag(0x0018, 0x1030), *b"LO", &image.protocol)
        .text(tag(0x0018, 0x1150), *b"IS", "500")
        .text(tag(0x0018, 0x1151), *b"IS", "200");
    if let Some(dw) = image.water_equivalent_diameter {
        w.element(tag(0x0018, 0x1271), *b"FD", &encode_fd(dw, h.syntax));
    }
    w.text(tag(0x0018, 0x9302), *b"CS", "SPIRAL");
    w.element(tag(0x0018, 0x9311), *b"FD", &encode_fd(0.9, h.syntax)).element(
        tag(0x0018, 0x9345),
        *b"FD",
        &encode_fd(image.ctdivol, h.syntax),
    );
    let phantom = if image.body_phantom {
        ("113691", DCM, "IEC Body Dosimetry Phantom")
    } else {
        ("113690", DCM, "IEC Head Dosimetry Phantom")
    };
    Sr(&mut w, SpecificCharacterSet::default()).code_sequence(tag(0x0018, 0x9346), phantom);
    w.text(tag(0x0020, 0x000D), *b"UI", &h.study_uid)
        .text(tag(0x0020, 0x000E), *b"UI", &h.series_uid)
        .text(tag(0x0020, 0x0011), *b"IS", "2")
        .text(tag(0x0020, 0x0013), *b"IS", &image.instance_number.to_string())
        .text(tag(0x0020, 0x0032), *b"DS", &format!("-100\\-100\\{}", decimal(image.slice_z)))
        .u16_element(tag(0x0028, 0x0002), 1)
        .text(tag(0x0028, 0x0004), *b"CS", "MONOCHROME2")
        .u16_element(tag(0x0028, 0x0010), 8)
        .u16_element(tag(0x0028, 0x0011), 8)
        .u16_element(tag(0x0028, 0x0100), 16)
        .u16_element(tag(0x0028, 0x0101), 12)
        .u16_element(tag(0x0028, 0x0102), 11)
        .u16_element(tag(0x0028, 0x0103), 0)
        .element(tag(0x7FE0, 0x0010), *b"OW", &[0u8; 128]);
    w.into_bytes()
}

fn encode_fd(value: f64, syntax: Syntax) -> [u8; 8] {
    if syntax.big_endian { value.to_be_bytes() } else { value.to_le_bytes() }
}

/// One file of the dose corpus.
#[derive(Debug, Clone)]
pub struct DoseFile {
    pub path: std::path::PathBuf,
    pub study_uid: String,
    pub sop_instance_uid: String,
}

/// Writes the end-to-end dose corpus as Part-10 files under `dir`, for facility patients
/// `DOSE00001`… :
/// 1. a head CT RDSR over the 2025 DRL (CTDIvol 75 mGy, DLP 1400 mGy·cm);
/// 2. a "continued" RDSR of the same study repeating its event and adding one (Siemens),
///    and two images of its first acquisition with the patient's water-equivalent diameter
///    (150 and 170 mm): that event's SSDE;
/// 3. a Canon angiography RDSR in legacy codes and Canon's units (DAP 24 Gy·cm², Ka,r 300 mGy);
/// 4. an FDG radiopharmaceutical RDSR (240 MBq);
/// 5. a mammography RDSR (two views, AGD 1.2 and 1.5 mGy);
/// 6. three slices of a chest CT with no RDSR (CTDIvol 8 mGy).
pub fn write_corpus(dir: &std::path::Path) -> std::io::Result<Vec<DoseFile>> {
    std::fs::create_dir_all(dir)?;
    let syntax = Syntax::EXPLICIT_LE;
    let mut files = Vec::new();
    let mut write = |name: &str, header: &Header, class: &str, dataset: Vec<u8>| -> std::io::Result<()> {
        let path = dir.join(name);
        let bytes = crate::generate::part10(&dataset, class, &header.sop_instance_uid, "1.2.840.10008.1.2.1");
        std::fs::write(&path, bytes)?;
        files.push(DoseFile {
            path,
            study_uid: header.study_uid.clone(),
            sop_instance_uid: header.sop_instance_uid.clone(),
        });
        Ok(())
    };
    let head = |uid: &str, ctdivol: f64, dlp: f64| CtAcquisition {
        protocol: "頭部ルーチン".into(),
        target: ("69536005", "SCT", "Head"),
        event_uid: Some(uid.into()),
        ctdivol,
        dlp,
        head_phantom: true,
        kvp: 120.0,
        tube_current: 300.0,
        exposure_time: 8.0,
        pitch: 0.6,
        scanning_length_mm: 180.0,
        ssde: None,
        dose_check: None,
    };
    let mut ct = CtReport {
        header: Header::synthetic(1, syntax),
        codes: Codes::Current,
        acquisitions: vec![head("2.25.1001", 75.0, 1400.0)],
        without_total: false,
        enhanced: false,
    };
    write("01-ct.dcm", &ct.header.clone(), RDSR, ct_rdsr(&ct))?;
    ct.header.sop_instance_uid = format!("{}.2", ct.header.sop_instance_uid);
    ct.acquisitions.push(head("2.25.1002", 20.0, 200.0));
    write("02-ct-continued.dcm", &ct.header.clone(), RDSR, ct_rdsr(&ct))?;

    // The head CT's images of its first acquisition: they say the head's size.
    for n in 0..2u32 {
        let mut header = ct.header.clone();
        header.sop_instance_uid = format!("{}.9.{n}", Header::synthetic(1, syntax).sop_instance_uid);
        let image = CtImage {
            header: header.clone(),
            protocol: "頭部ルーチン".into(),
            ctdivol: 75.0,
            body_phantom: false,
            slice_z: 10.0 * f64::from(n),
            slice_thickness: 5.0,
            water_equivalent_diameter: Some(150.0 + 20.0 * f64::from(n)),
            irradiation_event_uid: Some("2.25.1001".into()),
            instance_number: n + 1,
        };
        write(&format!("02-ct-image-{n}.dcm"), &header, CT_IMAGE, ct_image(&image))?;
    }

    let fluoro = |n: u64, plane_b: bool, dap: f64, dose_rp: f64| ProjectionEvent {
        fluoroscopy: !n.is_multiple_of(2),
        protocol: "Coronary 15fps".into(),
        event_uid: Some(format!("2.25.2{n:03}")),
        plane_b,
        dap,
        dose_rp,
        kvp: 80.0,
        tube_current: 10.0,
        pulse_rate: 15.0,
        pulses: 300.0,
        duration_s: 20.0,
        primary_angle: 30.0,
        secondary_angle: -20.0,
        filter: Some((("C-127F9", "SRT", "Copper or copper compound"), 0.2)),
        agd: None,
    };
    let mut angio = ProjectionReport {
        header: Header::synthetic(2, syntax),
        codes: Codes::Legacy,
        mammography: false,
        events: vec![fluoro(1, false, 12.5, 150.0), fluoro(2, false, 7.5, 90.0), fluoro(3, true, 4.0, 60.0)],
        canon_units: true,
        fluoro_time: 312.0,
    };
    angio.header.manufacturer = "CANON_MEC".into();
    angio.header.model = "Alphenix".into();
    angio.header.study_description = "CAG PCI".into();
    write("03-angio-canon.dcm", &angio.header.clone(), RDSR, projection_rdsr(&angio))?;

    let mut pet = RadiopharmaceuticalReport {
        header: Header::synthetic(3, syntax),
        codes: Codes::Current,
        administrations: vec![Administration {
            agent: ("35321007", "SCT", "Fluorodeoxyglucose F^18^"),
            nuclide: ("77004003", "SCT", "^18^Fluorine"),
            activity_mbq: 240.0,
            event_uid: "2.25.3001".into(),
            started: "20260304093000".into(),
        }],
    };
    pet.header.study_description = "FDG PET/CT".into();
    write("04-fdg.dcm", &pet.header.clone(), RADIOPHARMACEUTICAL_RDSR, radiopharmaceutical_rdsr(&pet))?;

    let view = |uid: &str, agd: f64| ProjectionEvent {
        fluoroscopy: false,
        event_uid: Some(uid.into()),
        agd: Some(agd),
        filter: None,
        ..fluoro(0, false, 0.0, 0.0)
    };
    let mut mammo = ProjectionReport {
        header: Header::synthetic(4, syntax),
        codes: Codes::Current,
        mammography: true,
        events: vec![view("2.25.4001", 1.2), view("2.25.4002", 1.5)],
        canon_units: false,
        fluoro_time: 0.0,
    };
    mammo.header.study_description = "マンモグラフィ".into();
    write("05-mammo.dcm", &mammo.header.clone(), RDSR, projection_rdsr(&mammo))?;

    let chest = Header::synthetic(5, syntax);
    for n in 0..3 {
        let mut header = chest.clone();
        header.study_description = "胸部CT".into();
        header.sop_instance_uid = format!("{}.{n}", chest.sop_instance_uid);
        let image = CtImage {
            header: header.clone(),
            protocol: "Chest routine".into(),
            ctdivol: 8.0,
            body_phantom: true,
            slice_z: -100.0 - 10.0 * n as f64,
            slice_thickness: 10.0,
            water_equivalent_diameter: Some(260.0),
            irradiation_event_uid: None,
            instance_number: n + 1,
        };
        write(&format!("06-chest-{n}.dcm"), &header, CT_IMAGE, ct_image(&image))?;
    }

    Ok(files)
}

/// The `n`th report of benchmark run `run`: a CT RDSR of three acquisitions (a scout, a
/// head, a neck), with its SOP Instance UID.
pub fn bench_rdsr(run: u64, n: u64) -> (String, Vec<u8>) {
    let mut header = Header::synthetic(run * 1_000_000 + n, Syntax::EXPLICIT_LE);
    header.patient.id = format!("BENCH{n:06}");
    let acquisition = |protocol: &str, uid: u64, ctdivol: f64, dlp: f64| CtAcquisition {
        protocol: protocol.into(),
        target: ("69536005", "SCT", "Head"),
        event_uid: Some(crate::generate::uid(0xD05E_0001 + run, n * 4 + uid)),
        ctdivol,
        dlp,
        head_phantom: true,
        kvp: 120.0,
        tube_current: 250.0,
        exposure_time: 6.0,
        pitch: 0.8,
        scanning_length_mm: 150.0,
        ssde: None,
        dose_check: None,
    };
    let spread = (n % 40) as f64;
    let report = CtReport {
        header,
        codes: if n.is_multiple_of(3) { Codes::Legacy } else { Codes::Current },
        acquisitions: vec![
            acquisition("Scout", 1, 0.3, 5.0),
            acquisition("頭部ルーチン", 2, 45.0 + spread, 800.0 + 10.0 * spread),
            acquisition("頸部", 3, 12.0, 250.0),
        ],
        without_total: false,
        enhanced: false,
    };
    (report.header.sop_instance_uid.clone(), ct_rdsr(&report))
}
