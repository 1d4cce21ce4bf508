//! The dose of a CT study without an RDSR, from its images' own attributes: each image's
//! CTDIvol (0018,9345) and technique, grouped into acquisitions.
//!
//! CT image headers carry no DLP. It is estimated here as CTDIvol × the imaged length, which
//! undercounts overranging and is noted as an estimate. Several reconstructions of one
//! acquisition (thin and thick slices, other kernels) would count its dose twice: series
//! with the same CTDIvol over overlapping ranges are taken as one acquisition.

use renkei_dicom::tags::tag;
use renkei_dicom::walk::Node;
use renkei_domain::dose::{CtEvent, DoseKind, DoseReport, DoseSource, Event, EventData, ImageDose, Totals, sum_over};

use crate::extract::{device, patient_size};
use crate::sr::Reader;
use crate::ssde;

pub(crate) const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub(crate) const ENHANCED_CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2.1";
const SERIES_UID: u32 = renkei_dicom::tags::SERIES_INSTANCE_UID;
const SERIES_DESCRIPTION: u32 = tag(0x0008, 0x103E);
const PROTOCOL_NAME: u32 = tag(0x0018, 0x1030);
const SLICE_THICKNESS: u32 = tag(0x0018, 0x0050);
const KVP: u32 = tag(0x0018, 0x0060);
const EXPOSURE_TIME_MS: u32 = tag(0x0018, 0x1150);
const TUBE_CURRENT: u32 = tag(0x0018, 0x1151);
const WATER_EQUIVALENT_DIAMETER: u32 = tag(0x0018, 0x1271);
const ACQUISITION_TYPE: u32 = tag(0x0018, 0x9302);
const TOTAL_COLLIMATION: u32 = tag(0x0018, 0x9307);
const SPIRAL_PITCH: u32 = tag(0x0018, 0x9311);
const CTDIVOL: u32 = tag(0x0018, 0x9345);
const CTDI_PHANTOM: u32 = tag(0x0018, 0x9346);
const IMAGE_POSITION: u32 = tag(0x0020, 0x0032);
const IRRADIATION_EVENT_UID: u32 = tag(0x0008, 0x3010);

/// Whether an instance of this class may carry header dose attributes.
pub fn is_ct_image(sop_class: &str) -> bool {
    sop_class == CT_IMAGE || sop_class == ENHANCED_CT_IMAGE
}

/// The dose attributes of a CT image whose top level is `nodes` (`None` for other objects
/// and for CT images without CTDIvol).
pub fn image_dose(nodes: &[Node], big_endian: bool) -> Option<ImageDose> {
    let reader = Reader::new(nodes, big_endian);
    if !is_ct_image(&reader.string(nodes, renkei_dicom::tags::SOP_CLASS_UID)) {
        return None;
    }
    let ctdivol = reader.number(nodes, CTDIVOL).filter(|v| *v >= 0.0)?;
    let protocol = Some(reader.string(nodes, PROTOCOL_NAME))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| reader.string(nodes, SERIES_DESCRIPTION));
    let z = reader.strings(nodes, IMAGE_POSITION).get(2).and_then(|z| z.parse().ok());
    Some(ImageDose {
        series_uid: reader.string(nodes, SERIES_UID),
        irradiation_event_uid: reader.string(nodes, IRRADIATION_EVENT_UID),
        protocol,
        ctdivol,
        phantom: crate::sr::items(nodes, CTDI_PHANTOM).first().and_then(|item| reader.phantom(item)),
        kvp: reader.number(nodes, KVP),
        tube_current: reader.number(nodes, TUBE_CURRENT),
        exposure_time: reader.number(nodes, EXPOSURE_TIME_MS).map(|ms| ms / 1000.0),
        pitch: reader.number(nodes, SPIRAL_PITCH),
        total_collimation: reader.number(nodes, TOTAL_COLLIMATION),
        acquisition_type: reader.string(nodes, ACQUISITION_TYPE),
        z,
        slice_thickness: reader.number(nodes, SLICE_THICKNESS),
        water_equivalent_diameter: reader.number(nodes, WATER_EQUIVALENT_DIAMETER).filter(|d| *d > 0.0),
    })
}

/// One series' images, summed up.
struct Series {
    protocol: String,
    images: usize,
    ctdivol: f64,
    z: Option<(f64, f64)>,
    thickness: f64,
    first: ImageDose,
    water_equivalent_diameter: Option<f64>,
}

