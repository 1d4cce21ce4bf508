//! Sharing studies between facilities (公開設定): publications with the patient's consent,
//! emergency (break-glass) access, and the audit of every cross-facility access.
//!
//! A facility sees another's study only when both hold:
//! - a current publication covers it (or the facility opened a break-glass access), and
//! - the facility's own patient is linked (名寄せ) to the same person as the study's patient.
//!
//! It then sees the study under its own patient: that patient's ID, issuer, name, birth
//! date and sex, never the origin's.

use serde::{Deserialize, Serialize};

use crate::ids::FacilityId;
use crate::mpi::Actor;

/// What a publication covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Published {
    /// One study of the patient.
    Study { study_uid: String },
    /// Every study of the patient, including those that arrive while it runs.
    Patient,
}

/// Who a publication is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every other facility of the group.
    Group,
    /// These facilities.
    Facilities(Vec<FacilityId>),
}

/// The patient's consent to a publication, as recorded by the publishing facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Who consented: the patient, or their proxy (and in what capacity).
    pub given_by: String,
    /// Unix seconds.
    pub given_at: i64,
    /// What the consent covers, in the words of the consent form.
    pub scope: String,
}

/// A facility's patient, as the facility itself identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRef {
    pub facility: FacilityId,
    pub patient_id: String,
    pub issuer: String,
}

/// A publication to be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPublication {
    pub patient: PatientRef,
    pub published: Published,
    pub audience: Audience,
    /// Unix seconds: visible from `starts_at` up to, not including, `ends_at`.
    pub starts_at: i64,
    pub ends_at: i64,
    pub consent: Consent,
    pub created_by: String,
}

/// A recorded publication; never deleted, revoking keeps who, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub id: i64,
    #[serde(flatten)]
    pub publication: NewPublication,
    pub created_at: i64,
    pub revoked: Option<Revocation>,
}

impl Publication {
    /// Whether it grants access at `now`.
    pub fn is_current(&self, now: i64) -> bool {
        self.revoked.is_none() && self.publication.starts_at <= now && now < self.publication.ends_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub by: Actor,
    pub at: i64,
}

/// An emergency access to be recorded: a facility sees every study of the person its
/// patient is linked to, at every facility, without a publication, for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBreakGlass {
    pub patient: PatientRef,
    pub opened_by: Actor,
    pub starts_at: i64,
    pub ends_at: i64,
}

/// A recorded break-glass access: flagged until an administrator has reviewed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub id: i64,
    #[serde(flatten)]
    pub access: NewBreakGlass,
    pub reviewed: Option<Review>,
    /// Ended before its time (its `ends_at` is then when).
    pub closed: Option<Revocation>,
}

impl BreakGlass {
    /// Whether it grants access at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        self.access.starts_at <= now && now < self.access.ends_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub by: Actor,
    pub at: i64,
}

/// Why a facility may see another's study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grant {
    Publication(i64),
    /// Flagged: seen only through an emergency access.
    BreakGlass(i64),
}

impl Grant {
    /// The grant given by a publication and a break-glass access, either or both: a
    /// publication, when there is one, so that only what nothing but a break-glass access
    /// shows is flagged.
    pub fn of(publication: Option<i64>, break_glass: Option<i64>) -> Option<Grant> {
        match (publication, break_glass) {
            (Some(id), _) => Some(Self::Publication(id)),
            (None, Some(id)) => Some(Self::BreakGlass(id)),
            (None, None) => None,
        }
    }

    pub fn is_break_glass(self) -> bool {
        matches!(self, Self::BreakGlass(_))
    }
}

/// How a study another facility shares is seen: under the viewing facility's own patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub origin: FacilityId,
    /// The origin's patient, as the origin identifies it.
    pub origin_patient_id: String,
    pub origin_issuer: String,
    /// The viewing facility's own patient, linked to the same person.
    pub local: LocalPatient,
    pub grant: Grant,
}

impl Shared {
    /// The origin's Issuer of Patient ID, or the origin facility when it named none: what
    /// Other Patient IDs carries beside the origin's ID.
    pub fn origin_issuer(&self) -> &str {
        if self.origin_issuer.is_empty() { self.origin.as_str() } else { &self.origin_issuer }
    }
}

/// The patient attributes a shared study is shown with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPatient {
    pub patient_id: String,
    pub issuer: String,
    pub name: String,
    pub birth_date: String,
    pub sex: String,
}

/// How a cross-facility access happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// The study was among search results (C-FIND, QIDO-RS).
    Query,
    /// Its objects were sent (C-GET, C-MOVE, WADO-RS).
    Retrieve,
}

impl AccessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Retrieve => "retrieve",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "query" => Some(Self::Query),
            "retrieve" => Some(Self::Retrieve),
            _ => None,
        }
    }
}

/// One facility's access to a study another facility shares: the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedAccess {
    /// Unix seconds.
    pub at: i64,
    /// The facility that looked.
    pub facility: FacilityId,
    /// How it came: the calling AE title, or the token's role.
    pub via: String,
    pub origin: FacilityId,
    pub study_uid: String,
    pub kind: AccessKind,
    pub grant: Grant,
}
