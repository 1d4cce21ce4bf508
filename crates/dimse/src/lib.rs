//! DIMSE over dicom-ul: message layer, the archive's SCP and a small SCU.
