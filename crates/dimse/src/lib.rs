//! DIMSE for Renkei, on dicom-ul's upper layer (dicom-rs has no DIMSE layer of its own).
//!
//! - [`command`]: command sets, command fields and statuses.
//! - [`channel`]: commands and streamed data sets over P-DATA.
//! - [`identifier`]: query/retrieve identifiers to queries, and matches back to responses.
//! - [`scp`]: the archive's SCP: C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET.
//! - [`scu`]: a small SCU for C-MOVE sub-operations and the benchmark.

pub mod channel;
pub mod command;
pub mod identifier;
pub mod scp;
pub mod scu;

pub use scp::{ScpConfig, serve};
