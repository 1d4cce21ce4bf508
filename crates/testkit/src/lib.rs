//! Synthetic DICOM for Renkei's tests and benchmarks. Never real patient data.
//!
//! - [`generate`]: deterministic instances (CT, MR, CR, US multi-frame, RDSR, PDF, a private
//!   class) in every uncompressed transfer syntax, deflate and RLE (both real encodings), and
//!   Part-10 files.
//! - [`corpus`]: a multi-facility corpus written to a folder.
//! - [`fill`]: synthetic index rows, recorded through the real store, for the scale benchmark.
//! - [`exams`]: synthetic dose exams, written through the real store, for the dose benchmark view.
//! - [`http`]: the minimal keep-alive HTTP client of the STOW-RS benchmark.
//! - [`s3`]: a real S3-compatible server on loopback, which survives being killed.
//!
//! The `renkei-testkit` binary exposes them, with `send` and `stow`, the benchmark's load
//! generators.

pub mod corpus;
pub mod dose;
pub mod exams;
pub mod fill;
pub mod generate;
pub mod http;
pub mod s3;
