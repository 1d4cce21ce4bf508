//! Linkage: blocking, scoring and clustering.
//!
//! Only pairs that share a blocking key are scored. The rules are a union of cheap keys, so
//! that one wrong field does not hide a match: the same birth date (catches name typos and
//! marriages); the same loose kana name and birth year (catches a mistyped or swapped day
//! or month); the same loose kana name and month and day (catches a mistyped year or one
//! written in the wrong era); the same folded kanji name and birth year (catches kana
//! errors). A name alone would make blocks of every サトウ ヒロシ in the region; a record
//! without a birth date, though, is paired with every record of its kana name. A pair
//! found by several rules is scored once.
//!
//! Records are then clustered into persons by the auto-link pairs, strongest first, as
//! connected components; a "known not the same" pair is never joined, and a manual link
//! always is.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::compare::compare;
use crate::keys::Keys;
use crate::model::{Model, weight_of};
use crate::parallel;

/// A blocking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    BirthDate,
    KanaNameYear,
    KanaNameMonthDay,
    KanjiNameYear,
    /// The loose kana name alone: for training, and for records without a birth date.
    KanaName,
}

impl Rule {
    /// The rules records are blocked by.
    pub const ALL: [Rule; 4] = [Rule::BirthDate, Rule::KanaNameYear, Rule::KanaNameMonthDay, Rule::KanjiNameYear];

    /// A record's blocking key under this rule, if it has the fields the rule needs. The
    /// name rules need both name parts: a family name alone would block half a town together.
    pub fn key(self, keys: &Keys) -> Option<String> {
        let date = keys.birth_date;
        match self {
            Rule::BirthDate => date.map(|d| format!("d:{:08}", d.0)),
            Rule::KanaNameYear => Some(format!("y:{}^{:04}", kana_name(keys)?, date?.year())),
            Rule::KanaNameMonthDay => Some(format!("m:{}^{:04}", kana_name(keys)?, date?.month_day())),
            Rule::KanjiNameYear => match (&keys.kanji.family, &keys.kanji.given, date) {
                (Some(f), Some(g), Some(d)) => Some(format!("k:{}^{}^{:04}", f.folded, g.folded, d.year())),
                _ => None,
            },
            Rule::KanaName => kana_name(keys),
        }
    }
}

fn kana_name(keys: &Keys) -> Option<String> {
    match (&keys.kana.family, &keys.kana.given) {
        (Some(f), Some(g)) => Some(format!("{}^{}", f.loose, g.loose)),
        _ => None,
    }
}

/// Every blocking key of a record: what an index files it under. A record without a birth
/// date is filed under its kana name alone (`n:`).
pub fn blocking_keys(keys: &Keys) -> Vec<String> {
    let mut filed: Vec<String> = Rule::ALL.iter().filter_map(|rule| rule.key(keys)).collect();
    if keys.birth_date.is_none()
        && let Some(name) = kana_name(keys)
    {
        filed.push(format!("n:{name}"));
    }
    filed
}

/// What to look a record's candidates up by in an index (a key ending in `*` is a prefix):
/// its own keys, the undated records of its kana name, and, for a record without a birth
/// date, every dated record of its kana name. The same pairs `link` scores.
pub fn lookup_keys(keys: &Keys) -> Vec<String> {
    let mut lookup: Vec<String> = Rule::ALL.iter().filter_map(|rule| rule.key(keys)).collect();
    if let Some(name) = kana_name(keys) {
        lookup.push(format!("n:{name}"));
        if keys.birth_date.is_none() {
            lookup.push(format!("y:{name}^*"));
        }
    }
    lookup
}

/// Blocks larger than this are skipped: a key that common identifies nobody (a
/// placeholder birth date such as 1900-01-01, say), and its pairs would dominate the run.
pub const MAX_BLOCK: usize = 2_000;

/// Records grouped by their key under `rule`, as indexes into `records`.
pub(crate) fn blocks(records: &[Keys], rule: Rule) -> HashMap<u64, Vec<u32>> {
    let mut blocks: HashMap<u64, Vec<u32>> = HashMap::new();
    for (index, keys) in records.iter().enumerate() {
        if let Some(key) = rule.key(keys) {
            blocks.entry(hash(&key)).or_default().push(index as u32);
        }
    }
    blocks.retain(|_, members| members.len() > 1 && members.len() <= MAX_BLOCK);
    blocks
}

fn hash(key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Links decided by people, which the clustering obeys.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// Pairs linked by hand: always the same person.
    pub same: Vec<(u32, u32)>,
    /// Pairs marked "known not the same": never in one person.
    pub different: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub a: u32,
    pub b: u32,
    pub weight: f32,
}

#[derive(Debug, Clone, Default)]
pub struct Linkage {
    /// Every scored pair at or above the review threshold, strongest first.
    pub pairs: Vec<ScoredPair>,
    /// The person of each record: the index of one record of its cluster.
    pub person: Vec<u32>,
    /// How many pairs were scored.
    pub compared: u64,
}

