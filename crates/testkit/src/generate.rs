//! Deterministic synthetic instances.

use renkei_dicom::Syntax;
use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::syntax::EXPLICIT_VR_LE;
use renkei_dicom::tags::tag;
use renkei_dicom::write::DatasetWriter;

pub const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const CR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const US_MULTIFRAME: &str = "1.2.840.10008.5.1.4.1.1.3.1";
pub const XRAY_DOSE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.67";
pub const ENCAPSULATED_PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";
/// A private SOP class, under a UUID-derived root nobody else uses.
pub const PRIVATE_CLASS: &str = "2.25.329800735698586629295641978511506172918.1";
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// A synthetic patient.
#[derive(Debug, Clone)]
pub struct Patient {
    pub id: String,
    /// Person Name (component groups joined by `=`).
    pub name: String,
    pub birth_date: String,
    pub sex: String,
    /// The Specific Character Set the name is written in; UTF-8 (ISO_IR 192) when `None`
    /// and the name is not ASCII.
    pub character_set: Option<String>,
}

/// What kind of object to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 16-bit monochrome slices of `size`×`size` pixels.
    Ct {
        size: u16,
    },
    Mr,
    Cr,
    /// RGB, several frames.
    UsMultiframe {
        frames: u16,
    },
    /// X-Ray Radiation Dose SR with a CT dose summary.
    DoseReport,
    Pdf,
    Private,
}

impl Kind {
    pub fn sop_class(self) -> &'static str {
        match self {
            Kind::Ct { .. } => CT_IMAGE,
            Kind::Mr => MR_IMAGE,
            Kind::Cr => CR_IMAGE,
            Kind::UsMultiframe { .. } => US_MULTIFRAME,
            Kind::DoseReport => XRAY_DOSE_SR,
            Kind::Pdf => ENCAPSULATED_PDF,
            Kind::Private => PRIVATE_CLASS,
        }
    }

    pub fn modality(self) -> &'static str {
        match self {
            Kind::Ct { .. } => "CT",
            Kind::Mr => "MR",
            Kind::Cr => "CR",
            Kind::UsMultiframe { .. } => "US",
            Kind::DoseReport => "SR",
            Kind::Pdf => "DOC",
            Kind::Private => "OT",
        }
    }
}

/// Everything that identifies one instance.
#[derive(Debug, Clone)]
pub struct Spec {
    pub patient: Patient,
    pub kind: Kind,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub study_date: String,
    pub study_time: String,
    pub accession: String,
    pub series_number: u32,
    pub instance_number: u32,
    pub transfer_syntax: String,
    /// Seeds the pixel values so that instances differ.
    pub seed: u64,
}

/// A UID under the 2.25 (UUID) root, unique for each `(namespace, n)`.
pub fn uid(namespace: u64, n: u64) -> String {
    let high = splitmix(namespace ^ 0x5245_4e4b_4549) as u128;
    let low = splitmix(n.wrapping_add(namespace.rotate_left(17))) as u128;
    // At most 39 digits after "2.25.", within the 64-character limit.
    format!("2.25.{}", ((high << 64) | low) >> 1)
}

/// A fast, well-mixed pseudo-random step (SplitMix64).
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Pixels {
    rows: u16,
    columns: u16,
    samples: u16,
    bits: u16,
    frames: u16,
    photometric: &'static str,
    data: Vec<u8>,
}

fn pixels(kind: Kind, seed: u64) -> Option<Pixels> {
    let (rows, columns, samples, bits, frames, photometric) = match kind {
        Kind::Ct { size } => (size, size, 1, 16, 1, "MONOCHROME2"),
        Kind::Mr => (256, 256, 1, 16, 1, "MONOCHROME2"),
        Kind::Cr => (512, 400, 1, 16, 1, "MONOCHROME2"),
        Kind::UsMultiframe { frames } => (120, 160, 3, 8, frames, "RGB"),
        Kind::Private => (64, 64, 1, 8, 1, "MONOCHROME2"),
        Kind::DoseReport | Kind::Pdf => return None,
    };
    let count = rows as usize * columns as usize * samples as usize * frames as usize;
    let mut data = Vec::with_capacity(count * (bits as usize / 8));
    let mut state = seed;
    for i in 0..count {
        // A smooth ramp with a little noise: compressible like real images, never constant.
        if i % 64 == 0 {
            state = splitmix(state);
        }
        let ramp = (i % columns as usize) as u64 * 4 + (i / columns as usize % rows as usize) as u64;
        let value = ramp + ((state >> (i % 64)) & 7);
        if bits == 16 {
            data.extend_from_slice(&(value as u16 & 0x0FFF).to_le_bytes());
        } else {
            data.push(value as u8);
        }
    }
    Some(Pixels { rows, columns, samples, bits, frames, photometric, data })
}

