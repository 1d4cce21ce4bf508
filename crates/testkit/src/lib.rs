//! Synthetic DICOM for Renkei's tests and benchmarks. Never real patient data.
//!
//! - [`generate`]: deterministic instances (CT, MR, CR, US multi-frame, RDSR, PDF, a private
//!   class) in every uncompressed transfer syntax, deflate and RLE (both real encodings), and
//!   Part-10 files.
//! - [`corpus`]: a multi-facility corpus written to a folder.
//!
//! The `renkei-testkit` binary exposes both, and `send`, the benchmark's load generator.

pub mod corpus;
pub mod generate;