/// Links `records` under `model`: the pairs worth keeping, and the persons they make.
pub fn link(records: &[Keys], model: &Model, constraints: &Constraints) -> Linkage {
    let review = weight_of(model.thresholds.review);
    // Each record's key under each rule, where its block was scored (a pair in a block
    // too large to score must still be found by a later rule).
    let mut keys: Vec<Vec<Option<u64>>> = vec![vec![None; records.len()]; Rule::ALL.len()];
    let mut work: Vec<(usize, Vec<u32>)> = Vec::new();
    for (index, blocks) in parallel::map(&Rule::ALL, |rule| blocks(records, *rule)).into_iter().enumerate() {
        for (key, block) in blocks {
            block.iter().for_each(|&r| keys[index][r as usize] = Some(key));
            work.push((index, block));
        }
    }
    // Records without a birth date meet every record of their kana name (pairs of two
    // dated records there are left to the rules above).
    let undated = Rule::ALL.len();
    work.extend(
        blocks(records, Rule::KanaName)
            .into_values()
            .filter(|block| block.iter().any(|&r| records[r as usize].birth_date.is_none()))
            .map(|block| (undated, block)),
    );
    // Largest blocks first, dealt round-robin, so that the threads finish together.
    work.sort_by_key(|(_, block)| std::cmp::Reverse(block.len()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut pairs, compared) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (work, keys) = (&work, &keys);
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    let mut compared = 0u64;
                    for (rule, block) in work.iter().skip(thread).step_by(threads) {
                        for (i, &a) in block.iter().enumerate() {
                            for &b in &block[i + 1..] {
                                let dated = |r: u32| records[r as usize].birth_date.is_some();
                                if *rule == undated && dated(a) && dated(b) {
                                    continue;
                                }
                                let found_earlier = keys[..*rule]
                                    .iter()
                                    .any(|k| k[a as usize].is_some() && k[a as usize] == k[b as usize]);
                                if found_earlier {
                                    continue;
                                }
                                compared += 1;
                                let (x, y) = (&records[a as usize], &records[b as usize]);
                                let weight = model.weight(x, y, &compare(x, y));
                                if weight >= review {
                                    kept.push(ScoredPair { a: a.min(b), b: a.max(b), weight: weight as f32 });
                                }
                            }
                        }
                    }
                    (kept, compared)
                })
            })
            .collect();
        handles.into_iter().map(parallel::joined).fold((Vec::new(), 0), |(mut all, n), (kept, c)| {
            all.extend(kept);
            (all, n + c)
        })
    });
    pairs.sort_by(|x, y| y.weight.total_cmp(&x.weight).then((x.a, x.b).cmp(&(y.a, y.b))));
    let auto = weight_of(model.thresholds.auto_link) as f32;
    let person = cluster(records.len(), pairs.iter().filter(|p| p.weight >= auto), constraints);
    Linkage { pairs, person, compared }
}

/// Connected components of `links` (strongest first) and the manual links, never joining
/// a pair marked different.
pub fn cluster<'a>(records: usize, links: impl Iterator<Item = &'a ScoredPair>, constraints: &Constraints) -> Vec<u32> {
    let mut sets = DisjointSets::new(records, &constraints.different);
    for (a, b) in &constraints.same {
        sets.union(*a, *b);
    }
    for pair in links {
        sets.union(pair.a, pair.b);
    }
    (0..records as u32).map(|r| sets.find(r)).collect()
}

struct DisjointSets {
    parent: Vec<u32>,
    /// For each root, the records its members must never be joined with.
    apart: HashMap<u32, Vec<u32>>,
}

impl DisjointSets {
    fn new(records: usize, different: &[(u32, u32)]) -> Self {
        let mut apart: HashMap<u32, Vec<u32>> = HashMap::new();
        for (a, b) in different {
            apart.entry(*a).or_default().push(*b);
            apart.entry(*b).or_default().push(*a);
        }
        DisjointSets { parent: (0..records as u32).collect(), apart }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    /// Joins the sets of `a` and `b`, unless a member of one is marked different from a
    /// member of the other (which even a manual link does not override: the reviewer must
    /// lift the mark first).
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let conflicts = |sets: &mut Self, from: u32, to: u32| {
            let partners = sets.apart.get(&from).cloned().unwrap_or_default();
            partners.into_iter().any(|p| sets.find(p) == to)
        };
        if conflicts(self, ra, rb) || conflicts(self, rb, ra) {
            return;
        }
        self.parent[rb as usize] = ra;
        if let Some(moved) = self.apart.remove(&rb) {
            self.apart.entry(ra).or_default().extend(moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: u32, b: u32) -> ScoredPair {
        ScoredPair { a, b, weight: 10.0 }
    }

    #[test]
    fn links_form_connected_components() {
        let links = [pair(0, 1), pair(1, 2), pair(3, 4)];
        let person = cluster(6, links.iter(), &Constraints::default());
        assert_eq!(person[0], person[2]);
        assert_eq!(person[3], person[4]);
        assert_ne!(person[0], person[3]);
        assert_eq!(person[5], 5);
    }

    #[test]
    fn a_pair_marked_different_is_never_joined_even_through_others() {
        let constraints = Constraints { same: vec![], different: vec![(0, 2)] };
        let links = [pair(0, 1), pair(1, 2)];
        let person = cluster(3, links.iter(), &constraints);
        assert_eq!(person[0], person[1]);
        assert_ne!(person[0], person[2], "the chain 0–1–2 would join 0 and 2");
    }

    #[test]
    fn manual_links_join_without_a_score() {
        let constraints = Constraints { same: vec![(0, 3)], different: vec![] };
        let person = cluster(4, [].iter(), &constraints);
        assert_eq!(person[0], person[3]);
    }
}
