//! Estimating the model from the records themselves, without labels, as Splink does.
//!
//! - **u** from random pairs: almost every random pair is two different people.
//! - **m** by expectation maximisation over blocked pairs, with u held fixed. A pass cannot
//!   learn the fields its blocking rule makes agree, so there are two passes.
//!   1. Pairs that share a birth date teach the name and sex levels, and how many matches
//!      share a birth date.
//!   2. Pairs that share a loose kana name teach the birth-date levels. Here the names say
//!      how likely each pair is a match, weighed by how common the name is: two strangers
//!      called サトウ ヒロシ are common, two called ミナセ アヤノ are not. Nothing else in
//!      such a pair can tell a match whose birth date was mistyped from a stranger; sex
//!      cannot either, since a given name mostly implies it.
//! - **The prior**: the matches among same-birth-date pairs, scaled up by how often
//!   matches share a birth date, over all possible pairs.
//! - **Term frequencies** of common loose kana names.

use std::collections::HashMap;

use crate::compare::{Comparison, EXACT, Field, MISSING, compare};
use crate::keys::Keys;
use crate::link::{Rule, blocks};
use crate::model::{Levels, Model, TermFrequencies, Thresholds, probability, weight_of};
use crate::parallel::joined;

#[derive(Debug, Clone, Copy)]
pub struct Training {
    /// Random pairs for u.
    pub u_pairs: usize,
    /// At most this many blocked pairs per EM pass.
    pub em_pairs: usize,
    pub em_iterations: usize,
    /// A name counts as common (and gets its own u) from this many records.
    pub common_name_records: usize,
    pub seed: u64,
}

impl Default for Training {
    fn default() -> Self {
        Training { u_pairs: 1_000_000, em_pairs: 2_000_000, em_iterations: 25, common_name_records: 5, seed: 0x5EED }
    }
}

const FAMILY: usize = 0;
const GIVEN: usize = 1;
const BIRTH_DATE: usize = 2;
const SEX: usize = 3;

/// Estimates a model from `records`. Needs a few thousand records to mean much; with
/// fewer, use a model estimated elsewhere.
pub fn train(records: &[Keys], options: &Training, thresholds: Thresholds) -> Model {
    // Three independent passes over the records, one per core where there are cores.
    let (u, term_frequencies, (by_birth_date, sharing_birth_date)) = std::thread::scope(|scope| {
        let u = scope.spawn(|| estimate_u(records, options));
        let frequencies = scope.spawn(|| term_frequencies(records, options.common_name_records));
        let blocks = blocks(records, Rule::BirthDate);
        let by_birth_date = (patterns(&blocks, records, options.em_pairs), pair_count(&blocks));
        (joined(u), joined(frequencies), by_birth_date)
    });
    let mut model = Model {
        prior: 1e-4,
        fields: Field::ALL
            .iter()
            .zip(u)
            .map(|(field, u)| Levels { field: *field, m: initial_m(field.levels().len()), u })
            .collect(),
        term_frequencies,
        thresholds,
        trained_on: records.len(),
    };

    // Pass 1: same birth date; learn the names and sex.
    let fields = [FAMILY, GIVEN, SEX];
    let share = expectation_maximisation(&mut model, &by_birth_date, &fields, options.em_iterations);
    // Sampled pairs are scaled back to all pairs that share a birth date.
    let matches_sharing_birth_date = share * sharing_birth_date as f64;
    let n = records.len() as f64;
    let all_pairs = (n * (n - 1.0) / 2.0).max(1.0);
    let prior = |model: &Model| {
        (matches_sharing_birth_date / model.fields[BIRTH_DATE].m[EXACT as usize] / all_pairs).clamp(1e-12, 0.5)
    };

    // Pass 2: same loose kana name; learn the birth date, the prior following it.
    let by_name = weighted_by_names(&model, records, options.em_pairs);
    for _ in 0..options.em_iterations {
        model.prior = prior(&model);
        let mut sums = vec![0.0; model.fields[BIRTH_DATE].m.len()];
        for ((level, names), count) in &by_name {
            let levels = &model.fields[BIRTH_DATE];
            let weight = weight_of(model.prior)
                + *names as f64 / 4.0
                + (levels.m[*level as usize] / levels.u[*level as usize]).log2();
            sums[*level as usize] += probability(weight) * *count as f64;
        }
        let m = normalized_without_missing(sums);
        if m.iter().sum::<f64>() > 0.0 {
            model.fields[BIRTH_DATE].m = m.into_iter().map(|p| p.max(1e-6)).collect();
        }
    }
    model.prior = prior(&model);
    model.clamped()
}

