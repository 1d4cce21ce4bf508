//! Size-specific dose estimates (AAPM Report 204, with Report 220's water-equivalent
//! diameter): SSDE = f(D) × CTDIvol, where f depends on the phantom the CTDIvol refers to.

use renkei_domain::dose::{DoseReport, EventData, ImageDose, Phantom, Ssde, SsdeMethod};

/// The diameters the published fits cover, cm. Outside them the estimate is refused: an
/// extrapolated factor would look precise and be wrong.
const FIT_RANGE_CM: (f64, f64) = (8.0, 45.0);

/// The conversion factor f(D) for a patient of diameter `d_cm` (AAPM 204 exponential fits).
pub fn factor(phantom: Phantom, d_cm: f64) -> Option<f64> {
    if !(FIT_RANGE_CM.0..=FIT_RANGE_CM.1).contains(&d_cm) {
        return None;
    }
    let (a, b) = match phantom {
        Phantom::Body32 => (3.704369, 0.03671937),
        Phantom::Head16 => (1.874799, 0.03871313),
    };
    Some(a * (-b * d_cm).exp())
}

/// The SSDE of `ctdivol` (mGy) for a patient of water-equivalent diameter `dw_mm`.
pub fn from_water_equivalent_diameter(ctdivol: f64, phantom: Phantom, dw_mm: f64) -> Option<Ssde> {
    let d = dw_mm / 10.0;
    Some(Ssde { mgy: ctdivol * factor(phantom, d)?, diameter_cm: Some(d), method: SsdeMethod::WaterEquivalentDiameter })
}

/// Fills in the SSDE of a report's CT events that have none, from the images each event
/// made (matched by Irradiation Event UID): their mean water-equivalent diameter. RDSRs
/// rarely carry the patient's size; the images of the same scan often do.
pub fn from_images(report: &mut DoseReport, images: &[ImageDose]) {
    for event in &mut report.events {
        let EventData::Ct(ct) = &mut event.data else { continue };
        let (None, Some(ctdivol), Some(phantom)) = (ct.ssde, ct.ctdivol, ct.phantom) else { continue };
        let diameters: Vec<f64> = images
            .iter()
            .filter(|image| !event.uid.is_empty() && image.irradiation_event_uid == event.uid)
            .filter_map(|image| image.water_equivalent_diameter)
            .collect();
        if !diameters.is_empty() {
            let mean = diameters.iter().sum::<f64>() / diameters.len() as f64;
            ct.ssde = from_water_equivalent_diameter(ctdivol, phantom, mean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_match_the_published_tables() {
        // The fits as AAPM Report 204 publishes them, to two decimals.
        let body = |d| (factor(Phantom::Body32, d).unwrap() * 100.0).round() / 100.0;
        assert_eq!(body(30.0), 1.23);
        assert_eq!(body(20.0), 1.78);
        let head = |d| (factor(Phantom::Head16, d).unwrap() * 100.0).round() / 100.0;
        assert_eq!(head(16.0), 1.01);
        assert_eq!(factor(Phantom::Body32, 60.0), None);
        assert_eq!(factor(Phantom::Body32, 5.0), None);
    }

    #[test]
    fn an_estimate_from_the_water_equivalent_diameter() {
        let ssde = from_water_equivalent_diameter(10.0, Phantom::Body32, 250.0).unwrap();
        assert!((ssde.mgy - 14.8).abs() < 0.05, "{ssde:?}");
        assert_eq!(ssde.diameter_cm, Some(25.0));
        assert_eq!(ssde.method, SsdeMethod::WaterEquivalentDiameter);
    }
}
