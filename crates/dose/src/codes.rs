//! The concepts dose extraction reads, each as every (coding scheme, code value) that means
//! it. Devices built before DICOM moved from SNOMED RT (`SRT`) to SNOMED CT (`SCT`) in 2019
//! still send the old codes, and a few send UMLS; code meanings differ between vendors and
//! versions, so they are never compared.

/// One concept under all the codes that denote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concept(pub &'static [(&'static str, &'static str)]);

impl Concept {
    pub fn matches(self, scheme: &str, value: &str) -> bool {
        self.0.iter().any(|(s, v)| *v == value && s.eq_ignore_ascii_case(scheme.trim()))
    }
}

macro_rules! dcm {
    ($($name:ident = $value:literal;)*) => {
        $(pub const $name: Concept = Concept(&[("DCM", $value)]);)*
    };
}

// Document roots and what a report is about (TID 10001, 10011, 10021).
dcm! {
    XRAY_RADIATION_DOSE_REPORT = "113701";
    RADIOPHARMACEUTICAL_RADIATION_DOSE_REPORT = "113500";
    PROCEDURE_REPORTED = "121058";
    PROJECTION_XRAY = "113704";
    DEVICE_OBSERVER_UID = "121012";
    START_OF_XRAY_IRRADIATION = "113809";
}
pub const COMPUTED_TOMOGRAPHY: Concept = Concept(&[("SCT", "77477000"), ("SRT", "P5-08000")]);
pub const MAMMOGRAPHY: Concept = Concept(&[("SCT", "71651007"), ("SRT", "P5-40010")]);

// CT (TID 10011 to 10015).
dcm! {
    CT_ACCUMULATED_DOSE_DATA = "113811";
    TOTAL_NUMBER_OF_IRRADIATION_EVENTS = "113812";
    CT_DOSE_LENGTH_PRODUCT_TOTAL = "113813";
    CT_ACQUISITION = "113819";
    ACQUISITION_PROTOCOL = "125203";
    TARGET_REGION = "123014";
    CT_ACQUISITION_TYPE = "113820";
    IRRADIATION_EVENT_UID = "113769";
    EXPOSURE_TIME = "113824";
    SCANNING_LENGTH = "113825";
    TOTAL_COLLIMATION_WIDTH = "113827";
    PITCH_FACTOR = "113828";
    KVP = "113733";
    MAXIMUM_XRAY_TUBE_CURRENT = "113833";
    XRAY_TUBE_CURRENT = "113734";
    MEAN_CTDIVOL = "113830";
    CTDIW_PHANTOM_TYPE = "113835";
    IEC_HEAD_PHANTOM = "113690";
    IEC_BODY_PHANTOM = "113691";
    DLP = "113838";
    SIZE_SPECIFIC_DOSE_ESTIMATE = "113930";
    DOSE_CHECK_ALERT_DETAILS = "113900";
    DLP_ALERT_VALUE = "113903";
    CTDIVOL_ALERT_VALUE = "113904";
    ACCUMULATED_DLP_FORWARD_ESTIMATE = "113905";
    ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE = "113906";
    REASON_FOR_PROCEEDING = "113907";
    DOSE_CHECK_NOTIFICATION_DETAILS = "113908";
    DLP_NOTIFICATION_VALUE = "113911";
    CTDIVOL_NOTIFICATION_VALUE = "113912";
    DLP_FORWARD_ESTIMATE = "113913";
    CTDIVOL_FORWARD_ESTIMATE = "113914";
}

// Projection X-ray (TID 10001 to 10005).
dcm! {
    ACCUMULATED_XRAY_DOSE_DATA = "113702";
    ACQUISITION_PLANE = "113764";
    PLANE_A = "113620";
    PLANE_B = "113621";
    SINGLE_PLANE = "113622";
    DOSE_AREA_PRODUCT_TOTAL = "113722";
    DOSE_RP_TOTAL = "113725";
    TOTAL_FLUORO_TIME = "113730";
    ACCUMULATED_AVERAGE_GLANDULAR_DOSE = "111637";
    IRRADIATION_EVENT_XRAY_DATA = "113706";
    DATETIME_STARTED = "111526";
    IRRADIATION_EVENT_TYPE = "113721";
    DOSE_AREA_PRODUCT = "122130";
    DOSE_RP = "113738";
    PULSE_RATE = "113791";
    NUMBER_OF_PULSES = "113768";
    IRRADIATION_DURATION = "113742";
    POSITIONER_PRIMARY_ANGLE = "112011";
    POSITIONER_SECONDARY_ANGLE = "112012";
    DISTANCE_SOURCE_TO_DETECTOR = "113750";
    XRAY_FILTERS = "113771";
    XRAY_FILTER_MATERIAL = "113757";
    XRAY_FILTER_THICKNESS_MINIMUM = "113758";
    XRAY_FILTER_THICKNESS_MAXIMUM = "113773";
    AVERAGE_GLANDULAR_DOSE = "111631";
    COMPRESSION_THICKNESS = "111633";
}
pub const FLUOROSCOPY: Concept = Concept(&[("SCT", "44491008"), ("SRT", "P5-06000")]);

// Radiopharmaceutical administration (TID 10021, 10022).
dcm! {
    RADIOPHARMACEUTICAL_ADMINISTRATION = "113502";
    RADIOPHARMACEUTICAL_ADMINISTRATION_EVENT_UID = "113503";
    ADMINISTERED_ACTIVITY = "113507";
    RADIOPHARMACEUTICAL_START_DATETIME = "123003";
}
pub const RADIOPHARMACEUTICAL_AGENT: Concept = Concept(&[("SCT", "349358000"), ("SRT", "F-61FDB"), ("SRT", "C-B02C9")]);
pub const RADIONUCLIDE: Concept = Concept(&[("SCT", "89457008"), ("SRT", "C-10072")]);
pub const ROUTE_OF_ADMINISTRATION: Concept = Concept(&[("SCT", "410675002"), ("SRT", "G-C340")]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concept_matches_its_old_and_new_codes_and_nothing_by_meaning() {
        assert!(COMPUTED_TOMOGRAPHY.matches("SCT", "77477000"));
        assert!(COMPUTED_TOMOGRAPHY.matches("SRT", "P5-08000"));
        assert!(COMPUTED_TOMOGRAPHY.matches("srt ", "P5-08000"));
        assert!(!COMPUTED_TOMOGRAPHY.matches("DCM", "77477000"));
        assert!(!MEAN_CTDIVOL.matches("DCM", "Mean CTDIvol"));
    }
}
