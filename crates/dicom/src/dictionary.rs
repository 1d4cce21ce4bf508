//! The standard data dictionary, for the one thing Renkei needs it for: the VR of an element
//! in an implicit-VR data set.

use dicom_core::dictionary::{DataDictionary, VirtualVr};
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

/// Whether the dictionary gives the element "US or SS": its VR then follows Pixel
/// Representation (SS when it is 1).
pub fn follows_pixel_representation(tag: u32) -> bool {
    StandardDataDictionary
        .by_tag(dicom_core::Tag((tag >> 16) as u16, tag as u16))
        .is_some_and(|entry| matches!(entry.vr, VirtualVr::Xs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pixel_padding_value_follows_pixel_representation() {
        assert!(super::follows_pixel_representation(0x0028_0120));
        assert!(!super::follows_pixel_representation(0x0028_0010));
        assert_eq!(super::implicit_vr(0x0028_0010), *b"US");
    }
}
