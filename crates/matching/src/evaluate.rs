//! Linkage quality against a known truth (the person behind each synthetic record).
//!
//! - **Pairs**: the scored pairs at or above a threshold, against every true pair
//!   (including those blocking never offered).
//! - **Clusters**: every pair inside a predicted person, after transitive closure, since
//!   pairwise figures hide chain merges.
//! - **Review load**: review tasks per 1,000 records. A task is a pair of persons (after
//!   auto-linking) joined by at least one pair in the review band: the question a
//!   reviewer answers once, however many of their records are involved. Pairs already
//!   inside one person need no review.

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;

use crate::link::{Constraints, Linkage, cluster};
use crate::model::{Model, weight_of};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub predicted: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Metrics {
    fn new(predicted: u64, true_positives: u64, truth: u64) -> Metrics {
        let precision = if predicted == 0 { 1.0 } else { true_positives as f64 / predicted as f64 };
        let recall = if truth == 0 { 1.0 } else { true_positives as f64 / truth as f64 };
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        Metrics { predicted, true_positives, precision, recall, f1 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub records: usize,
    pub true_pairs: u64,
    pub compared: u64,
    /// Pairs at or above the auto-link threshold.
    pub pairs_auto: Metrics,
    /// Pairs at or above the review threshold: what a reviewer accepting every true
    /// candidate would reach.
    pub pairs_review: Metrics,
    pub clusters_auto: Metrics,
    pub clusters_review: Metrics,
    pub review_pairs: u64,
    pub review_tasks: u64,
    pub review_per_1000_records: f64,
}

/// Scores `linkage` against `truth`, the true person of each record.
pub fn evaluate(truth: &[u64], linkage: &Linkage, model: &Model) -> Report {
    let auto = weight_of(model.thresholds.auto_link) as f32;
    let true_pairs = pairs_within(truth.iter().copied());
    let is_true = |a: u32, b: u32| truth[a as usize] == truth[b as usize];
    let count = |keep: &dyn Fn(f32) -> bool| {
        let kept: Vec<_> = linkage.pairs.iter().filter(|p| keep(p.weight)).collect();
        let correct = kept.iter().filter(|p| is_true(p.a, p.b)).count() as u64;
        Metrics::new(kept.len() as u64, correct, true_pairs)
    };
    let pairs_auto = count(&|w| w >= auto);
    let pairs_review = count(&|_| true);
    let review_pairs = pairs_review.predicted - pairs_auto.predicted;
    let review_tasks = linkage
        .pairs
        .iter()
        .filter(|p| p.weight < auto)
        .map(|p| {
            let (x, y) = (linkage.person[p.a as usize], linkage.person[p.b as usize]);
            (x.min(y), x.max(y))
        })
        .filter(|(x, y)| x != y)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let clusters = |person: &[u32]| {
        let predicted = pairs_within(person.iter().map(|p| *p as u64));
        let correct = pairs_within(person.iter().zip(truth));
        Metrics::new(predicted, correct, true_pairs)
    };
    let everything_accepted = cluster(truth.len(), linkage.pairs.iter(), &Constraints::default());
    Report {
        records: truth.len(),
        true_pairs,
        compared: linkage.compared,
        pairs_auto,
        pairs_review,
        clusters_auto: clusters(&linkage.person),
        clusters_review: clusters(&everything_accepted),
        review_pairs,
        review_tasks,
        review_per_1000_records: review_tasks as f64 * 1000.0 / truth.len().max(1) as f64,
    }
}

/// The number of pairs of items with equal labels.
fn pairs_within<L: Hash + Eq>(labels: impl Iterator<Item = L>) -> u64 {
    let mut sizes: HashMap<L, u64> = HashMap::new();
    for label in labels {
        *sizes.entry(label).or_default() += 1;
    }
    sizes.values().map(|n| n * (n - 1) / 2).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::ScoredPair;
    use crate::model::Thresholds;

    #[test]
    fn precision_recall_and_review_load_follow_the_thresholds() {
        let model = Model {
            prior: 0.5,
            fields: vec![],
            term_frequencies: Default::default(),
            thresholds: Thresholds { auto_link: 0.999, review: 0.5 },
            trained_on: 0,
        };
        // Persons: {0, 1, 2}, {3, 4}, {5}. True pairs: 3 + 1 = 4.
        let truth = [7, 7, 7, 8, 8, 9];
        let strong = weight_of(0.9999) as f32;
        let weak = weight_of(0.9) as f32;
        let pairs = vec![
            ScoredPair { a: 0, b: 1, weight: strong },
            ScoredPair { a: 3, b: 5, weight: strong }, // wrong
            ScoredPair { a: 1, b: 2, weight: weak },
            ScoredPair { a: 0, b: 2, weight: weak },
        ];
        let person = cluster(6, pairs.iter().filter(|p| p.weight >= strong), &Constraints::default());
        let report = evaluate(&truth, &Linkage { pairs, person, compared: 4 }, &model);
        assert_eq!(report.true_pairs, 4);
        assert_eq!((report.pairs_auto.predicted, report.pairs_auto.true_positives), (2, 1));
        assert_eq!((report.pairs_review.predicted, report.pairs_review.true_positives), (4, 3));
        // Two review pairs ask one question: is record 2 the person of records 0 and 1?
        assert_eq!((report.review_pairs, report.review_tasks), (2, 1));
        // Accepting the review pair closes {0, 1, 2}: three true pairs, plus the wrong one.
        assert_eq!((report.clusters_review.predicted, report.clusters_review.true_positives), (4, 3));
        assert!((report.review_per_1000_records - 1000.0 / 6.0).abs() < 1e-9);
    }
}
