//! Extraction from synthetic dose objects in every template, code generation, unit quirk and
//! encoding the generators in `renkei-testkit` write.

use renkei_dicom::Syntax;
use renkei_dicom::walk::{Node, SeekSource, tree};
use renkei_domain::dose::{DoseKind, DoseReport, DoseSource, EventData, Phantom, Plane, SsdeMethod};
use renkei_dose::drl::{self, Metric};
use renkei_dose::{NotADoseReport, dose_report, header};
use renkei_testkit::dose::{
    Administration, Codes, CtAcquisition, CtImage, CtReport, Header, ProjectionEvent, ProjectionReport,
    RadiopharmaceuticalReport, ct_image, ct_rdsr, projection_rdsr, radiopharmaceutical_rdsr,
};

fn nodes(bytes: &[u8], syntax: Syntax) -> Vec<Node> {
    let mut source = SeekSource::new(std::io::Cursor::new(bytes)).expect("a cursor seeks");
    tree(&mut source, syntax, 1 << 20, &renkei_dicom::dictionary::implicit_vr).expect("the generator writes valid data")
}

fn read(bytes: &[u8], syntax: Syntax) -> DoseReport {
    dose_report(&nodes(bytes, syntax), syntax.big_endian).expect("a dose report")
}

fn close(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() <= 1e-9 * expected.abs().max(1.0))
}

fn acquisition(protocol: &str, ctdivol: f64, dlp: f64, uid: Option<&str>) -> CtAcquisition {
    CtAcquisition {
        protocol: protocol.into(),
        target: ("69536005", "SCT", "Head"),
        event_uid: uid.map(Into::into),
        ctdivol,
        dlp,
        head_phantom: true,
        kvp: 120.0,
        tube_current: 250.0,
        exposure_time: 7.5,
        pitch: 0.65,
        scanning_length_mm: 160.0,
        ssde: None,
        dose_check: None,
    }
}

fn ct_report(syntax: Syntax, codes: Codes) -> CtReport {
    let mut first = acquisition("頭部ルーチン", 62.5, 1100.0, Some("1.2.392.1.1"));
    first.ssde = Some(70.1);
    first.dose_check = Some((1000.0, 1100.0));
    CtReport {
        header: Header::synthetic(1, syntax),
        codes,
        acquisitions: vec![first, acquisition("Scout", 0.2, 4.0, Some("1.2.392.1.2"))],
        without_total: false,
        enhanced: false,
    }
}

