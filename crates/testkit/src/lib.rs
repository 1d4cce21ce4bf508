//! Synthetic DICOM generator and the benchmark SCU.
