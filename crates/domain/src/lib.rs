//! Renkei's domain model. Pure data and rules, no I/O.
//!
//! - [`ids`]: validated newtypes for facility ids, AE titles and UIDs.
//! - [`model`]: facilities, DICOM nodes, and the index record extracted from each stored instance.
//! - [`dose`]: radiation dose records (線量管理) in canonical units: devices, events, totals.
//! - [`mpi`]: the master patient index: patient records, persons, links and their history.
//! - [`names`]: person-name component groups and their strict and fuzzy search keys.
//! - [`query`]: query levels, the attributes Renkei indexes, and PS3.4 C.2 matching semantics.
//! - [`sharing`]: publications between facilities, break-glass access, the access audit.
//! - [`tier`]: storage tiers, the lifecycle rule, study ages and their report buckets.
//! - [`error`]: the transport-neutral error kind every protocol maps in its own way.

pub mod dose;
pub mod error;
pub mod ids;
pub mod model;
pub mod mpi;
pub mod names;
pub mod query;
pub mod sharing;
pub mod tier;

pub use error::ErrorKind;
pub use ids::{AeTitle, FacilityId, IdError, Uid};
