//! The master patient index at work (名寄せ).
//!
//! - **The matcher** ([`Archive::match_pending`]): one node at a time, under the `mpi`
//!   lease, matches each pending patient record (new, or with a changed name, birth date or
//!   sex) against the records that share one of its blocking keys. One transaction per
//!   record writes its keys, its scored links (auto-links at or above the upper threshold,
//!   candidates in the review band) and the persons of everything connected to it.
//! - **Rebuild** ([`Archive::rebuild_mpi`]): estimates the model from every record, links
//!   them all again, and writes the difference.
//! - **Decisions** ([`Archive::decide`]): people link, mark "not the same", or withdraw their
//!   decision; the records involved go back to the matcher, which recomputes their persons.
//! - **Evaluation** against a known truth, for synthetic populations.
//!
//! A person is one connected component of the auto and manual links that never spans a
//! "known not the same" pair; its id stays with the part of it that keeps most records.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use renkei_domain::FacilityId;
use renkei_domain::model::Principal;
use renkei_domain::mpi::{
    Actor, Link, LinkKind, MatchOutcome, MpiStats, NewLink, PatientRecord, PersonAssignment, PersonId, RecordId,
};
use renkei_matching::evaluate::{Report, evaluate};
use renkei_matching::link::{Constraints, Linkage, MAX_BLOCK, ScoredPair, blocking_keys, cluster, link, lookup_keys};
use renkei_matching::model::{Explanation, Grade, Model, Thresholds, weight_of};
use renkei_matching::train::{Training, train};
use renkei_matching::{Keys, Record, parallel};

use crate::tiers::{now_unix, release_lease};
use crate::{Archive, ServiceError};

const LEASE: &str = "mpi";
const LEASE_SECONDS: u32 = 300;
/// Records matched per round, between lease renewals.
const ROUND: u32 = 200;
/// Blocking keys filed under more records than this are skipped, as in a rebuild.
const CANDIDATES: u32 = MAX_BLOCK as u32;
/// Below this many records a model estimated from them means little: the shipped one is used.
const MIN_TRAINING_RECORDS: usize = 2_000;
/// How long a node keeps the stored model before reading it again.
const MODEL_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchReport {
    pub matched: u64,
    pub auto_links: u64,
    pub candidates: u64,
    /// How long each record took, from reading its candidates to committing.
    pub durations: Vec<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatcherRun {
    Done(MatchReport),
    /// Another node holds the lease.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub records: usize,
    pub persons: usize,
    pub links_added: usize,
    pub links_retired: usize,
    /// Whether the model was estimated from these records (or the shipped one was used).
    pub trained: bool,
}

/// A person and everything about them: their records, and every link (current or
/// retired) touching one of those.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonView {
    pub person: Option<PersonId>,
    pub records: Vec<PatientRecord>,
    pub links: Vec<Link>,
    /// The records at the other end of links that lead outside the person.
    pub others: Vec<PatientRecord>,
}

/// A record found for a demographic search, with its score taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientMatch {
    pub record: PatientRecord,
    pub explanation: Explanation,
}

/// A candidate link waiting for a person: both records, and the score taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewTask {
    pub link: Link,
    pub a: PatientRecord,
    pub b: PatientRecord,
    pub explanation: Explanation,
}

/// A person's decision about two records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The same person (accepting a candidate, or linking by hand).
    Same,
    /// Known not the same person (rejecting a candidate, or unlinking).
    Different,
    /// Withdraw people's decisions about the pair: the scores decide again.
    Withdraw,
}

/// The parsed model a node works with, and when it was read.
#[derive(Default)]
pub(crate) struct ModelCache(tokio::sync::Mutex<Option<(Instant, Arc<Model>)>>);

fn keys_of(record: &PatientRecord) -> Keys {
    Keys::of(&Record { name: record.name.clone(), birth_date: record.birth_date.clone(), sex: record.sex.clone() })
}