#[test]
fn a_ct_report_gives_its_events_totals_device_and_patient() {
    let report = read(&ct_rdsr(&ct_report(Syntax::EXPLICIT_LE, Codes::Current)), Syntax::EXPLICIT_LE);
    assert_eq!((report.kind, report.source), (DoseKind::Ct, DoseSource::Rdsr));
    assert!(close(report.totals.dlp, 1104.0), "{:?}", report.totals);
    assert_eq!(report.totals.events, Some(2));
    assert_eq!(report.events.len(), 2);
    let EventData::Ct(head) = &report.events[0].data else { panic!("a CT event") };
    assert_eq!(report.events[0].protocol, "頭部ルーチン");
    assert_eq!(report.events[0].uid, "1.2.392.1.1");
    assert_eq!(report.events[0].target_region, "Head");
    assert!(close(head.ctdivol, 62.5) && close(head.dlp, 1100.0));
    assert_eq!(head.phantom, Some(Phantom::Head16));
    assert!(close(head.kvp, 120.0) && close(head.tube_current, 250.0) && close(head.max_tube_current, 375.0));
    assert!(close(head.pitch, 0.65) && close(head.scanning_length, 160.0) && close(head.exposure_time, 7.5));
    assert_eq!(head.acquisition_type, "Spiral Acquisition");
    assert_eq!(head.ssde.map(|s| (s.mgy, s.method)), Some((70.1, SsdeMethod::Reported)));
    assert!(head.dose_check, "the forward estimate reached the alert value");
    let EventData::Ct(scout) = &report.events[1].data else { panic!("a CT event") };
    assert!(!scout.dose_check);
    assert!(close(report.max_ctdivol(), 62.5));
    assert_eq!(report.device.manufacturer, "Renkei Medical");
    assert_eq!(report.device.model, "Synthetica 64");
    assert_eq!(report.device.station, "CT2");
    assert_eq!(report.device.institution, "East Hospital");
    assert!(!report.device.observer_uid.is_empty());
    assert_eq!(report.study_description, "頭部単純CT");
    assert_eq!(report.patient.age_years, Some(31.0));
    assert!(close(report.patient.weight_kg, 51.0));
    assert!(report.started.starts_with("20260202"), "{}", report.started);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

#[test]
fn legacy_codes_implicit_vr_an_enhanced_sr_and_a_missing_total_read_the_same() {
    let mut ct = ct_report(Syntax::IMPLICIT_LE, Codes::Legacy);
    ct.enhanced = true;
    ct.without_total = true;
    ct.acquisitions[1].event_uid = None;
    let report = read(&ct_rdsr(&ct), Syntax::IMPLICIT_LE);
    assert_eq!((report.kind, report.source), (DoseKind::Ct, DoseSource::EnhancedRdsr));
    assert!(close(report.totals.dlp, 1104.0), "the events' DLPs added up");
    assert!(report.notes.iter().any(|n| n.contains("no DLP total")), "{:?}", report.notes);
    assert_eq!(report.events[1].uid, format!("{}#2", report.sop_instance_uid));
    assert!(report.notes.iter().any(|n| n.contains("without its UID")));
    let EventData::Ct(head) = &report.events[0].data else { panic!("a CT event") };
    assert_eq!(head.acquisition_type, "Spiral Acquisition", "read from the SRT code");
}

#[test]
fn japanese_text_in_iso_2022_is_decoded() {
    let mut ct = ct_report(Syntax::EXPLICIT_LE, Codes::Current);
    ct.header.patient.character_set = Some("\\ISO 2022 IR 87".into());
    ct.header.institution = "東病院".into();
    let report = read(&ct_rdsr(&ct), Syntax::EXPLICIT_LE);
    assert_eq!(report.study_description, "頭部単純CT");
    assert_eq!(report.device.institution, "東病院");
    assert_eq!(report.events[0].protocol, "頭部ルーチン");
}

fn fluoroscopy(plane_b: bool, dap: f64, dose_rp: f64) -> ProjectionEvent {
    ProjectionEvent {
        fluoroscopy: true,
        protocol: "Cardiac 15fps".into(),
        event_uid: Some(format!("1.2.392.2.{}", (dap * 1000.0) as u64)),
        plane_b,
        dap,
        dose_rp,
        kvp: 80.0,
        tube_current: 12.0,
        pulse_rate: 15.0,
        pulses: 450.0,
        duration_s: 30.0,
        primary_angle: -30.0,
        secondary_angle: 20.0,
        filter: Some((("C-127F9", "SRT", "Copper or copper compound"), 0.2)),
        agd: None,
    }
}

fn angiography(syntax: Syntax, canon_units: bool) -> ProjectionReport {
    ProjectionReport {
        header: Header::synthetic(2, syntax),
        codes: Codes::Legacy,
        mammography: false,
        events: vec![fluoroscopy(false, 12.5, 150.0), fluoroscopy(false, 7.5, 90.0), fluoroscopy(true, 4.0, 60.0)],
        canon_units,
        fluoro_time: 312.0,
    }
}

#[test]
fn canon_units_are_converted_by_their_codes_and_noted() {
    let report = read(&projection_rdsr(&angiography(Syntax::EXPLICIT_LE, true)), Syntax::EXPLICIT_LE);
    assert_eq!(report.kind, DoseKind::Projection);
    assert!(close(report.totals.dap, 24.0), "{:?}", report.totals);
    assert!(close(report.totals.dose_rp, 300.0));
    assert!(close(report.totals.fluoro_time, 312.0));
    let EventData::Projection(first) = &report.events[0].data else { panic!("a projection event") };
    assert!(close(first.dap, 12.5) && close(first.dose_rp, 150.0));
    assert!(first.fluoroscopy, "fluoroscopy under its SNOMED RT code");
    assert_eq!(first.plane, Some(Plane::A));
    assert!(close(first.pulse_rate, 15.0) && close(first.pulses, 450.0) && close(first.irradiation_duration, 30.0));
    assert!(close(first.primary_angle, -30.0) && close(first.secondary_angle, 20.0));
    assert_eq!(first.filters.len(), 1);
    assert_eq!(first.filters[0].material, "Copper or copper compound");
    assert!(close(first.filters[0].thickness_min, 0.2));
    let EventData::Projection(third) = &report.events[2].data else { panic!("a projection event") };
    assert_eq!(third.plane, Some(Plane::B));
    assert!(report.notes.iter().any(|n| n.contains("dGy.cm2")), "{:?}", report.notes);
}

#[test]
fn standard_units_in_big_endian_read_the_same() {
    let syntax = Syntax::from_uid("1.2.840.10008.1.2.2").unwrap();
    let report = read(&projection_rdsr(&angiography(syntax, false)), syntax);
    assert!(close(report.totals.dap, 24.0), "{:?}", report.totals);
    assert!(close(report.totals.dose_rp, 300.0));
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(Metric::Dap.of(&report), report.totals.dap);
}

#[test]
fn mammography_gives_average_glandular_doses() {
    let mut view = fluoroscopy(false, 0.0, 0.0);
    view.fluoroscopy = false;
    view.agd = Some(1.2);
    let mut other = view.clone();
    other.event_uid = Some("1.2.392.3.2".into());
    other.agd = Some(1.5);
    let report = read(
        &projection_rdsr(&ProjectionReport {
            header: Header::synthetic(3, Syntax::EXPLICIT_LE),
            codes: Codes::Current,
            mammography: true,
            events: vec![view, other],
            canon_units: false,
            fluoro_time: 0.0,
        }),
        Syntax::EXPLICIT_LE,
    );
    assert_eq!(report.kind, DoseKind::Mammography);
    assert!(close(report.totals.agd, 2.7));
    assert!(close(Metric::Agd.of(&report), 1.5), "the largest exposure");
}

#[test]
fn a_radiopharmaceutical_report_gives_its_administrations() {
    for codes in [Codes::Current, Codes::Legacy] {
        let report = read(
            &radiopharmaceutical_rdsr(&RadiopharmaceuticalReport {
                header: Header::synthetic(4, Syntax::EXPLICIT_LE),
                codes,
                administrations: vec![Administration {
                    agent: ("35321007", "SCT", "Fluorodeoxyglucose F^18^"),
                    nuclide: ("77004003", "SCT", "^18^Fluorine"),
                    activity_mbq: 231.5,
                    event_uid: "1.2.392.4.1".into(),
                    started: "20260305101500".into(),
                }],
            }),
            Syntax::EXPLICIT_LE,
        );
        assert_eq!((report.kind, report.source), (DoseKind::NuclearMedicine, DoseSource::Radiopharmaceutical));
        assert!(close(report.totals.activity, 231.5));
        let EventData::Administration(a) = &report.events[0].data else { panic!("an administration") };
        assert_eq!(a.radiopharmaceutical, "Fluorodeoxyglucose F^18^", "{codes:?}");
        assert_eq!(a.radionuclide, "^18^Fluorine");
        assert_eq!(a.route, "Intravenous route");
        assert_eq!(report.events[0].uid, "1.2.392.4.1");
        assert_eq!(report.events[0].started, "20260305101500");
    }
}

#[test]
fn objects_that_are_not_dose_reports_are_told_apart() {
    let image = ct_image(&CtImage {
        header: Header::synthetic(5, Syntax::EXPLICIT_LE),
        protocol: "Chest".into(),
        ctdivol: 8.0,
        body_phantom: true,
        slice_z: 0.0,
        slice_thickness: 5.0,
        water_equivalent_diameter: None,
        irradiation_event_uid: None,
        instance_number: 1,
    });
    let error = dose_report(&nodes(&image, Syntax::EXPLICIT_LE), false).unwrap_err();
    assert!(matches!(error, NotADoseReport::SopClass(_)));
    // The corpus's minimal RDSR: a DLP total straight under the root, nothing else.
    let mut spec = renkei_testkit::generate::index_instance(7, 1);
    spec.kind = renkei_testkit::generate::Kind::DoseReport;
    spec.transfer_syntax = "1.2.840.10008.1.2.1".into();
    let minimal = read(&renkei_testkit::generate::dataset(&spec), Syntax::EXPLICIT_LE);
    assert_eq!(minimal.kind, DoseKind::Ct);
    assert!(close(minimal.totals.dlp, 412.5));
}

#[test]
fn a_ct_study_without_rdsr_gets_its_dose_from_the_images() {
    let syntax = Syntax::EXPLICIT_LE;
    let mut images = Vec::new();
    let mut first_nodes = Vec::new();
    // Series 1: 11 slices 5 mm apart; series 2 is its thin reconstruction; series 3 another
    // acquisition at another CTDIvol.
    for (series, ctdivol, step, thickness, slices) in
        [(1, 10.0, 5.0, 5.0, 11), (2, 10.0, 1.0, 1.0, 51), (3, 4.0, 10.0, 10.0, 3)]
    {
        for n in 0..slices {
            let mut header = Header::synthetic(6, syntax);
            header.series_uid = format!("1.2.392.6.{series}");
            header.sop_instance_uid = format!("1.2.392.6.{series}.{n}");
            let bytes = ct_image(&CtImage {
                header,
                protocol: format!("Series {series}"),
                ctdivol,
                body_phantom: true,
                slice_z: -100.0 - n as f64 * step,
                slice_thickness: thickness,
                water_equivalent_diameter: Some(250.0),
                irradiation_event_uid: None,
                instance_number: n + 1,
            });
            let tree = nodes(&bytes, syntax);
            images.push(header::image_dose(&tree, false).expect("a CT image with CTDIvol"));
            if first_nodes.is_empty() {
                first_nodes = tree;
            }
        }
    }
    let report = header::report("study-dose", &first_nodes, false, &images).expect("a report");
    assert_eq!((report.kind, report.source), (DoseKind::Ct, DoseSource::ImageHeader));
    assert_eq!(report.events.len(), 2, "the thin reconstruction is not counted again");
    let EventData::Ct(main) = &report.events[0].data else { panic!("a CT event") };
    assert!(close(main.scanning_length, 55.0), "{main:?}");
    assert!(close(main.dlp, 55.0), "10 mGy over 5.5 cm");
    assert_eq!(main.ssde.map(|s| s.method), Some(SsdeMethod::WaterEquivalentDiameter));
    assert!(close(report.totals.dlp, 55.0 + 4.0 * 3.0));
    assert!(!report.notes.is_empty());
}

#[test]
fn an_rdsr_event_gets_its_ssde_from_the_images_it_made() {
    let syntax = Syntax::EXPLICIT_LE;
    let mut ct = ct_report(syntax, Codes::Current);
    let reported = read(&ct_rdsr(&ct), syntax);
    ct.acquisitions[0].ssde = None;
    let mut report = read(&ct_rdsr(&ct), syntax);
    let event = report.events[0].uid.clone();
    // Two images of the first event say the patient's size; one of another scan says
    // nothing of this one.
    let images: Vec<_> = [(Some(event.as_str()), 240.0), (Some(event.as_str()), 260.0), (Some("2.25.99"), 400.0)]
        .iter()
        .enumerate()
        .map(|(n, (uid, diameter))| {
            let mut header = Header::synthetic(1, syntax);
            header.sop_instance_uid = format!("1.2.392.7.{n}");
            let bytes = ct_image(&CtImage {
                header,
                protocol: "Body".into(),
                ctdivol: 10.0,
                body_phantom: true,
                slice_z: n as f64,
                slice_thickness: 5.0,
                water_equivalent_diameter: Some(*diameter),
                irradiation_event_uid: uid.map(str::to_owned),
                instance_number: n as u32 + 1,
            });
            header::image_dose(&nodes(&bytes, syntax), false).expect("a CT image with CTDIvol")
        })
        .collect();
    assert_eq!(images[0].irradiation_event_uid, event);
    renkei_dose::ssde::from_images(&mut report, &images);
    let EventData::Ct(first) = &report.events[0].data else { panic!("a CT event") };
    let ssde = first.ssde.expect("an SSDE from the images");
    assert_eq!((ssde.method, ssde.diameter_cm), (SsdeMethod::WaterEquivalentDiameter, Some(25.0)), "their mean");
    let expected = renkei_dose::ssde::factor(first.phantom.expect("a phantom"), 25.0).unwrap() * first.ctdivol.unwrap();
    assert!(close(Some(ssde.mgy), expected));
    let EventData::Ct(second) = &report.events[1].data else { panic!("a CT event") };
    assert_eq!(second.ssde, None, "no images of it");
    // What the device reported stands.
    let mut kept = reported.clone();
    renkei_dose::ssde::from_images(&mut kept, &images);
    assert_eq!(kept, reported);
}

#[test]
fn drl_editions_are_data_and_compare_by_age() {
    assert_eq!(drl::editions().iter().map(|e| e.edition.as_str()).collect::<Vec<_>>(), ["2020", "2025"]);
    assert_eq!(drl::edition_on("20240101").edition, "2020");
    assert_eq!(drl::edition_on("2025-07-07").edition, "2025");
    assert_eq!(drl::current().edition, "2025");
    let mut report = read(&ct_rdsr(&ct_report(Syntax::EXPLICIT_LE, Codes::Current)), Syntax::EXPLICIT_LE);
    let comparisons = drl::compare(&report, drl::current(), "ct.head");
    let ctdivol = comparisons.iter().find(|c| c.metric == Metric::Ctdivol).unwrap();
    assert_eq!((ctdivol.value, ctdivol.level), (62.5, 67.0));
    assert!(!ctdivol.exceeds());
    let dlp = comparisons.iter().find(|c| c.metric == Metric::Dlp).unwrap();
    assert!(dlp.ratio < 1.0 && dlp.level == 1260.0);
    assert!(drl::compare(&report, drl::edition_on("2021-01-01"), "ct.head").iter().all(|c| c.level != 67.0));
    // A six-year-old is compared with the 5–10 year paediatric level, not the adult one.
    report.patient.age_years = Some(6.0);
    assert!(drl::compare(&report, drl::current(), "ct.head").is_empty());
    let child = drl::compare(&report, drl::current(), "ct.child_head");
    assert!(child.iter().any(|c| c.metric == Metric::Ctdivol && c.level == 44.0 && c.exceeds()));
}

#[test]
fn categories_are_suggested_from_descriptions() {
    let best = |kind, text: &str| drl::suggest(kind, &[text]).first().map(|(c, _)| c.clone());
    assert_eq!(best(DoseKind::Ct, "頭部単純CT").as_deref(), Some("ct.head"));
    assert_eq!(best(DoseKind::Ct, "胸腹部CT 造影").as_deref(), Some("ct.chest_pelvis"));
    assert_eq!(best(DoseKind::Ct, "ＣＨＥＳＴ　ＲＯＵＴＩＮＥ").as_deref(), Some("ct.chest"), "full-width text folds");
    assert_eq!(best(DoseKind::Ct, "Perfusion"), None, "pe is a word, not a prefix");
    assert_eq!(best(DoseKind::Projection, "PCI LAD").as_deref(), Some("ivr.pci"));
    assert_eq!(best(DoseKind::NuclearMedicine, "FDG PET 全身").as_deref(), Some("nm.fdg"));
    assert!(drl::categories().iter().any(|c| c.id == "ct.trauma" && c.kind == DoseKind::Ct));
}

#[test]
fn a_drl_table_with_a_wrong_unit_is_refused() {
    let table = "edition\tx\neffective\t2030-01-01\nsource\ts\nprovenance\tp\ncategory\tkind\tname_ja\tname_en\tage_from\tage_to\tmetric\tunit\tvalue\nct.head\tct\t頭部\tHead\t\t\tdlp\tmGy\t1000\n";
    assert_eq!(drl::parse(table).unwrap_err().line, 6);
    assert!(drl::parse(&table.replace("dlp\tmGy\t", "dlp\tmGy.cm\t")).is_ok());
}
