//! The standard data dictionary, for the one thing Renkei needs it for: the VR of an element
//! in an implicit-VR data set.

use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;

/// The VR of an implicit-VR element: from the standard dictionary, `UL` for group lengths,
/// `UN` for private and unknown tags. Where the dictionary allows several VRs, the first.
pub fn implicit_vr(tag: u32) -> [u8; 2] {
    if tag & 0xFFFF == 0 {
        return *b"UL";
    }
    match StandardDataDictionary.by_tag(dicom_core::Tag((tag >> 16) as u16, tag as u16)) {
        Some(entry) => {
            let vr = entry.vr.relaxed().to_string().as_bytes();
            [vr[0], vr[1]]
        }
        None => *b"UN",
    }
}