impl Archive {
    /// The model in use: the one estimated by the last rebuild, or the shipped one, with the
    /// thresholds configured for this hub.
    pub async fn mpi_model(&self) -> Result<Arc<Model>, ServiceError> {
        let mut cache = self.mpi_model.0.lock().await;
        if let Some((read, model)) = cache.as_ref()
            && read.elapsed() < MODEL_TTL
        {
            return Ok(model.clone());
        }
        let mut model = match self.mpi.model().await? {
            Some(json) => {
                Model::from_json(&json).map_err(|e| ServiceError::unavailable(format!("stored model: {e}")))?
            }
            None => {
                let records = self.mpi.mpi_stats().await?.records as usize;
                Model::shipped().for_population(records.max(1))
            }
        };
        if let Some(thresholds) = self.mpi_thresholds {
            model.thresholds = thresholds;
        }
        let model = Arc::new(model);
        *cache = Some((Instant::now(), model.clone()));
        Ok(model)
    }

    pub async fn mpi_stats(&self) -> Result<MpiStats, ServiceError> {
        Ok(self.mpi.mpi_stats().await?)
    }

    /// The persons whose records look like `wanted` (FHIR `Patient/$match`), best first, at
    /// most `limit`, in the review band or above (only certain ones if `only_certain`). Each
    /// person is shown by one record `principal` may see: for a facility, its own record of
    /// that person (a person without one there is left out); for an administrator, the
    /// record that scored best.
    pub async fn match_patient(
        &self,
        principal: &Principal,
        wanted: &Record,
        limit: usize,
        only_certain: bool,
    ) -> Result<Vec<PatientMatch>, ServiceError> {
        let model = self.mpi_model().await?;
        let keys = Keys::of(wanted);
        let review = weight_of(model.thresholds.review);
        // The best-scoring record of each person (a record without one is its own).
        let mut best: HashMap<Result<PersonId, RecordId>, (f64, PatientRecord)> = HashMap::new();
        for candidate in self.mpi.records_by_keys(&lookup_keys(&keys), CANDIDATES).await? {
            let weight = model.score(&keys, &keys_of(&candidate));
            if weight < review || (only_certain && model.grade(weight) != Grade::Certain) {
                continue;
            }
            let person = candidate.person.ok_or(candidate.id);
            if best.get(&person).is_none_or(|(w, _)| weight > *w) {
                best.insert(person, (weight, candidate));
            }
        }
        let mut found: Vec<(f64, PatientRecord)> = best.into_values().collect();
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        if let Some(facility) = &principal.facility {
            // Show each person by this facility's own record of them or, for a person
            // another facility shares with it, by the shared record.
            let persons: Vec<PersonId> = found.iter().filter_map(|(_, r)| r.person).collect();
            let mut theirs = self.mpi.records_of_persons(&persons).await?;
            theirs.extend(found.iter().filter(|(_, r)| r.person.is_none()).map(|(_, r)| r.clone()));
            let ids: Vec<RecordId> = theirs.iter().map(|r| r.id).collect();
            let published = self.sharing.published_to(facility, &ids, crate::tiers::now_unix()).await?;
            let same_person =
                |a: &PatientRecord, b: &PatientRecord| a.id == b.id || (a.person.is_some() && a.person == b.person);
            found = found
                .into_iter()
                .filter_map(|(weight, record)| {
                    let of_person = || theirs.iter().filter(|r| same_person(r, &record));
                    let shown = of_person()
                        .find(|r| &r.facility == facility)
                        .or_else(|| of_person().find(|r| published.contains(&r.id)))?;
                    Some((weight, shown.clone()))
                })
                .collect();
        }
        // Each entry is graded by the record it shows (a facility's own record of a person
        // may score lower than the record that found the person).
        let mut matches: Vec<PatientMatch> = found
            .into_iter()
            .map(|(_, record)| {
                let theirs = keys_of(&record);
                let explanation = model.explain(&keys, &theirs, &renkei_matching::compare::compare(&keys, &theirs));
                PatientMatch { record, explanation }
            })
            .filter(|m| m.explanation.weight >= review)
            .filter(|m| !only_certain || m.explanation.grade == Grade::Certain)
            .collect();
        matches
            .sort_by(|a, b| b.explanation.weight.total_cmp(&a.explanation.weight).then(a.record.id.cmp(&b.record.id)));
        matches.truncate(limit);
        Ok(matches)
    }

