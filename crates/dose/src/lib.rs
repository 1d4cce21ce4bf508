//! Radiation dose management (線量管理). Pure computation, no I/O.
//!
//! - [`sr`]: a Structured Report's content tree, from the walker's tree of the object.
//! - [`codes`]: the concepts read, each under its current and legacy codes (DCM, SCT, SRT).
//! - [`units`]: UCUM unit codes converted to each quantity's canonical unit.
//! - [`extract`]: the dose report of an X-Ray Radiation Dose SR (CT: TID 10011; projection
//!   and mammography: TID 10001), an Enhanced one, or a Radiopharmaceutical one (TID 10021).
//! - [`exam`]: a study's reports of one kind merged, each irradiation event once.
//! - [`header`]: the dose of a CT study without an RDSR, from its images' CTDIvol.
//! - [`ssde`]: size-specific dose estimates (AAPM 204/220).
//! - [`alerts`]: exams over their DRL or a facility's threshold; patients over a rolling
//!   cumulative threshold.
//! - [`drl`]: the Japanese DRL editions shipped as data files, exam metrics, comparisons
//!   and category suggestions from descriptions.

pub mod alerts;
pub mod codes;
pub mod drl;
pub mod exam;
pub mod extract;
pub mod header;
pub mod sr;
pub mod ssde;
pub mod units;

pub use extract::{NotADoseReport, dose_report, may_hold_dose_report};

/// The SOP classes whose objects may carry dose: dose SRs (and the general SRs some CTs put
/// their dose tree in), and CT images (for studies without an RDSR).
pub const DOSE_SOURCE_CLASSES: [&str; 8] = [
    extract::RDSR,
    extract::RADIOPHARMACEUTICAL_RDSR,
    extract::ENHANCED_RDSR,
    extract::GENERAL_SR[0],
    extract::GENERAL_SR[1],
    extract::GENERAL_SR[2],
    header::CT_IMAGE,
    header::ENHANCED_CT_IMAGE,
];

pub fn is_dose_source(sop_class: &str) -> bool {
    DOSE_SOURCE_CLASSES.contains(&sop_class)
}
