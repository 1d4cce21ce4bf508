//! The master patient index (名寄せ): every facility-local patient is a record; links join
//! records into persons.
//!
//! A link is automatic, manual, a candidate for review, or "known not the same". Links are
//! never deleted: a link that no longer holds is retired, with who, when and why, so every
//! decision can be traced and undone. A person is exactly one connected component of the
//! automatic and manual links (never spanning a "known not the same" pair), and keeps its
//! id for as long as most of its records stay together.

use serde::{Deserialize, Serialize};

use crate::FacilityId;

/// A facility-local patient record: the archive's patient row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub i64);

/// A person: the records linked as one human being.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub i64);

/// A facility's patient as the index knows it: raw values, never rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    pub id: RecordId,
    pub facility: FacilityId,
    pub patient_id: String,
    pub issuer: String,
    /// The decoded Patient's Name (`alphabetic=ideographic=phonetic`); empty when absent.
    pub name: String,
    pub birth_date: String,
    pub sex: String,
    pub person: Option<PersonId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Scored at or above the auto-link threshold.
    Auto,
    /// Linked by a person.
    Manual,
    /// Scored in the review band: waits for a person to accept or reject it.
    Candidate,
    /// Known not the same person: never joined, whatever the score.
    Different,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Auto => "auto",
            LinkKind::Manual => "manual",
            LinkKind::Candidate => "candidate",
            LinkKind::Different => "different",
        }
    }

    pub fn parse(value: &str) -> Option<LinkKind> {
        [LinkKind::Auto, LinkKind::Manual, LinkKind::Candidate, LinkKind::Different]
            .into_iter()
            .find(|k| k.as_str() == value)
    }

    /// Whether the matcher made it (and may retire it when scores change). People's
    /// decisions are retired only by people.
    pub fn is_scored(self) -> bool {
        matches!(self, LinkKind::Auto | LinkKind::Candidate)
    }

    /// Whether it joins its records into one person.
    pub fn joins(self) -> bool {
        matches!(self, LinkKind::Auto | LinkKind::Manual)
    }
}

/// Who did something to the index, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `matcher` for the matching engine; otherwise the person or token that acted.
    pub who: String,
    pub why: String,
}

impl Actor {
    pub fn matcher(why: impl Into<String>) -> Actor {
        Actor { who: "matcher".into(), why: why.into() }
    }
}

/// A link between two records, current or retired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub id: i64,
    /// The smaller record id.
    pub a: RecordId,
    pub b: RecordId,
    pub kind: LinkKind,
    /// The match weight (bits) when it was scored.
    pub weight: Option<f64>,
    pub created_by: Actor,
    /// Unix seconds.
    pub created_at: i64,
    pub retired: Option<Retirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub by: Actor,
    pub at: i64,
}

impl Link {
    /// The other end of this link from `record`.
    pub fn other(&self, record: RecordId) -> RecordId {
        if self.a == record { self.b } else { self.a }
    }
}

/// A link to add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLink {
    pub a: RecordId,
    pub b: RecordId,
    pub kind: LinkKind,
    pub weight: Option<f64>,
    pub by: Actor,
}

impl NewLink {
    /// A link between `x` and `y`, in either order.
    pub fn between(x: RecordId, y: RecordId, kind: LinkKind, weight: Option<f64>, by: Actor) -> NewLink {
        NewLink { a: x.min(y), b: x.max(y), kind, weight, by }
    }

    /// The other end of this link from `record`.
    pub fn other(&self, record: RecordId) -> RecordId {
        if self.a == record { self.b } else { self.a }
    }
}

/// Records that become one person: an existing one, or a new one when `person` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonAssignment {
    pub person: Option<PersonId>,
    pub records: Vec<RecordId>,
}

/// What one round of matching decided, written as one transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchOutcome {
    /// Records now matched, each with the change counter it was read at: one changed
    /// since stays pending.
    pub matched: Vec<(RecordId, i64)>,
    /// The blocking keys of each matched record, replacing its old ones.
    pub keys: Vec<(RecordId, Vec<String>)>,
    /// Set by a rebuild: `keys` holds every record's, and replaces every key there is.
    pub all_keys: bool,
    /// Links to retire, by id.
    pub retire: Vec<i64>,
    pub retired_by: Option<Actor>,
    pub add: Vec<NewLink>,
    pub persons: Vec<PersonAssignment>,
}

/// How far the index is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiStats {
    pub records: u64,
    pub pending: u64,
    pub persons: u64,
    /// Persons with records at more than one facility.
    pub persons_across_facilities: u64,
    pub candidates: u64,
}