    /// A patient record by its id, if `principal` may see it: its own facility's, or one a
    /// current publication shares with that facility.
    pub async fn patient_record(&self, principal: &Principal, id: RecordId) -> Result<PatientRecord, ServiceError> {
        let record = self.mpi.records(&[id]).await?.into_iter().next();
        let record = record.ok_or_else(|| ServiceError::not_found("patient"))?;
        if principal.sees(&record.facility) {
            return Ok(record);
        }
        match &principal.facility {
            Some(facility)
                if !self.sharing.published_to(facility, &[id], crate::tiers::now_unix()).await?.is_empty() =>
            {
                Ok(record)
            }
            _ => Err(ServiceError::not_found("patient")),
        }
    }

    /// Checks that `principal` may make `decision` about two records. An administrator
    /// decides about any. A facility only links one of its own records, not yet linked to
    /// another facility's, to a record another facility currently publishes to it: the
    /// referral it receives. Anything that could join or split other facilities' persons is
    /// an administrator's to decide.
    pub async fn may_decide(
        &self,
        principal: &Principal,
        a: RecordId,
        b: RecordId,
        decision: Decision,
    ) -> Result<(), ServiceError> {
        let Some(facility) = &principal.facility else { return Ok(()) };
        if decision != Decision::Same {
            return Err(ServiceError::invalid("a facility only links its patient to a referral; ask an administrator"));
        }
        let (a, b) = (self.patient_record(principal, a).await?, self.patient_record(principal, b).await?);
        let (own, referred) = match (&a.facility == facility, &b.facility == facility) {
            (true, false) => (a, b),
            (false, true) => (b, a),
            _ => return Err(ServiceError::invalid("link one of this facility's records to one shared with it")),
        };
        if self.sharing.published_to(facility, &[referred.id], now_unix()).await?.is_empty() {
            return Err(ServiceError::not_found("patient"));
        }
        if let Some(person) = own.person {
            let linked = self.mpi.records_of_persons(&[person]).await?;
            if linked.iter().any(|r| &r.facility != facility) {
                return Err(ServiceError::invalid(
                    "this facility's record is already linked to another facility's; ask an administrator",
                ));
            }
        }
        Ok(())
    }

    /// The other records of `record`'s person that `principal` may see.
    pub async fn linked_records(
        &self,
        principal: &Principal,
        record: &PatientRecord,
    ) -> Result<Vec<PatientRecord>, ServiceError> {
        let Some(person) = record.person else { return Ok(Vec::new()) };
        let records = self.mpi.records_of_persons(&[person]).await?;
        Ok(records.into_iter().filter(|r| r.id != record.id && principal.sees(&r.facility)).collect())
    }

    /// The review queue: for each pair of persons joined by candidate links, the strongest
    /// of those links, strongest first. (Candidates inside one person need no review.)
    pub async fn review_queue(&self, limit: usize) -> Result<Vec<ReviewTask>, ServiceError> {
        let model = self.mpi_model().await?;
        let mut tasks = Vec::new();
        // Most candidates are between different persons; read a few more than asked.
        let links = self.mpi.candidate_links((limit as u32).saturating_mul(4).max(50)).await?;
        let mut ends: Vec<RecordId> = links.iter().flat_map(|l| [l.a, l.b]).collect();
        ends.sort();
        ends.dedup();
        let records: HashMap<RecordId, PatientRecord> =
            self.mpi.records(&ends).await?.into_iter().map(|r| (r.id, r)).collect();
        // One task per pair of persons: the strongest link between them asks the question.
        let mut asked = HashSet::new();
        let person_of = |r: &PatientRecord| r.person.ok_or(r.id);
        for link in links {
            let (Some(a), Some(b)) = (records.get(&link.a), records.get(&link.b)) else { continue };
            let (pa, pb) = (person_of(a), person_of(b));
            if pa == pb || !asked.insert((pa.min(pb), pa.max(pb))) {
                continue;
            }
            let (ka, kb) = (keys_of(a), keys_of(b));
            let explanation = model.explain(&ka, &kb, &renkei_matching::compare::compare(&ka, &kb));
            tasks.push(ReviewTask { link, a: a.clone(), b: b.clone(), explanation });
            if tasks.len() == limit {
                break;
            }
        }
        Ok(tasks)
    }

    /// The index's record of a facility's patient.
    pub async fn mpi_record(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        issuer: &str,
    ) -> Result<PatientRecord, ServiceError> {
        self.mpi
            .record_of_patient(facility, patient_id, issuer)
            .await?
            .ok_or_else(|| ServiceError::not_found("patient"))
    }

