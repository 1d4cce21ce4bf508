//! Tags Renkei reads by number, as (group << 16 | element).

pub const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
pub const SOP_CLASS_UID: u32 = 0x0008_0016;
pub const SOP_INSTANCE_UID: u32 = 0x0008_0018;
pub const QUERY_RETRIEVE_LEVEL: u32 = 0x0008_0052;
pub const RETRIEVE_AE_TITLE: u32 = 0x0008_0054;
pub const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
pub const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
pub const PIXEL_DATA: u32 = 0x7FE0_0010;
pub const ITEM: u32 = 0xFFFE_E000;
pub const ITEM_DELIMITATION: u32 = 0xFFFE_E00D;
pub const SEQUENCE_DELIMITATION: u32 = 0xFFFE_E0DD;

/// Joins a (group, element) pair into the numeric form used here.
pub const fn tag(group: u16, element: u16) -> u32 {
    ((group as u32) << 16) | element as u32
}
