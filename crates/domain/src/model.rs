//! Facilities, DICOM nodes, and what is indexed of each stored instance.

use serde::{Deserialize, Serialize};

use crate::ids::{AeTitle, FacilityId, Uid};

/// A facility with the calling AE titles of its modalities and PACS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facility {
    pub id: FacilityId,
    pub name: String,
    pub ae_titles: Vec<AeTitle>,
}

/// A DICOM node of a facility that Renkei can open associations to (C-MOVE destinations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub ae_title: AeTitle,
    pub facility: FacilityId,
    pub host: String,
    pub port: u16,
}

/// The content address of a stored blob: the BLAKE3 hash of its bytes, in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobHash(pub String);

/// The attributes indexed for one received instance, decoded to text.
///
/// Text values are as decoded from the dataset, without padding. `None` means absent,
/// `Some("")` means present but empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedAttributes {
    pub specific_character_set: Option<String>,
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub study_id: Option<String>,
    pub study_description: Option<String>,
    pub referring_physician_name: Option<String>,
    pub modality: Option<String>,
    pub series_number: Option<String>,
    pub series_description: Option<String>,
    pub body_part_examined: Option<String>,
    pub series_date: Option<String>,
    pub series_time: Option<String>,
    pub instance_number: Option<String>,
    /// Codes of what was wrong with the text encoding but could be read anyway.
    pub text_warnings: Vec<String>,
}

/// Everything the index needs to record one received instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    pub facility: FacilityId,
    pub study_uid: Uid,
    pub series_uid: Uid,
    pub sop_instance_uid: Uid,
    pub sop_class_uid: Uid,
    pub transfer_syntax_uid: Uid,
    pub blob: BlobHash,
    pub size: u64,
    pub attributes: IndexedAttributes,
    /// It may carry radiation dose (a dose SR, a CT image): the dose extractor reads it
    /// once it is stored.
    pub dose_source: bool,
}

/// What storing an instance did to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A SOP Instance UID the facility did not have before.
    Created,
    /// The same UID with the same bytes: nothing changed.
    Duplicate,
    /// The same UID with different bytes: the new object is current, the old one kept as a version.
    NewVersion,
}

/// Where a stored instance's bytes are and how to send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    pub study_uid: Uid,
    pub series_uid: Uid,
    pub sop_instance_uid: Uid,
    pub sop_class_uid: Uid,
    pub transfer_syntax_uid: Uid,
    pub blob: BlobHash,
    pub size: u64,
    /// The study's date as a `YYYYMMDD` key, if it has a valid one (for the retrieval log).
    pub study_date: Option<String>,
    /// Set when another facility shares the instance: it then goes out under the viewing
    /// facility's own patient (the stored bytes stay as they are).
    pub shared: Option<crate::sharing::Shared>,
}

/// Counts of what a facility holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FacilityStats {
    pub facility: String,
    pub name: String,
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    pub bytes: u64,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search and retrieve.
    Viewer,
    /// Search, retrieve and store.
    Uploader,
    /// Everything, at every facility.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Uploader => "uploader",
            Self::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "viewer" => Some(Self::Viewer),
            "uploader" => Some(Self::Uploader),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Who a request acts for: one facility with a role, or an administrator of all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None` only for administrators.
    pub facility: Option<FacilityId>,
    pub role: Role,
}

impl Principal {
    /// Whether this principal may see the data of `facility`.
    pub fn sees(&self, facility: &FacilityId) -> bool {
        self.role == Role::Admin || self.facility.as_ref() == Some(facility)
    }

    /// Whether this principal may store objects.
    pub fn may_store(&self) -> bool {
        matches!(self.role, Role::Uploader | Role::Admin)
    }
}
