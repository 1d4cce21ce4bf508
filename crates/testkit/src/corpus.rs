//! A small multi-facility corpus: two facilities, several patients, every modality kind, and
//! one SOP Instance UID that exists at both facilities.

use std::path::{Path, PathBuf};

use crate::generate::{Kind, Patient, RLE_LOSSLESS, Spec, dataset, part10, uid};

const IMPLICIT: &str = "1.2.840.10008.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// One written file and what it holds.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub facility: String,
    pub path: PathBuf,
    pub patient_id: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub modality: String,
}

fn patient(id: &str, name: &str, birth_date: &str, sex: &str, character_set: Option<&str>) -> Patient {
    Patient {
        id: id.into(),
        name: name.into(),
        birth_date: birth_date.into(),
        sex: sex.into(),
        character_set: character_set.map(str::to_owned),
    }
}

/// (facility, patient, kind, transfer syntax, instances, study number, study date)
type Plan = (&'static str, Patient, Kind, &'static str, u32, u64, &'static str);

fn plan() -> Vec<Plan> {
    // As Japanese modalities write them (PS3.5 Annex H): romaji, kanji, hiragana in ISO 2022
    // IR 87; half-width katakana in the first group with ISO 2022 IR 13; and one in UTF-8.
    let yamada = patient("E0001", "Yamada^Tarou=山田^太郎=やまだ^たろう", "19650412", "M", Some("\\ISO 2022 IR 87"));
    let sato = patient("E0002", "Sato^Hanako", "19800105", "F", None);
    let tanaka =
        patient("W0001", "ﾀﾅｶ^ｼﾞﾛｳ=田中^次郎=たなか^じろう", "19521130", "M", Some("ISO 2022 IR 13\\ISO 2022 IR 87"));
    vec![
        ("east", yamada.clone(), Kind::Ct { size: 128 }, EXPLICIT, 3, 1, "20240315"),
        ("east", yamada.clone(), Kind::Mr, IMPLICIT, 2, 2, "20230720"),
        ("east", yamada.clone(), Kind::DoseReport, EXPLICIT, 1, 1, "20240315"),
        ("east", yamada, Kind::Pdf, EXPLICIT, 1, 3, "20240401"),
        ("east", sato.clone(), Kind::Cr, DEFLATED, 1, 4, "20220110"),
        ("east", sato.clone(), Kind::UsMultiframe { frames: 4 }, RLE_LOSSLESS, 1, 5, "20240610"),
        ("east", sato, Kind::Private, EXPLICIT_BE, 1, 6, "20240610"),
        ("west", tanaka.clone(), Kind::Ct { size: 128 }, RLE_LOSSLESS, 2, 7, "20240801"),
        ("west", tanaka, Kind::Mr, EXPLICIT, 1, 8, "20240802"),
    ]
}

/// Writes the corpus under `dir` and returns what was written.
pub fn write(dir: &Path) -> std::io::Result<Vec<CorpusFile>> {
    let mut files = Vec::new();
    for (series_index, (facility, patient, kind, ts, count, study_n, date)) in plan().into_iter().enumerate() {
        for n in 0..count {
            let series_n = series_index as u64;
            let spec = Spec {
                patient: patient.clone(),
                kind,
                study_uid: uid(100, study_n),
                series_uid: uid(200, series_n),
                sop_instance_uid: uid(300, series_n * 100 + n as u64),
                study_date: date.into(),
                study_time: "101500".into(),
                accession: format!("ACC{study_n:04}"),
                series_number: series_index as u32 + 1,
                instance_number: n + 1,
                transfer_syntax: ts.into(),
                seed: series_n * 1000 + n as u64,
            };
            files.push(write_one(dir, facility, &spec)?);
        }
    }
    // The same SOP Instance UID at a second facility, as after a CD import: a separate object.
    let first = files[0].clone();
    let mut twin = Spec {
        patient: patient("W0002", "Yamada^Tarou=山田^太郎=やまだ^たろう", "19650412", "M", Some("ISO_IR 192")),
        kind: Kind::Ct { size: 128 },
        study_uid: first.study_uid.clone(),
        series_uid: first.series_uid.clone(),
        sop_instance_uid: first.sop_instance_uid.clone(),
        study_date: "20240315".into(),
        study_time: "101500".into(),
        accession: "W-IMPORT".into(),
        series_number: 1,
        instance_number: 1,
        transfer_syntax: EXPLICIT.into(),
        seed: 999,
    };
    twin.study_time = "111500".into();
    files.push(write_one(dir, "west", &twin)?);
    Ok(files)
}

fn write_one(dir: &Path, facility: &str, spec: &Spec) -> std::io::Result<CorpusFile> {
    let folder = dir.join(facility).join(&spec.study_uid);
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{}.dcm", spec.sop_instance_uid));
    let bytes = part10(&dataset(spec), spec.kind.sop_class(), &spec.sop_instance_uid, &spec.transfer_syntax);
    std::fs::write(&path, bytes)?;
    Ok(CorpusFile {
        facility: facility.into(),
        path,
        patient_id: spec.patient.id.clone(),
        study_uid: spec.study_uid.clone(),
        series_uid: spec.series_uid.clone(),
        sop_instance_uid: spec.sop_instance_uid.clone(),
        sop_class_uid: spec.kind.sop_class().into(),
        transfer_syntax: spec.transfer_syntax.clone(),
        modality: spec.kind.modality().into(),
    })
}