    /// The person of `record`, with all its records and their links' history.
    pub async fn person_view(&self, record: &PatientRecord) -> Result<PersonView, ServiceError> {
        let records = match record.person {
            Some(person) => self.mpi.records_of_persons(&[person]).await?,
            None => vec![record.clone()],
        };
        let ids: Vec<RecordId> = records.iter().map(|r| r.id).collect();
        let links = self.mpi.link_history(&ids).await?;
        let mut outside: Vec<RecordId> = links.iter().flat_map(|l| [l.a, l.b]).filter(|r| !ids.contains(r)).collect();
        outside.sort();
        outside.dedup();
        let others = self.mpi.records(&outside).await?;
        Ok(PersonView { person: record.person, records, links, others })
    }

    /// Matches every pending record, unless another node is doing so.
    pub async fn match_pending(&self) -> Result<MatcherRun, ServiceError> {
        if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
            return Ok(MatcherRun::Busy);
        }
        let outcome = self.match_rounds().await;
        release_lease(&*self.tiers, LEASE, &self.node).await;
        outcome.map(MatcherRun::Done)
    }

    async fn match_rounds(&self) -> Result<MatchReport, ServiceError> {
        let mut report = MatchReport::default();
        loop {
            if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
                return Err(ServiceError::unavailable("another node took over the matcher lease"));
            }
            let pending = self.mpi.pending_records(ROUND).await?;
            if pending.is_empty() {
                return Ok(report);
            }
            let model = self.mpi_model().await?;
            let round = pending.len();
            for (record, state) in pending {
                let started = Instant::now();
                let outcome = self.match_record(&model, &record, state).await?;
                report.matched += 1;
                report.auto_links += outcome.add.iter().filter(|l| l.kind == LinkKind::Auto).count() as u64;
                report.candidates += outcome.add.iter().filter(|l| l.kind == LinkKind::Candidate).count() as u64;
                self.mpi.apply_matching(&outcome, now_unix()).await?;
                report.durations.push(started.elapsed());
            }
            if round < ROUND as usize {
                return Ok(report);
            }
        }
    }

    /// Scores one record against its candidates and works out what changes.
    async fn match_record(
        &self,
        model: &Model,
        record: &PatientRecord,
        state: i64,
    ) -> Result<MatchOutcome, ServiceError> {
        let keys = keys_of(record);
        let blocking = blocking_keys(&keys);
        let (auto, review) = (weight_of(model.thresholds.auto_link), weight_of(model.thresholds.review));
        let mut wanted: HashMap<RecordId, (LinkKind, f64)> = HashMap::new();
        let mut known: HashMap<RecordId, PatientRecord> = HashMap::new();
        for candidate in self.mpi.records_by_keys(&lookup_keys(&keys), CANDIDATES).await? {
            if candidate.id == record.id {
                continue;
            }
            let weight = model.score(&keys, &keys_of(&candidate));
            if weight >= auto {
                wanted.insert(candidate.id, (LinkKind::Auto, weight));
            } else if weight >= review {
                wanted.insert(candidate.id, (LinkKind::Candidate, weight));
            }
            known.insert(candidate.id, candidate);
        }

        // Keep the scored links that still hold, retire the others; people's decisions stand.
        let current = self.mpi.current_links(&[record.id]).await?;
        let mut retire = Vec::new();
        let mut joined = Vec::new();
        let mut decided = HashSet::new();
        for link in &current {
            let other = link.other(record.id);
            if !link.kind.is_scored() {
                decided.insert(other);
                if link.kind.joins() {
                    joined.push(other);
                }
            } else if wanted.get(&other).is_some_and(|(kind, _)| *kind == link.kind) {
                wanted.remove(&other);
                if link.kind.joins() {
                    joined.push(other);
                }
            } else {
                retire.push(link.id);
            }
        }
        let matcher = Actor::matcher("scored");
        let add: Vec<NewLink> = wanted
            .into_iter()
            .filter(|(other, _)| !decided.contains(other))
            .map(|(other, (kind, weight))| NewLink::between(record.id, other, kind, Some(weight), matcher.clone()))
            .collect();
        joined.extend(add.iter().filter(|l| l.kind.joins()).map(|l| l.other(record.id)));

        let retired: HashSet<i64> = retire.iter().copied().collect();
        let persons = self.persons_around(record, &joined, &known, &retired, &add).await?;
        Ok(MatchOutcome {
            matched: vec![(record.id, state)],
            keys: vec![(record.id, blocking)],
            all_keys: false,
            retire,
            retired_by: Some(Actor::matcher("no longer scores as it did")),
            add,
            persons,
        })
    }

    /// The persons of `record`, of the records it is now joined with, and of everyone who
    /// shared a person with them: with `retired` links gone and `added` ones in, they are
    /// split into persons again. Persons are connected components, so these records are
    /// all that a change around `record` can join or split.
    async fn persons_around(
        &self,
        record: &PatientRecord,
        joined: &[RecordId],
        known: &HashMap<RecordId, PatientRecord>,
        retired: &HashSet<i64>,
        added: &[NewLink],
    ) -> Result<Vec<PersonAssignment>, ServiceError> {
        // The record itself is read again: an earlier record of this round may have moved
        // it to another person.
        let mut unknown: Vec<RecordId> = joined.iter().filter(|r| !known.contains_key(r)).copied().collect();
        unknown.push(record.id);
        let fetched = self.mpi.records(&unknown).await?;
        let partners: Vec<&PatientRecord> = joined.iter().filter_map(|r| known.get(r)).chain(&fetched).collect();
        let mut persons: Vec<PersonId> = partners.iter().filter_map(|r| r.person).collect();
        persons.sort();
        persons.dedup();
        let mut members: HashMap<RecordId, Option<PersonId>> = partners.iter().map(|r| (r.id, r.person)).collect();
        members.extend(self.mpi.records_of_persons(&persons).await?.into_iter().map(|r| (r.id, r.person)));

        let ids: Vec<RecordId> = members.keys().copied().collect();
        let inside = |a: &RecordId, b: &RecordId| members.contains_key(a) && members.contains_key(b);
        let links = self.mpi.current_links(&ids).await?;
        let links = links
            .iter()
            .filter(|l| !retired.contains(&l.id))
            .map(|l| (l.a, l.b, l.kind, l.weight))
            .chain(added.iter().map(|l| (l.a, l.b, l.kind, l.weight)))
            .filter(|(a, b, _, _)| inside(a, b));
        let mut joins = Joins::default();
        for (a, b, kind, weight) in links {
            match kind {
                LinkKind::Different => joins.different.push((a, b)),
                LinkKind::Manual => joins.manual.push((a, b)),
                LinkKind::Auto => joins.auto.push((a, b, weight.unwrap_or(0.0))),
                LinkKind::Candidate => {}
            }
        }
        let current: Vec<(RecordId, Option<PersonId>)> = members.into_iter().collect();
        Ok(assign_persons(&current, &joins))
    }

    /// Estimates the model from every record, links them all again and writes the
    /// difference: new links, retired ones, persons.
    pub async fn rebuild_mpi(&self) -> Result<RebuildReport, ServiceError> {
        if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
            return Err(ServiceError::unavailable("the matcher is running on another node; try again shortly"));
        }
        let outcome = self.rebuild().await;
        release_lease(&*self.tiers, LEASE, &self.node).await;
        *self.mpi_model.0.lock().await = None;
        outcome
    }

    async fn rebuild(&self) -> Result<RebuildReport, ServiceError> {
        let all = self.mpi.all_records().await?;
        let current = self.mpi.all_current_links().await?;
        let thresholds = self.mpi_thresholds;
        let shipped = self.mpi_model().await?;
        let started = Instant::now();
        let (model, linkage, records, trained) = tokio::task::spawn_blocking(move || {
            let keys = parallel::map(&all, |(r, _)| keys_of(r));
            let trained = keys.len() >= MIN_TRAINING_RECORDS;
            let mut model = if trained {
                train(&keys, &Training::default(), shipped.thresholds)
            } else {
                shipped.for_population(keys.len().max(1))
            };
            if let Some(thresholds) = thresholds {
                model.thresholds = thresholds;
            }
            let index: HashMap<RecordId, u32> = all.iter().enumerate().map(|(i, (r, _))| (r.id, i as u32)).collect();
            let pair = |l: &Link| Some((*index.get(&l.a)?, *index.get(&l.b)?));
            let constraints = Constraints {
                same: current.iter().filter(|l| l.kind == LinkKind::Manual).filter_map(pair).collect(),
                different: current.iter().filter(|l| l.kind == LinkKind::Different).filter_map(pair).collect(),
            };
            let linkage = link(&keys, &model, &constraints);
            let blocking = parallel::map(&keys, blocking_keys);
            (model, linkage, (all, current, blocking), trained)
        })
        .await
        .map_err(|e| ServiceError::unavailable(format!("rebuild failed: {e}")))?;
        let (all, current, blocking) = records;
        tracing::info!(records = all.len(), seconds = started.elapsed().as_secs_f64(), trained, "linked every record");

        let auto = weight_of(model.thresholds.auto_link) as f32;
        let id = |i: u32| all[i as usize].0.id;
        let mut wanted: HashMap<(RecordId, RecordId), (LinkKind, f32)> = linkage
            .pairs
            .iter()
            .map(|p| {
                let kind = if p.weight >= auto { LinkKind::Auto } else { LinkKind::Candidate };
                let (a, b) = (id(p.a), id(p.b));
                ((a.min(b), a.max(b)), (kind, p.weight))
            })
            .collect();
        let mut retire = Vec::new();
        for link in &current {
            let pair = (link.a, link.b);
            // People's decisions stand, and so do scored links that still hold.
            let stands = !link.kind.is_scored() || wanted.get(&pair).is_some_and(|(kind, _)| *kind == link.kind);
            if stands {
                wanted.remove(&pair);
            } else {
                retire.push(link.id);
            }
        }
        let matcher = Actor::matcher("rebuild");
        let add: Vec<NewLink> = wanted
            .into_iter()
            .map(|((a, b), (kind, weight))| NewLink::between(a, b, kind, Some(f64::from(weight)), matcher.clone()))
            .collect();
        let persons = persons_of_clusters(&all, &linkage);
        let mut clusters = linkage.person.clone();
        clusters.sort_unstable();
        clusters.dedup();
        let report = RebuildReport {
            records: all.len(),
            persons: clusters.len(),
            links_added: add.len(),
            links_retired: retire.len(),
            trained,
        };
        let outcome = MatchOutcome {
            matched: all.iter().map(|(r, state)| (r.id, *state)).collect(),
            keys: all.iter().map(|(r, _)| r.id).zip(blocking).collect(),
            all_keys: true,
            retire,
            retired_by: Some(Actor::matcher("rebuild: no longer scores as it did")),
            add,
            persons,
        };
        if !self.tiers.try_lease(LEASE, &self.node, now_unix(), LEASE_SECONDS).await? {
            return Err(ServiceError::unavailable("another node took over the matcher lease"));
        }
        if trained {
            self.mpi.save_model(&model.to_json(), now_unix()).await?;
        }
        self.mpi.apply_matching(&outcome, now_unix()).await?;
        Ok(report)
    }

    /// Records a person's decision about two records; the matcher then recomputes their
    /// persons.
    pub async fn decide(&self, a: RecordId, b: RecordId, decision: Decision, by: Actor) -> Result<(), ServiceError> {
        if a == b {
            return Err(ServiceError::invalid("a record is always the same person as itself"));
        }
        let found = self.mpi.records(&[a, b]).await?;
        if found.len() != 2 {
            return Err(ServiceError::not_found("patient record"));
        }
        let between: Vec<i64> = self
            .mpi
            .current_links(&[a])
            .await?
            .into_iter()
            .filter(|l| l.other(a) == b && (decision != Decision::Withdraw || !l.kind.is_scored()))
            .map(|l| l.id)
            .collect();
        let kind = match decision {
            Decision::Same => Some(LinkKind::Manual),
            Decision::Different => Some(LinkKind::Different),
            Decision::Withdraw => None,
        };
        let add = kind.map(|kind| NewLink::between(a, b, kind, None, by.clone()));
        Ok(self.mpi.decide(add.as_ref(), &between, &by, now_unix()).await?)
    }

    /// Scores the index against a known truth: `(facility, patient ID, person)` for each
    /// record of a synthetic population. Records not in the truth are left out; truth
    /// lines without a record are counted.
    pub async fn evaluate_mpi(&self, truth: &[(FacilityId, String, String)]) -> Result<(Report, usize), ServiceError> {
        let model = self.mpi_model().await?;
        let all = self.mpi.all_records().await?;
        let by_patient: HashMap<(&str, &str), &PatientRecord> =
            all.iter().map(|(r, _)| ((r.facility.as_str(), r.patient_id.as_str()), r)).collect();
        let mut index: HashMap<RecordId, u32> = HashMap::new();
        let mut truth_labels = Vec::new();
        let mut true_persons: HashMap<&str, u64> = HashMap::new();
        // Predicted persons as small labels; a record without a person is one of its own.
        let mut person_of = Vec::new();
        let mut persons: HashMap<PersonId, u32> = HashMap::new();
        let mut missing = 0;
        for (facility, patient_id, person) in truth {
            let Some(record) = by_patient.get(&(facility.as_str(), patient_id.as_str())) else {
                missing += 1;
                continue;
            };
            let next = true_persons.len() as u64;
            truth_labels.push(*true_persons.entry(person.as_str()).or_insert(next));
            index.insert(record.id, index.len() as u32);
            let fresh = person_of.len() as u32;
            person_of.push(match record.person {
                Some(p) => *persons.entry(p).or_insert(fresh),
                None => fresh,
            });
        }
        let auto = weight_of(model.thresholds.auto_link) as f32;
        let pairs = self
            .mpi
            .all_current_links()
            .await?
            .into_iter()
            .filter_map(|l| {
                let (a, b) = (*index.get(&l.a)?, *index.get(&l.b)?);
                let weight = match l.kind {
                    LinkKind::Auto | LinkKind::Manual => f32::MAX,
                    LinkKind::Candidate => (l.weight.unwrap_or(0.0) as f32).min(auto - 0.001),
                    LinkKind::Different => return None,
                };
                Some(ScoredPair { a, b, weight })
            })
            .collect();
        let linkage = Linkage { pairs, person: person_of, compared: 0 };
        Ok((evaluate(&truth_labels, &linkage, &model), missing))
    }
}