/// The dataset of `spec`, encoded in its transfer syntax (without file meta).
pub fn dataset(spec: &Spec) -> Vec<u8> {
    let ts = spec.transfer_syntax.as_str();
    let rle = ts == RLE_LOSSLESS;
    let syntax = Syntax::from_uid(ts).unwrap_or(Syntax::EXPLICIT_LE);
    let mut w = DatasetWriter::new(syntax);
    let kind = spec.kind;
    let character_set = match &spec.patient.character_set {
        Some(declared) => Some(declared.as_str()),
        None if !spec.patient.name.is_ascii() => Some("ISO_IR 192"),
        None => None,
    };
    if let Some(declared) = character_set {
        w.text(tag(0x0008, 0x0005), *b"CS", declared);
    }
    let charset = character_set.map(SpecificCharacterSet::parse).unwrap_or_default();
    let name = charset.encode(&spec.patient.name, TextKind::PersonName).expect("test names fit their character set");
    w.text(tag(0x0008, 0x0016), *b"UI", kind.sop_class())
        .text(tag(0x0008, 0x0018), *b"UI", &spec.sop_instance_uid)
        .text(tag(0x0008, 0x0020), *b"DA", &spec.study_date)
        .text(tag(0x0008, 0x0030), *b"TM", &spec.study_time)
        .text(tag(0x0008, 0x0050), *b"SH", &spec.accession)
        .text(tag(0x0008, 0x0060), *b"CS", kind.modality())
        .text(tag(0x0008, 0x0070), *b"LO", "Renkei Synthetic")
        .text(tag(0x0008, 0x0090), *b"PN", "Suzuki^Ichiro")
        .text(tag(0x0008, 0x1030), *b"LO", &format!("{} study", kind.modality()))
        .text(tag(0x0008, 0x103E), *b"LO", &format!("{} series {}", kind.modality(), spec.series_number))
        .element(tag(0x0010, 0x0010), *b"PN", &name)
        .text(tag(0x0010, 0x0020), *b"LO", &spec.patient.id)
        .text(tag(0x0010, 0x0030), *b"DA", &spec.patient.birth_date)
        .text(tag(0x0010, 0x0040), *b"CS", &spec.patient.sex);
    if let Kind::Ct { .. } = kind {
        w.text(tag(0x0018, 0x0015), *b"CS", "CHEST").text(tag(0x0018, 0x0060), *b"DS", "120");
    }
    w.text(tag(0x0020, 0x000D), *b"UI", &spec.study_uid)
        .text(tag(0x0020, 0x000E), *b"UI", &spec.series_uid)
        .text(tag(0x0020, 0x0010), *b"SH", "1")
        .text(tag(0x0020, 0x0011), *b"IS", &spec.series_number.to_string())
        .text(tag(0x0020, 0x0013), *b"IS", &spec.instance_number.to_string());
    match kind {
        Kind::DoseReport => dose_report_content(&mut w),
        Kind::Pdf => {
            let pdf = minimal_pdf();
            w.text(tag(0x0028, 0x0301), *b"CS", "NO").element(tag(0x0042, 0x0011), *b"OB", &pdf).text(
                tag(0x0042, 0x0012),
                *b"LO",
                "application/pdf",
            );
        }
        _ => {}
    }
    if let Some(p) = pixels(kind, spec.seed) {
        w.u16_element(tag(0x0028, 0x0002), p.samples).text(tag(0x0028, 0x0004), *b"CS", p.photometric);
        if p.samples > 1 {
            w.u16_element(tag(0x0028, 0x0006), 0);
        }
        if p.frames > 1 {
            w.text(tag(0x0028, 0x0008), *b"IS", &p.frames.to_string());
        }
        w.u16_element(tag(0x0028, 0x0010), p.rows)
            .u16_element(tag(0x0028, 0x0011), p.columns)
            .u16_element(tag(0x0028, 0x0100), p.bits)
            .u16_element(tag(0x0028, 0x0101), if p.bits == 16 { 12 } else { 8 })
            .u16_element(tag(0x0028, 0x0102), if p.bits == 16 { 11 } else { 7 })
            .u16_element(tag(0x0028, 0x0103), 0);
        if rle {
            let frame_len = p.data.len() / p.frames as usize;
            let frames: Vec<Vec<u8>> =
                p.data.chunks(frame_len).map(|f| rle_frame(f, p.samples, p.bits, p.rows, p.columns)).collect();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            w.encapsulated_pixel_data(&refs);
        } else {
            let vr = if p.bits == 16 { *b"OW" } else { *b"OB" };
            let data = if syntax.big_endian && p.bits == 16 {
                p.data.chunks(2).flat_map(|b| [b[1], b[0]]).collect()
            } else {
                p.data
            };
            w.element(tag(0x7FE0, 0x0010), vr, &data);
        }
    }
    w.into_bytes()
}