fn initial_m(levels: usize) -> Vec<f64> {
    // Exact agreement for most matches, the rest spread over the other levels.
    let mut m = vec![0.0; levels];
    m[EXACT as usize] = 0.9;
    for level in m.iter_mut().skip(2) {
        *level = 0.1 / (levels - 2) as f64;
    }
    m
}

fn estimate_u(records: &[Keys], options: &Training) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = Field::ALL.iter().map(|f| vec![1.0; f.levels().len()]).collect();
    let mut random = SplitMix(options.seed);
    let n = records.len() as u64;
    if n >= 2 {
        for _ in 0..options.u_pairs {
            let a = random.below(n) as usize;
            let b = random.below(n) as usize;
            if a == b {
                continue;
            }
            for (field, level) in compare(&records[a], &records[b]).iter().enumerate() {
                counts[field][*level as usize] += 1.0;
            }
        }
    }
    counts.into_iter().map(normalized_without_missing).collect()
}

fn normalized_without_missing(mut counts: Vec<f64>) -> Vec<f64> {
    counts[MISSING as usize] = 0.0;
    let total: f64 = counts.iter().sum();
    counts.iter_mut().for_each(|c| *c /= total.max(f64::MIN_POSITIVE));
    counts
}

fn term_frequencies(records: &[Keys], common: usize) -> TermFrequencies {
    let mut family: HashMap<&str, usize> = HashMap::new();
    let mut given: HashMap<&str, usize> = HashMap::new();
    for keys in records {
        if let Some(kana) = &keys.kana.family {
            *family.entry(&kana.loose).or_default() += 1;
        }
        if let Some(kana) = &keys.kana.given {
            *given.entry(&kana.loose).or_default() += 1;
        }
    }
    let n = records.len().max(1) as f64;
    let keep = |counts: HashMap<&str, usize>| {
        counts.into_iter().filter(|(_, c)| *c >= common).map(|(k, c)| (k.to_owned(), c as f64 / n)).collect()
    };
    TermFrequencies { family: keep(family), given: keep(given) }
}

/// Blocked pairs grouped by their comparison levels, at most `limit` of them.
fn patterns(blocks: &HashMap<u64, Vec<u32>>, records: &[Keys], limit: usize) -> HashMap<Comparison, u64> {
    let mut patterns: HashMap<Comparison, u64> = HashMap::new();
    let mut seen = 0;
    'blocks: for block in in_key_order(blocks) {
        for (i, a) in block.iter().enumerate() {
            for b in &block[i + 1..] {
                *patterns.entry(compare(&records[*a as usize], &records[*b as usize])).or_default() += 1;
                seen += 1;
                if seen >= limit {
                    break 'blocks;
                }
            }
        }
    }
    patterns
}

/// Pairs that share a loose kana name, grouped by their birth-date level and the weight of
/// their names (term-frequency adjusted, in quarter bits).
fn weighted_by_names(model: &Model, records: &[Keys], limit: usize) -> HashMap<(u8, i32), u64> {
    let mut groups: HashMap<(u8, i32), u64> = HashMap::new();
    let mut seen = 0;
    'blocks: for block in in_key_order(&blocks(records, Rule::KanaName)) {
        for (i, a) in block.iter().enumerate() {
            for b in &block[i + 1..] {
                let (a, b) = (&records[*a as usize], &records[*b as usize]);
                let levels = compare(a, b);
                let names = model.term(FAMILY, levels[FAMILY], a, b).0 + model.term(GIVEN, levels[GIVEN], a, b).0;
                *groups.entry((levels[BIRTH_DATE], (names * 4.0).round() as i32)).or_default() += 1;
                seen += 1;
                if seen >= limit {
                    break 'blocks;
                }
            }
        }
    }
    groups
}

/// Blocks in the order of their keys: sampling stops at a limit, and a hash map's own order
/// changes from run to run, which made two rebuilds of the same records estimate different
/// models.
fn in_key_order(blocks: &HashMap<u64, Vec<u32>>) -> impl Iterator<Item = &Vec<u32>> {
    let mut keys: Vec<&u64> = blocks.keys().collect();
    keys.sort_unstable();
    keys.into_iter().map(|key| &blocks[key])
}

fn pair_count(blocks: &HashMap<u64, Vec<u32>>) -> u64 {
    blocks.values().map(|b| (b.len() as u64) * (b.len() as u64 - 1) / 2).sum()
}