/// The links that make persons, by kind.
#[derive(Debug, Default)]
pub(crate) struct Joins {
    pub manual: Vec<(RecordId, RecordId)>,
    /// With their weights: stronger ones join first.
    pub auto: Vec<(RecordId, RecordId, f64)>,
    pub different: Vec<(RecordId, RecordId)>,
}

/// Splits `records` into persons as a rebuild does: manual links first, then automatic
/// ones strongest first, never joining a `different` pair. Each resulting cluster keeps
/// the person most of its records had (largest clusters choose first); a cluster whose
/// persons are all taken, or that had none, gets a new one. Only records whose person
/// changes are listed.
pub(crate) fn assign_persons(records: &[(RecordId, Option<PersonId>)], joins: &Joins) -> Vec<PersonAssignment> {
    let index: HashMap<RecordId, u32> = records.iter().enumerate().map(|(i, (r, _))| (*r, i as u32)).collect();
    let pairs = |list: &[(RecordId, RecordId)]| -> Vec<(u32, u32)> {
        list.iter().filter_map(|(a, b)| Some((*index.get(a)?, *index.get(b)?))).collect()
    };
    let constraints = Constraints { same: pairs(&joins.manual), different: pairs(&joins.different) };
    let mut auto: Vec<ScoredPair> = joins
        .auto
        .iter()
        .filter_map(|(a, b, w)| Some(ScoredPair { a: *index.get(a)?, b: *index.get(b)?, weight: *w as f32 }))
        .collect();
    auto.sort_by(|x, y| y.weight.total_cmp(&x.weight).then((x.a, x.b).cmp(&(y.a, y.b))));
    let cluster_of = cluster(records.len(), auto.iter(), &constraints);
    let mut clusters: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, c) in cluster_of.iter().enumerate() {
        clusters.entry(*c).or_default().push(i);
    }
    majority_persons(clusters.into_values().collect(), |i| records[i].1, |i| records[i].0)
}

