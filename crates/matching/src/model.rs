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

/// The model a new index starts with (see [`Model::shipped`]).
const SHIPPED: &str = include_str!("../data/default-model.json");

pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

pub fn weight_of(probability: f64) -> f64 {
    let p = probability.clamp(EPSILON, 1.0 - EPSILON);
    (p / (1.0 - p)).log2()
}

impl Model {
    /// The model a new index starts with, until `renkei mpi rebuild` estimates one from the
    /// hub's own records: estimated on the synthetic population of `bench/mpi_population.py`
    /// (100,000 records), without its name frequencies (they describe synthetic names), and
    /// with m of a wholly different birth date raised from nothing to 0.002, since real
    /// registrations have worse errors than the generator makes.
    pub fn shipped() -> Model {
        Model::from_json(SHIPPED).expect("the shipped model parses")
    }

    /// This model for a population of `records`. The prior scales with it (matches grow with
    /// the records, pairs with their square), but never rises above the trained one: a hub
    /// that has just started would otherwise link on the faintest agreement.
    pub fn for_population(&self, records: usize) -> Model {
        let mut model = self.clone();
        if self.trained_on > 1 {
            let records = records.max(self.trained_on);
            model.prior = (self.prior * self.trained_on as f64 / records as f64).clamp(1e-12, 0.5);
        }
        model
    }

    /// Compares and weighs two records.
    pub fn score(&self, a: &Keys, b: &Keys) -> f64 {
        self.weight(a, b, &crate::compare::compare(a, b))
    }

    /// The match weight of two records already compared, in bits.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Record;

    fn keys(name: &str, birth_date: &str, sex: &str) -> Keys {
        Keys::of(&Record { name: name.into(), birth_date: birth_date.into(), sex: sex.into() })
    }

    #[test]
    fn the_shipped_model_links_variants_reviews_marriages_and_rejects_twins() {
        let model = Model::shipped().for_population(100_000);
        let hanako = keys("Yamada^Hanako=山田^花子=ヤマダ^ハナコ", "19800102", "F");
        let grade = |other: &Keys| model.grade(model.score(&hanako, other));
        assert_eq!(grade(&keys("=髙田^花子=ﾔﾏﾀﾞ^ﾊﾅｺ", "19800102", "F")), Grade::Certain, "variants");
        assert_eq!(grade(&keys("=山田^花子=ヤマダ^ハナコ", "20430102", "F")), Grade::Certain, "昭和55 written as 令和");
        let married = grade(&keys("=佐藤^花子=サトウ^ハナコ", "19800102", "F"));
        assert!(matches!(married, Grade::Probable | Grade::Possible), "a new surname goes to review: {married:?}");
        assert_eq!(grade(&keys("=山田^桃子=ヤマダ^モモコ", "19800102", "F")), Grade::CertainlyNot, "a twin");
        assert_eq!(grade(&keys("=山田^花子=ヤマダ^ハナコ", "19650709", "F")), Grade::CertainlyNot, "a namesake");
    }

    #[test]
    fn explanations_add_up_to_the_score() {
        let model = Model::shipped();
        let a = keys("=山田^花子=ヤマダ^ハナコ", "19800102", "F");
        let b = keys("=山田^花子=ヤマダ^ハナコ", "19800112", "");
        let explanation = model.explain(&a, &b, &crate::compare::compare(&a, &b));
        assert!((explanation.weight - model.score(&a, &b)).abs() < 1e-9);
        let total: f64 = explanation.prior_weight + explanation.terms.iter().map(|t| t.weight).sum::<f64>();
        assert!((explanation.weight - total).abs() < 1e-9);
        let levels: Vec<&str> = explanation.terms.iter().map(|t| t.level.as_str()).collect();
        assert_eq!(levels, ["exact", "exact", "one digit or day/month swapped", "missing"]);
        assert_eq!(explanation.terms[3].weight, 0.0, "a missing value weighs nothing");
    }

    #[test]
    fn a_larger_population_lowers_the_prior() {
        let model = Model::shipped();
        assert!(model.for_population(model.trained_on * 10).prior < model.prior / 9.0);
        assert!(model.for_population(1).prior == model.prior, "a small hub keeps the trained prior");
    }
}
