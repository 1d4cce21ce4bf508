//! HTTP: health now, DICOMweb and the console later.
