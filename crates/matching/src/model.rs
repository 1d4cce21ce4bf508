//! The Fellegi–Sunter model: per field and level, m = P(level | same person) and
//! u = P(level | different people). A pair's match weight is the prior's log-odds plus the
//! sum over fields of log2(m/u); its match probability is 2^w / (1 + 2^w).
//!
//! Agreement on a common name says less than agreement on a rare one: at the levels where
//! the kana of a name part agree, u is that name's own frequency (the larger of the two
//! records') wherever the name is common enough to have been counted.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::compare::{Comparison, EXACT, Field, MISSING, READING_AGREES};
use crate::keys::Keys;

/// Probabilities are kept inside this margin, so that no level weighs infinitely.
const EPSILON: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The probability that two records drawn at random are the same person.
    pub prior: f64,
    /// m and u of each field, indexed like [`Field::ALL`]; index 0 (missing) is unused.
    pub fields: Vec<Levels>,
    pub term_frequencies: TermFrequencies,
    pub thresholds: Thresholds,
    /// How many records the model was estimated on.
    pub trained_on: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    pub field: Field,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

/// Frequencies of common loose kana names, as a share of all records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TermFrequencies {
    pub family: HashMap<String, f64>,
    pub given: HashMap<String, f64>,
}

/// The two decision thresholds, as match probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// At or above: linked automatically.
    pub auto_link: f64,
    /// At or above (and below `auto_link`): a candidate for review. Below: nothing.
    pub review: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { auto_link: 0.99, review: 0.8 }
    }
}

/// How sure a match is, in FHIR's match-grade terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grade {
    /// At or above the auto-link threshold.
    Certain,
    /// In the upper half (by weight) of the review band.
    Probable,
    /// In the lower half of the review band.
    Possible,
    /// Below the review threshold.
    CertainlyNot,
}

/// A score taken apart field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The prior's log-odds, in bits: where every pair starts.
    pub prior_weight: f64,
    pub terms: Vec<Term>,
    pub weight: f64,
    pub probability: f64,
    pub grade: Grade,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    pub field: Field,
    pub level: String,
    /// log2(m/u), in bits, including any term-frequency adjustment.
    pub weight: f64,
    /// The part of `weight` that the name's own frequency contributed.
    pub term_frequency_adjustment: f64,
}

pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

pub fn weight_of(probability: f64) -> f64 {
    let p = probability.clamp(EPSILON, 1.0 - EPSILON);
    (p / (1.0 - p)).log2()
}

impl Model {
    /// The match weight of two records, in bits.
    pub fn weight(&self, a: &Keys, b: &Keys, levels: &Comparison) -> f64 {
        let mut total = weight_of(self.prior);
        for (index, level) in levels.iter().enumerate() {
            total += self.term(index, *level, a, b).0;
        }
        total
    }

    /// The weight of one field's level, and the part of it due to term frequency.
    pub(crate) fn term(&self, index: usize, level: u8, a: &Keys, b: &Keys) -> (f64, f64) {
        if level == MISSING {
            return (0.0, 0.0);
        }
        let levels = &self.fields[index];
        let (m, u) = (levels.m[level as usize], levels.u[level as usize]);
        let base = (m / u).log2();
        let frequency = match levels.field {
            Field::FamilyName if READING_AGREES.contains(&level) => {
                common_frequency(&self.term_frequencies.family, a.kana.family.as_ref(), b.kana.family.as_ref())
            }
            Field::GivenName if READING_AGREES.contains(&level) => {
                common_frequency(&self.term_frequencies.given, a.kana.given.as_ref(), b.kana.given.as_ref())
            }
            _ => None,
        };
        // A common name's agreement is worth what its own frequency says: at the exact
        // level u becomes the name's frequency, and the levels below it (the same reading
        // spelled otherwise) lose as much. Rarer names than average gain nothing.
        let u_exact = levels.u[EXACT as usize];
        match frequency {
            Some(frequency) if frequency > u_exact => {
                let adjustment = (u_exact / frequency).log2();
                (base + adjustment, adjustment)
            }
            _ => (base, 0.0),
        }
    }

    pub fn grade(&self, weight: f64) -> Grade {
        let (auto, review) = (weight_of(self.thresholds.auto_link), weight_of(self.thresholds.review));
        if weight >= auto {
            Grade::Certain
        } else if weight >= (auto + review) / 2.0 {
            Grade::Probable
        } else if weight >= review {
            Grade::Possible
        } else {
            Grade::CertainlyNot
        }
    }

    pub fn explain(&self, a: &Keys, b: &Keys, levels: &Comparison) -> Explanation {
        let prior_weight = weight_of(self.prior);
        let terms: Vec<Term> = levels
            .iter()
            .enumerate()
            .map(|(index, level)| {
                let (weight, term_frequency_adjustment) = self.term(index, *level, a, b);
                let field = Field::ALL[index];
                Term { field, level: field.levels()[*level as usize].to_owned(), weight, term_frequency_adjustment }
            })
            .collect();
        let weight = prior_weight + terms.iter().map(|t| t.weight).sum::<f64>();
        Explanation { prior_weight, terms, weight, probability: probability(weight), grade: self.grade(weight) }
    }

    /// Reads a model saved by [`Model::to_json`].
    pub fn from_json(text: &str) -> Result<Model, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Clamps every probability away from 0 and 1.
    pub(crate) fn clamped(mut self) -> Model {
        for levels in &mut self.fields {
            for p in levels.m.iter_mut().chain(levels.u.iter_mut()) {
                *p = p.clamp(EPSILON, 1.0 - EPSILON);
            }
        }
        self.prior = self.prior.clamp(1e-12, 1.0 - EPSILON);
        self
    }
}

fn common_frequency(
    table: &HashMap<String, f64>,
    a: Option<&crate::keys::Kana>,
    b: Option<&crate::keys::Kana>,
) -> Option<f64> {
    let of = |kana: Option<&crate::keys::Kana>| kana.and_then(|k| table.get(&k.loose)).copied();
    match (of(a), of(b)) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}
