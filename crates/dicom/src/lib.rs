//! DICOM data handling that Renkei owns, on raw bytes.
//!
//! - [`syntax`]: what a transfer syntax UID means for parsing (VR explicitness, byte order, deflate).
//! - [`walk`]: a structural walker that validates a whole dataset without loading its values,
//!   capturing the top-level elements asked for. It is how ingest rejects truncated or garbled
//!   data, and how identifiers are read.
//! - [`write`]: encodes elements, for identifiers, command sets and generated test data.
//! - [`relabel`]: a stored data set written out with some top-level elements replaced.
//! - [`extract`]: the index record of a received instance.
//! - [`charset`]: Specific Character Set: ISO 2022 code extensions (Japanese above all), decode and encode.
//! - [`text`]: values that are ASCII by definition (UIDs, code strings, AE titles).
//! - [`tags`]: the tags Renkei reads by number.
//! - [`dictionary`]: the VR of an implicit-VR element, from the standard data dictionary.

pub mod charset;
pub mod dictionary;
pub mod extract;
pub mod relabel;
pub mod syntax;
pub mod tags;
pub mod text;
pub mod walk;
pub mod write;

pub use syntax::Syntax;
pub use walk::{Element, WalkError};