/// Fits m of `fields` (u fixed), and returns the share of matches among these pairs.
fn expectation_maximisation(
    model: &mut Model,
    patterns: &HashMap<Comparison, u64>,
    fields: &[usize],
    iterations: usize,
) -> f64 {
    let mut lambda = 0.1;
    for _ in 0..iterations {
        let mut m_sums: Vec<Vec<f64>> = model.fields.iter().map(|l| vec![0.0; l.m.len()]).collect();
        let (mut matched, mut all) = (0.0, 0.0);
        for (levels, count) in patterns {
            let (mut if_match, mut if_not) = (lambda, 1.0 - lambda);
            for &field in fields {
                let level = levels[field] as usize;
                if level != MISSING as usize {
                    if_match *= model.fields[field].m[level];
                    if_not *= model.fields[field].u[level];
                }
            }
            let posterior = if_match / (if_match + if_not).max(f64::MIN_POSITIVE);
            let weight = posterior * *count as f64;
            matched += weight;
            all += *count as f64;
            for &field in fields {
                m_sums[field][levels[field] as usize] += weight;
            }
        }
        for &field in fields {
            let m = normalized_without_missing(std::mem::take(&mut m_sums[field]));
            if m.iter().sum::<f64>() > 0.0 {
                model.fields[field].m = m.into_iter().map(|p| p.max(1e-6)).collect();
            }
        }
        lambda = (matched / all.max(1.0)).clamp(1e-9, 1.0 - 1e-9);
    }
    lambda
}

/// A small deterministic generator (SplitMix64): sampling must repeat run after run.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A field's m and u at one level, for tests and reports.
pub fn m_u(model: &Model, field: Field, level: u8) -> (f64, f64) {
    let levels = &model.fields[Field::ALL.iter().position(|f| *f == field).unwrap_or(0)];
    (levels.m[level as usize], levels.u[level as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::evaluate;
    use crate::keys::Record;
    use crate::link::{Constraints, link};

    const KANA: &[&str] =
        &["ア", "イ", "カ", "キ", "サ", "シ", "タ", "ナ", "ハ", "マ", "ヤ", "ラ", "ワ", "ミ", "コ", "ト"];

    fn word(random: &mut SplitMix, length: u64) -> String {
        (0..length).map(|_| KANA[random.below(KANA.len() as u64) as usize]).collect()
    }

    /// A small population: 3,000 people with one to three records, some with one kana
    /// typo or a mistyped birth date.
    fn population() -> (Vec<Keys>, Vec<u64>) {
        let mut random = SplitMix(7);
        let (mut records, mut truth) = (Vec::new(), Vec::new());
        for person in 0..3_000u64 {
            let family = word(&mut random, 3);
            let length = 2 + random.below(2);
            let given = word(&mut random, length);
            let birth = 19300101 + random.below(90) * 10_000 + random.below(12) * 100 + random.below(28);
            let sex = if random.below(2) == 0 { "M" } else { "F" };
            for _ in 0..1 + random.below(3) {
                let mut family = family.clone();
                if random.below(20) == 0 {
                    family = format!("{}{}", &family[..family.len() - 3], KANA[random.below(16) as usize]);
                }
                let birth = if random.below(50) == 0 { birth + 1 } else { birth };
                records.push(Keys::of(&Record {
                    name: format!("=^={family}^{given}"),
                    birth_date: birth.to_string(),
                    sex: sex.into(),
                }));
                truth.push(person);
            }
        }
        (records, truth)
    }

    #[test]
    fn training_learns_what_agreement_is_worth_and_links_well() {
        let (records, truth) = population();
        let options = Training { u_pairs: 200_000, ..Training::default() };
        let model = train(&records, &options, Thresholds::default());
        let (m, u) = m_u(&model, Field::BirthDate, EXACT);
        assert!(m > 0.9 && u < 0.01, "birth date exact: m {m}, u {u}");
        let (m, u) = m_u(&model, Field::GivenName, 7);
        assert!(m < 0.1 && u > 0.9, "given name different: m {m}, u {u}");
        let true_pairs: f64 = {
            let mut sizes = HashMap::new();
            truth.iter().for_each(|t| *sizes.entry(t).or_insert(0.0) += 1.0);
            sizes.values().map(|n: &f64| n * (n - 1.0) / 2.0).sum()
        };
        let n = records.len() as f64;
        let actual_prior = true_pairs / (n * (n - 1.0) / 2.0);
        assert!(
            model.prior / actual_prior > 0.5 && model.prior / actual_prior < 2.0,
            "{} vs {actual_prior}",
            model.prior
        );

        let report = evaluate(&truth, &link(&records, &model, &Constraints::default()), &model);
        assert!(report.pairs_auto.precision > 0.99, "{report:?}");
        assert!(report.pairs_review.recall > 0.95, "{report:?}");
    }
}