/// The persons of a rebuild's clusters, keeping existing ids by majority.
fn persons_of_clusters(all: &[(PatientRecord, i64)], linkage: &Linkage) -> Vec<PersonAssignment> {
    let mut clusters: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, c) in linkage.person.iter().enumerate() {
        clusters.entry(*c).or_default().push(i);
    }
    majority_persons(clusters.into_values().collect(), |i| all[i].0.person, |i| all[i].0.id)
}

fn majority_persons(
    mut clusters: Vec<Vec<usize>>,
    person: impl Fn(usize) -> Option<PersonId>,
    record: impl Fn(usize) -> RecordId,
) -> Vec<PersonAssignment> {
    // Largest first, then by first record, so that the outcome does not depend on hashing.
    clusters.sort_by_key(|members| (std::cmp::Reverse(members.len()), members.iter().map(|&i| record(i)).min()));
    let mut taken = HashSet::new();
    clusters
        .into_iter()
        .map(|members| {
            let mut votes: HashMap<PersonId, usize> = HashMap::new();
            for &i in &members {
                if let Some(p) = person(i) {
                    *votes.entry(p).or_default() += 1;
                }
            }
            let mut ranked: Vec<(PersonId, usize)> = votes.into_iter().filter(|(p, _)| !taken.contains(p)).collect();
            ranked.sort_by_key(|(p, n)| (std::cmp::Reverse(*n), *p));
            let chosen = ranked.first().map(|(p, _)| *p);
            if let Some(p) = chosen {
                taken.insert(p);
            }
            // Only records whose person changes need writing.
            let changed = members.into_iter().filter(|&i| chosen.is_none() || person(i) != chosen);
            PersonAssignment { person: chosen, records: changed.map(&record).collect() }
        })
        .filter(|assignment| !assignment.records.is_empty())
        .collect()
}