/// A CT dose summary in the X-Ray Radiation Dose SR tree (TID 10011), enough to be an RDSR.
fn dose_report_content(w: &mut DatasetWriter) {
    let code = |w: &mut DatasetWriter, seq: u32, value: &str, scheme: &str, meaning: &str| {
        w.begin_sequence(seq)
            .begin_item()
            .text(tag(0x0008, 0x0100), *b"SH", value)
            .text(tag(0x0008, 0x0102), *b"SH", scheme)
            .text(tag(0x0008, 0x0104), *b"LO", meaning)
            .end_item()
            .end_sequence();
    };
    w.text(tag(0x0040, 0xA040), *b"CS", "CONTAINER");
    code(w, tag(0x0040, 0xA043), "113701", "DCM", "X-Ray Radiation Dose Report");
    w.text(tag(0x0040, 0xA050), *b"CS", "SEPARATE");
    w.begin_sequence(tag(0x0040, 0xA730));
    {
        let (value, meaning, amount, unit) = ("113813", "CT Dose Length Product Total", "412.5", "mGy.cm");
        w.begin_item().text(tag(0x0040, 0xA010), *b"CS", "CONTAINS").text(tag(0x0040, 0xA040), *b"CS", "NUM");
        code(w, tag(0x0040, 0xA043), value, "DCM", meaning);
        w.begin_sequence(tag(0x0040, 0xA300)).begin_item();
        code(w, tag(0x0040, 0x08EA), unit, "UCUM", unit);
        w.text(tag(0x0040, 0xA30A), *b"DS", amount).end_item().end_sequence().end_item();
    }
    w.end_sequence();
}

fn minimal_pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj \
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
        .to_vec()
}

/// One RLE Lossless frame (PS3.5 Annex G): a 64-byte header and one PackBits segment per
/// byte plane, most significant byte first.
fn rle_frame(frame: &[u8], samples: u16, bits: u16, rows: u16, columns: u16) -> Vec<u8> {
    let bytes_per_sample = (bits / 8) as usize;
    let pixels = rows as usize * columns as usize;
    let mut segments = Vec::new();
    for sample in 0..samples as usize {
        for byte in (0..bytes_per_sample).rev() {
            let plane: Vec<u8> =
                (0..pixels).map(|p| frame[(p * samples as usize + sample) * bytes_per_sample + byte]).collect();
            segments.push(packbits(&plane));
        }
    }
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for (i, segment) in segments.iter().enumerate() {
        out[4 + i * 4..8 + i * 4].copy_from_slice(&offset.to_le_bytes());
        offset += segment.len() as u32;
    }
    for segment in segments {
        out.extend_from_slice(&segment);
    }
    out
}

fn packbits(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let mut run = 1;
        while i + run < data.len() && run < 128 && data[i + run] == data[i] {
            run += 1;
        }
        if run > 1 {
            out.push((257 - run) as u8);
            out.push(data[i]);
            i += run;
        } else {
            let start = i;
            while i < data.len() && i - start < 128 && (i + 1 >= data.len() || data[i + 1] != data[i]) {
                i += 1;
            }
            out.push((i - start - 1) as u8);
            out.extend_from_slice(&data[start..i]);
        }
    }
    if out.len() % 2 == 1 {
        out.push(0x80);
    }
    out
}

/// A Part-10 file: preamble, `DICM`, file meta group, then the dataset bytes unchanged.
pub fn part10(dataset: &[u8], sop_class: &str, sop_instance: &str, transfer_syntax: &str) -> Vec<u8> {
    let mut out = renkei_dicom::write::part10_header(sop_class, sop_instance, transfer_syntax);
    out.extend_from_slice(dataset);
    out
}

/// A spec for a CT slice, the benchmark's unit of work.
pub fn ct_slice(size: u16, n: u64) -> Spec {
    Spec {
        patient: Patient {
            id: "BENCH001".into(),
            name: "Bench^Patient".into(),
            birth_date: "19600101".into(),
            sex: "O".into(),
            character_set: None,
        },
        kind: Kind::Ct { size },
        study_uid: uid(7, 0),
        series_uid: uid(7, 1),
        sop_instance_uid: uid(8, n),
        study_date: "20250101".into(),
        study_time: "090000".into(),
        accession: "BENCH".into(),
        series_number: 1,
        instance_number: n as u32 + 1,
        transfer_syntax: EXPLICIT_VR_LE.into(),
        seed: n,
    }
}