impl Series {
    /// The imaged length, mm: the range of slice positions plus one slice.
    fn length(&self) -> Option<f64> {
        self.z.map(|(low, high)| high - low + self.thickness)
    }

    fn overlaps(&self, other: &Series) -> bool {
        match (self.z, other.z) {
            (Some((a0, a1)), Some((b0, b1))) => a0 <= b1 && b0 <= a1,
            _ => true,
        }
    }
}

/// A study's dose from its CT images' headers: one event per acquisition. `first` is the
/// top level of one of its images (for the device, the description and the patient);
/// `uid` names the report (no SOP instance holds it).
pub fn report(uid: &str, first: &[Node], big_endian: bool, images: &[ImageDose]) -> Option<DoseReport> {
    let mut series: Vec<Series> = Vec::new();
    for image in images {
        match series.iter_mut().find(|s| s.first.series_uid == image.series_uid) {
            Some(s) => {
                s.images += 1;
                s.ctdivol += image.ctdivol;
                if let Some(z) = image.z {
                    s.z = Some(s.z.map_or((z, z), |(low, high)| (low.min(z), high.max(z))));
                }
                s.thickness = s.thickness.max(image.slice_thickness.unwrap_or(0.0));
                s.water_equivalent_diameter = s.water_equivalent_diameter.or(image.water_equivalent_diameter);
            }
            None => series.push(Series {
                protocol: image.protocol.clone(),
                images: 1,
                ctdivol: image.ctdivol,
                z: image.z.map(|z| (z, z)),
                thickness: image.slice_thickness.unwrap_or(0.0),
                first: image.clone(),
                water_equivalent_diameter: image.water_equivalent_diameter,
            }),
        }
    }
    for s in &mut series {
        s.ctdivol /= s.images as f64;
    }
    // Reconstructions of one acquisition: the same CTDIvol over overlapping ranges. The
    // longest stands for them all.
    series.sort_by(|a, b| b.length().unwrap_or(0.0).total_cmp(&a.length().unwrap_or(0.0)));
    let mut acquisitions: Vec<Series> = Vec::new();
    for s in series {
        let same = |a: &Series| (a.ctdivol - s.ctdivol).abs() <= 0.01 * a.ctdivol.max(s.ctdivol) && a.overlaps(&s);
        if !acquisitions.iter().any(same) {
            acquisitions.push(s);
        }
    }
    if acquisitions.is_empty() {
        return None;
    }
    let reader = Reader::new(first, big_endian);
    let events: Vec<Event> = acquisitions
        .iter()
        .map(|a| {
            let length = a.length().filter(|l| *l > 0.0);
            let phantom = a.first.phantom;
            let ssde = phantom
                .zip(a.water_equivalent_diameter)
                .and_then(|(phantom, dw)| ssde::from_water_equivalent_diameter(a.ctdivol, phantom, dw));
            Event {
                uid: format!("{uid}/{}", a.first.series_uid),
                protocol: a.protocol.clone(),
                target_region: String::new(),
                started: String::new(),
                data: EventData::Ct(CtEvent {
                    acquisition_type: a.first.acquisition_type.clone(),
                    ctdivol: Some(a.ctdivol),
                    dlp: length.map(|l| a.ctdivol * l / 10.0),
                    phantom,
                    scanning_length: length,
                    kvp: a.first.kvp,
                    tube_current: a.first.tube_current,
                    max_tube_current: None,
                    exposure_time: a.first.exposure_time,
                    pitch: a.first.pitch,
                    total_collimation: a.first.total_collimation,
                    ssde,
                    dose_check: false,
                }),
            }
        })
        .collect();
    let dlp = sum_over(&events, EventData::dlp);
    Some(DoseReport {
        sop_instance_uid: uid.to_owned(),
        study_uid: reader.string(first, renkei_dicom::tags::STUDY_INSTANCE_UID),
        source: DoseSource::ImageHeader,
        kind: DoseKind::Ct,
        device: device(&reader, first),
        started: format!(
            "{}{}",
            reader.string(first, crate::extract::STUDY_DATE),
            reader.string(first, crate::extract::STUDY_TIME)
        ),
        study_description: reader.string(first, crate::extract::STUDY_DESCRIPTION),
        requested_procedure: String::new(),
        patient: patient_size(&reader, first),
        totals: Totals { dlp, events: Some(events.len() as u32), ..Totals::default() },
        events,
        notes: vec!["no RDSR: doses from the images' CTDIvol, DLP estimated as CTDIvol × imaged length".into()],
    })
}