/// Thresholds a hub configured, applied over whatever model is in use.
pub fn thresholds(auto_link: f64, review: f64) -> Result<Thresholds, ServiceError> {
    if !(0.0 < review && review <= auto_link && auto_link < 1.0) {
        return Err(ServiceError::invalid("thresholds need 0 < review ≤ auto-link < 1"));
    }
    Ok(Thresholds { auto_link, review })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> RecordId {
        RecordId(n)
    }

    #[test]
    fn a_split_person_keeps_its_id_where_most_records_stay() {
        let p = Some(PersonId(7));
        // 1–2–3 were one person; 3–4 a new auto-link, 2–3 retired: {1, 2} and {3, 4}.
        let records = [(r(1), p), (r(2), p), (r(3), p), (r(4), None)];
        let joins = Joins { auto: vec![(r(1), r(2), 20.0), (r(3), r(4), 20.0)], ..Default::default() };
        let assigned = assign_persons(&records, &joins);
        // One part keeps the id (its records need no writing), the other gets a new one.
        assert_eq!(assigned.len(), 1);
        assert_eq!(assigned[0].person, None);
        assert_eq!(assigned[0].records.len(), 2);
    }

    #[test]
    fn merged_persons_keep_the_larger_ones_id_and_different_is_never_joined() {
        let records = [(r(1), Some(PersonId(1))), (r(2), Some(PersonId(2))), (r(3), Some(PersonId(2)))];
        let chain = Joins { auto: vec![(r(1), r(2), 20.0), (r(2), r(3), 25.0)], ..Default::default() };
        let assigned = assign_persons(&records, &chain);
        assert_eq!(assigned, vec![PersonAssignment { person: Some(PersonId(2)), records: vec![r(1)] }]);
        // 1 and 3 are marked different: the stronger link (2–3) joins first, 1 stays apart.
        let apart = Joins { different: vec![(r(1), r(3))], ..chain };
        assert_eq!(assign_persons(&records, &apart), vec![]);
    }

    #[test]
    fn a_manual_link_wins_over_a_stronger_automatic_one() {
        // A and C are marked different; A–B is automatic, B–C was linked by a person.
        let records = [(r(1), None), (r(2), None), (r(3), None)];
        let joins = Joins { manual: vec![(r(2), r(3))], auto: vec![(r(1), r(2), 30.0)], different: vec![(r(1), r(3))] };
        let assigned = assign_persons(&records, &joins);
        let together = assigned.iter().find(|a| a.records.contains(&r(2))).expect("B assigned");
        assert!(together.records.contains(&r(3)) && !together.records.contains(&r(1)), "{assigned:?}");
    }
}