/// Instances in an index layout for benchmarks: 100 small CT slices per study, two studies
/// per patient, study dates spread over 2016–2025, and common Japanese names (romaji, kanji
/// and kana) so that name prefixes match a realistic handful of patients. Patient IDs are
/// `BP` and seven digits, numbered from 0.
pub fn index_instance(namespace: u64, n: u64) -> Spec {
    const FAMILY: [(&str, &str, &str); 10] = [
        ("Yamada", "山田", "やまだ"),
        ("Satou", "佐藤", "さとう"),
        ("Suzuki", "鈴木", "すずき"),
        ("Takahashi", "高橋", "たかはし"),
        ("Tanaka", "田中", "たなか"),
        ("Itou", "伊藤", "いとう"),
        ("Watanabe", "渡邊", "わたなべ"),
        ("Nakamura", "中村", "なかむら"),
        ("Kobayashi", "小林", "こばやし"),
        ("Katou", "加藤", "かとう"),
    ];
    const GIVEN: [(&str, &str, &str); 8] = [
        ("Tarou", "太郎", "たろう"),
        ("Hanako", "花子", "はなこ"),
        ("Ichirou", "一郎", "いちろう"),
        ("Yuki", "由紀", "ゆき"),
        ("Kenji", "健二", "けんじ"),
        ("Akiko", "明子", "あきこ"),
        ("Hiroshi", "博", "ひろし"),
        ("Keiko", "恵子", "けいこ"),
    ];
    let study = n / 100;
    let patient = study / 2;
    let family = FAMILY[(splitmix(patient) % 10) as usize];
    let given = GIVEN[(splitmix(patient ^ 0xF00D) % 8) as usize];
    let days = splitmix(study ^ 0xDA7E) % 3650;
    let (year, day_of_year) = (2016 + days / 365, days % 365);
    let study_date = format!("{year}{:02}{:02}", day_of_year / 31 % 12 + 1, day_of_year % 28 + 1);
    Spec {
        patient: Patient {
            id: format!("BP{patient:07}"),
            name: format!("{}^{}={}^{}={}^{}", family.0, given.0, family.1, given.1, family.2, given.2),
            birth_date: format!("19{:02}0{}1{}", 30 + patient % 60, 1 + patient % 9, patient % 10),
            sex: if patient.is_multiple_of(2) { "M" } else { "F" }.into(),
            character_set: None,
        },
        kind: Kind::Ct { size: 16 },
        study_uid: uid(namespace ^ 0x57D1, study),
        series_uid: uid(namespace ^ 0x5E71, study),
        sop_instance_uid: uid(namespace ^ 0x1257, n),
        study_date,
        study_time: "093000".into(),
        accession: format!("A{study:08}"),
        series_number: 1,
        instance_number: (n % 100) as u32 + 1,
        transfer_syntax: EXPLICIT_VR_LE.into(),
        seed: n,
    }
}

#[cfg(test)]
mod tests {
    use renkei_dicom::extract::{extract, is_index_tag};
    use renkei_dicom::syntax::DEFLATED_EXPLICIT_VR_LE;
    use renkei_dicom::walk::walk_bytes;

    use super::*;

    #[test]
    fn every_kind_and_syntax_walks_and_extracts() {
        let kinds = [
            Kind::Ct { size: 64 },
            Kind::Mr,
            Kind::Cr,
            Kind::UsMultiframe { frames: 3 },
            Kind::DoseReport,
            Kind::Pdf,
            Kind::Private,
        ];
        let syntaxes =
            ["1.2.840.10008.1.2", EXPLICIT_VR_LE, "1.2.840.10008.1.2.2", DEFLATED_EXPLICIT_VR_LE, RLE_LOSSLESS];
        for kind in kinds {
            for ts in syntaxes {
                let mut spec = ct_slice(64, 1);
                spec.kind = kind;
                spec.transfer_syntax = ts.into();
                let bytes = dataset(&spec);
                let syntax = Syntax::from_uid(ts).expect("standard syntax");
                let elements =
                    walk_bytes(&bytes, syntax, &is_index_tag, 4096).unwrap_or_else(|e| panic!("{kind:?} {ts}: {e}"));
                let extracted = extract(&elements).expect("identifying attributes");
                assert_eq!(extracted.sop_class_uid.as_str(), kind.sop_class());
            }
        }
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = uid(1, 1);
        assert!(a.len() <= 64 && a.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        assert_ne!(a, uid(1, 2));
        assert_ne!(a, uid(2, 1));
    }

    #[test]
    fn packbits_round_trips() {
        fn unpack(data: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut i = 0;
            while i < data.len() {
                let n = data[i] as i8;
                i += 1;
                if n >= 0 {
                    out.extend_from_slice(&data[i..i + n as usize + 1]);
                    i += n as usize + 1;
                } else if n != -128 {
                    out.extend(std::iter::repeat_n(data[i], (1 - n as isize) as usize));
                    i += 1;
                }
            }
            out
        }
        let input: Vec<u8> = (0..1000u32).map(|i| if i % 300 < 150 { 7 } else { (i * 31 % 251) as u8 }).collect();
        assert_eq!(unpack(&packbits(&input))[..input.len()], input[..]);
    }
}
