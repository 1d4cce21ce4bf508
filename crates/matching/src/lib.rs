//! Patient matching (名寄せ) for the master patient index. Pure computation, no I/O.
//!
//! A facility-local patient record is matched on what DICOM and the HIS reliably carry: the
//! name in kana, kanji and romaji, the birth date and the sex. The pipeline:
//!
//! - [`keys`]: raw values are kept; match keys are derived from them. Strict and loose kana
//!   (romaji is read into kana), kanji folded through the shipped 異体字 table
//!   ([`variants`]), the birth date, the sex.
//! - [`compare`]: each pair of records gets one discrete level per field, from "exact"
//!   through "equal once folded" and "close" to "different" (or "missing").
//! - [`model`]: Fellegi–Sunter. Each level has m = P(level | same person) and
//!   u = P(level | different people); the match weight is the prior plus the sum of
//!   log2(m/u), with u adjusted by term frequency for common names. Every score can be
//!   explained field by field.
//! - [`train`]: u from random pairs, m by expectation maximisation on blocked pairs,
//!   as Splink does.
//! - [`link`]: blocking (a union of cheap keys), scoring and clustering under two
//!   thresholds: auto-link above the upper one, review between them.
//! - [`evaluate`]: precision, recall and F1 over pairs and clusters against a known truth.

pub mod compare;
pub mod evaluate;
pub mod keys;
pub mod link;
pub mod model;
pub mod parallel;
pub mod train;
pub mod variants;

pub use compare::{Comparison, Field};
pub use keys::{BirthDate, Keys, NameParts, Record, Sex};
pub use link::{Linkage, ScoredPair, link};
pub use model::{Explanation, Grade, Model, Thresholds};
