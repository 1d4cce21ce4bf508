//! Sharing studies between facilities (公開設定): publishing with consent, break-glass
//! access, what a facility sees of other facilities' studies, the audit of each access, and
//! relabelling shared objects on their way out under the receiving facility's own patient.

use std::collections::{BTreeSet, HashMap, HashSet};

use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::relabel::{Replacements, relabel};
use renkei_dicom::tags::{SPECIFIC_CHARACTER_SET, tag};
use renkei_dicom::{Syntax, relabel::RelabelError};
use renkei_domain::FacilityId;
use renkei_domain::model::StoredInstance;
use renkei_domain::mpi::Actor;
use renkei_domain::names::PersonName;
use renkei_domain::query::{Attribute, Query, QueryLevel, QueryMatch};
use renkei_domain::sharing::{
    AccessKind, Audience, BreakGlass, NewBreakGlass, NewPublication, PatientRef, Publication, Shared, SharedAccess,
};

use crate::tiers::now_unix;
use crate::{Archive, ServiceError};

/// Transcodes a stored data set (path, stored syntax, target syntax) into a writer.
pub type Transcoder =
    fn(&std::path::Path, &str, &str, &mut dyn std::io::Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The same access (facility, way in, study, kind, grant) is recorded once per this long
/// per node.
const AUDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest a break-glass access may last, and how long it lasts unless asked otherwise.
pub const BREAK_GLASS_LONGEST_HOURS: u32 = 72;
pub const BREAK_GLASS_DEFAULT_HOURS: u32 = 24;

/// A facility reading, and how it came (its calling AE title, or its token), for the audit
/// of what other facilities share with it.
#[derive(Debug, Clone)]
pub struct Reader {
    pub facility: FacilityId,
    pub via: String,
}

impl Archive {
    /// The facility's own entities matching the query, then, from study level down, those
    /// other facilities share with it under its own patients (marked with the origin's name
    /// as Institution Name), paged as one list. Each shared study seen is audited.
    pub async fn find_as(&self, reader: &Reader, query: &Query) -> Result<Vec<QueryMatch>, ServiceError> {
        if query.level == QueryLevel::Patient {
            return self.find(&reader.facility, query).await;
        }
        let now = now_unix();
        let page_end = query.through_page_end();
        let mut shared = self.sharing.find_shared(&reader.facility, &page_end, now).await?;
        if shared.is_empty() {
            return self.find(&reader.facility, query).await;
        }
        let names = self.facility_names().await?;
        for found in &mut shared {
            if let Some(origin) = &found.shared {
                let name = names.get(&origin.origin).cloned().unwrap_or_else(|| origin.origin.to_string());
                found.values.insert(Attribute::InstitutionName, name);
            }
        }
        let mut found = self.find(&reader.facility, &page_end).await?;
        found.extend(shared);
        let page = query.page(found);
        let seen = page
            .iter()
            .filter_map(|m| Some((m.shared.as_ref()?, m.values.get(&Attribute::StudyInstanceUid)?.as_str())));
        self.audit(reader, AccessKind::Query, seen).await?;
        Ok(page)
    }

    /// The facility's own instances under the query's matches, then those other facilities
    /// share with it (each marked with how it is shared). Each shared study is audited.
    pub async fn retrieve_as(&self, reader: &Reader, query: &Query) -> Result<Vec<StoredInstance>, ServiceError> {
        let mut instances = self.retrieve(&reader.facility, query).await?;
        let shared = self.sharing.retrieve_shared(&reader.facility, query, now_unix()).await?;
        if shared.is_empty() {
            return Ok(instances);
        }
        let mut sent: HashSet<_> = instances.iter().map(|i| i.sop_instance_uid.clone()).collect();
        let shared: Vec<StoredInstance> =
            shared.into_iter().filter(|i| sent.insert(i.sop_instance_uid.clone())).collect();
        self.audit(
            reader,
            AccessKind::Retrieve,
            shared.iter().filter_map(|i| Some((i.shared.as_ref()?, i.study_uid.as_str()))),
        )
        .await?;
        let mut by_origin: HashMap<&FacilityId, Vec<StoredInstance>> = HashMap::new();
        for instance in &shared {
            if let Some(from) = &instance.shared {
                by_origin.entry(&from.origin).or_default().push(instance.clone());
            }
        }
        for (origin, of_origin) in by_origin {
            self.log_retrieval(origin, &of_origin);
        }
        self.read_ahead(&shared);
        instances.extend(shared);
        Ok(instances)
    }

    /// Records each shared study seen before it is served: an access that cannot be
    /// recorded is refused. A viewer fetching frame after frame of one study is one access
    /// per window, not hundreds of records.
    async fn audit<'a>(
        &self,
        reader: &Reader,
        kind: AccessKind,
        seen: impl Iterator<Item = (&'a Shared, &'a str)>,
    ) -> Result<(), ServiceError> {
        let at = now_unix();
        let studies: BTreeSet<(&FacilityId, &str, _)> = seen.map(|(s, study)| (&s.origin, study, s.grant)).collect();
        let mut remembered = Vec::new();
        let mut accesses = Vec::new();
        for (origin, study, grant) in studies {
            let key = format!("{}|{}|{origin}|{study}|{}|{grant:?}", reader.facility, reader.via, kind.as_str());
            if !self.audited.first_in(key.clone(), AUDIT_WINDOW) {
                continue;
            }
            remembered.push(key);
            if grant.is_break_glass() {
                tracing::warn!(facility = %reader.facility, %origin, via = %reader.via, "break-glass access to a shared study");
            }
            let (origin, study_uid, via) = (origin.clone(), study.to_owned(), reader.via.clone());
            accesses.push(SharedAccess { at, facility: reader.facility.clone(), via, origin, study_uid, kind, grant });
        }
        if accesses.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.sharing.record_shared_accesses(&accesses).await {
            for key in &remembered {
                self.audited.forget(key);
            }
            tracing::error!(%error, "cannot record cross-facility accesses; refusing them");
            return Err(error.into());
        }
        Ok(())
    }

    async fn facility_names(&self) -> Result<HashMap<FacilityId, String>, ServiceError> {
        Ok(self.facilities().await?.into_iter().map(|f| (f.id, f.name)).collect())
    }

    /// Publishes a facility's study, or all its patient's studies, to other facilities.
    pub async fn publish(&self, publication: &NewPublication) -> Result<Publication, ServiceError> {
        let NewPublication { patient, starts_at, ends_at, consent, created_by, .. } = publication;
        if ends_at <= starts_at {
            return Err(ServiceError::invalid("a publication must end after it starts"));
        }
        if consent.given_by.trim().is_empty() || consent.scope.trim().is_empty() {
            return Err(ServiceError::invalid("the consent must say who gave it and what it covers"));
        }
        if created_by.trim().is_empty() {
            return Err(ServiceError::invalid("say who publishes"));
        }
        let mut publication = publication.clone();
        if let Audience::Facilities(targets) = &mut publication.audience {
            targets.sort();
            targets.dedup();
            let known = self.facility_names().await?;
            if targets.is_empty() {
                return Err(ServiceError::invalid("name the facilities to publish to, or publish to the group"));
            }
            if let Some(unknown) = targets.iter().find(|t| !known.contains_key(*t)) {
                return Err(ServiceError::invalid(format!("no facility {unknown}")));
            }
            if targets.contains(&patient.facility) {
                return Err(ServiceError::invalid("a facility does not publish to itself"));
            }
        }
        let published = self.sharing.publish(&publication, now_unix()).await?;
        tracing::info!(publication = published.id, facility = %patient.facility, "published");
        Ok(published)
    }

    /// Revokes a publication: access through it ends at once. With `facility`, only that
    /// facility's own publication.
    pub async fn revoke_publication(
        &self,
        id: i64,
        facility: Option<&FacilityId>,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        require_reason(by)?;
        self.sharing.revoke(id, facility, by, now_unix()).await?;
        tracing::info!(publication = id, "publication revoked");
        Ok(())
    }

    pub async fn publications(
        &self,
        facility: Option<&FacilityId>,
        limit: u32,
    ) -> Result<Vec<Publication>, ServiceError> {
        Ok(self.sharing.publications(facility, limit).await?)
    }

    /// Opens an emergency access for a facility's patient: for `hours`, the facility sees
    /// every study of the person that patient is linked to, at every facility. The reason
    /// is required, and the access stays flagged until an administrator reviews it.
    pub async fn break_glass(&self, patient: PatientRef, by: &Actor, hours: u32) -> Result<BreakGlass, ServiceError> {
        require_reason(by)?;
        if !(1..=BREAK_GLASS_LONGEST_HOURS).contains(&hours) {
            return Err(ServiceError::invalid(format!(
                "a break-glass access lasts 1 to {BREAK_GLASS_LONGEST_HOURS} hours"
            )));
        }
        let now = now_unix();
        let access =
            NewBreakGlass { patient, opened_by: by.clone(), starts_at: now, ends_at: now + i64::from(hours) * 3600 };
        let opened = self.sharing.open_break_glass(&access).await?;
        tracing::warn!(break_glass = opened.id, facility = %opened.access.patient.facility, "break-glass access opened");
        Ok(opened)
    }

    pub async fn break_glasses(
        &self,
        facility: Option<&FacilityId>,
        unreviewed: bool,
        limit: u32,
    ) -> Result<Vec<BreakGlass>, ServiceError> {
        Ok(self.sharing.break_glasses(facility, unreviewed, limit).await?)
    }

    /// Ends a break-glass access now. With `facility`, only that facility's own.
    pub async fn close_break_glass(
        &self,
        id: i64,
        facility: Option<&FacilityId>,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        require_reason(by)?;
        self.sharing.close_break_glass(id, facility, by, now_unix()).await?;
        tracing::info!(break_glass = id, "break-glass access closed");
        Ok(())
    }

    /// An administrator's review of a break-glass access, which clears its flag.
    pub async fn review_break_glass(&self, id: i64, by: &Actor) -> Result<(), ServiceError> {
        require_reason(by)?;
        Ok(self.sharing.review_break_glass(id, by, now_unix()).await?)
    }

    pub async fn shared_accesses(
        &self,
        facility: Option<&FacilityId>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<SharedAccess>, ServiceError> {
        Ok(self.sharing.shared_accesses(facility, since, limit).await?)
    }

    /// An instance's bytes as they go out, and how many: as stored, or transcoded by
    /// `transcoding` into a scratch file on the blocking pool (a decoded multi-frame object
    /// can be hundreds of MB). A study another facility shares is relabelled on the way,
    /// under the receiving facility's own patient.
    pub async fn outgoing(
        &self,
        instance: &StoredInstance,
        transcoding: Option<(&'static str, Transcoder)>,
    ) -> Result<(tokio::fs::File, u64), ServiceError> {
        if transcoding.is_none() && instance.shared.is_none() {
            return Ok((self.open_instance(instance).await?, instance.size));
        }
        let path = self.local_path(instance).await?;
        let stored = instance.transfer_syntax_uid.to_string();
        let shared = instance.shared.clone();
        let (scratch, relabelled) = (self.scratch_file()?, self.scratch_file()?);
        let written = tokio::task::spawn_blocking(move || -> Result<(std::fs::File, u64), ServiceError> {
            let (data_set, syntax) = match transcoding {
                Some((target, transcode)) => {
                    let mut out = std::io::BufWriter::new(scratch);
                    transcode(&path, &stored, target, &mut out)
                        .map_err(|e| ServiceError::internal("transcoding for a retrieve failed", &*e))?;
                    let mut file = out.into_inner().map_err(|e| ServiceError::internal("scratch file", e.error()))?;
                    (rewound(&mut file).map(|size| (file, size))?, target)
                }
                None => {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| ServiceError::internal("cannot open a stored object", &e))?;
                    ((file, 0), stored.as_str())
                }
            };
            let syntax = Syntax::from_uid(syntax).ok_or_else(|| {
                ServiceError::unavailable("stored in a private transfer syntax, which cannot be relabelled")
            })?;
            match shared {
                Some(shared) => relabel_into(&shared, data_set.0, syntax, relabelled),
                None => Ok(data_set),
            }
        });
        let (file, size) = written.await.map_err(|e| ServiceError::internal("preparing a retrieve stopped", &e))??;
        Ok((tokio::fs::File::from_std(file), size))
    }
}

fn require_reason(by: &Actor) -> Result<(), ServiceError> {
    if by.who.trim().is_empty() || by.why.trim().is_empty() {
        return Err(ServiceError::invalid("say who you are and why"));
    }
    Ok(())
}

/// Writes `data_set` relabelled into `scratch`, and rewinds it.
fn relabel_into(
    shared: &Shared,
    data_set: std::fs::File,
    syntax: Syntax,
    scratch: std::fs::File,
) -> Result<(std::fs::File, u64), ServiceError> {
    let mut out = std::io::BufWriter::new(scratch);
    relabel(std::io::BufReader::new(data_set), syntax, |charset, r| patient_elements(shared, charset, r), &mut out)
        .map_err(|error| match error {
            RelabelError::Walk(error) => ServiceError::internal("a stored object is not well formed", &error),
            RelabelError::Io(error) => ServiceError::internal("cannot write a relabelled object", &error),
            too_large @ RelabelError::TooLarge => ServiceError::internal("cannot relabel a shared object", &too_large),
        })?;
    let mut file =
        out.into_inner().map_err(|e| ServiceError::internal("cannot write a relabelled object", e.error()))?;
    let size = rewound(&mut file)?;
    Ok((file, size))
}

/// How long a scratch file written from its start is; rewound for reading.
fn rewound(file: &mut std::fs::File) -> Result<u64, ServiceError> {
    use std::io::Seek;
    let size = file.stream_position().map_err(|e| ServiceError::internal("scratch file", &e))?;
    file.rewind().map_err(|e| ServiceError::internal("scratch file", &e))?;
    Ok(size)
}

const PATIENT_NAME: u32 = tag(0x0010, 0x0010);
const PATIENT_ID: u32 = tag(0x0010, 0x0020);
const ISSUER_OF_PATIENT_ID: u32 = tag(0x0010, 0x0021);
const TYPE_OF_PATIENT_ID: u32 = tag(0x0010, 0x0022);
const PATIENT_BIRTH_DATE: u32 = tag(0x0010, 0x0030);
const PATIENT_SEX: u32 = tag(0x0010, 0x0040);
const OTHER_PATIENT_IDS_SEQUENCE: u32 = tag(0x0010, 0x1002);
const ISSUER_QUALIFIERS_SEQUENCE: u32 = tag(0x0010, 0x0024);
const OTHER_PATIENT_IDS: u32 = tag(0x0010, 0x1000);
const OTHER_PATIENT_NAMES: u32 = tag(0x0010, 0x1001);

/// The patient module of a shared object as the receiving facility sees it: its own
/// patient's ID, issuer, name, birth date and sex, with the origin's ID and issuer kept in
/// Other Patient IDs (the issuer being the origin facility when it named none). The origin's
/// other identifiers (type and qualifiers of its ID, other IDs and names) are left out.
///
/// Text is encoded in the object's character set. When that set cannot carry the name and is
/// the default repertoire (of which UTF-8 is a superset, so the object's other text still
/// reads the same), everything goes in UTF-8, declared as such. Otherwise the name loses the
/// component groups the set cannot carry, ideographic first.
fn patient_elements(shared: &Shared, charset: &SpecificCharacterSet, out: &mut Replacements) {
    let local = &shared.local;
    let utf8 = SpecificCharacterSet::utf8();
    let fits = |set: &SpecificCharacterSet| {
        set.encode(&local.name, TextKind::PersonName).is_ok()
            && [&local.patient_id, &local.issuer].iter().all(|t| set.encode(t, TextKind::MultiValued).is_ok())
    };
    let charset = if !fits(charset) && charset.is_default() {
        out.element(SPECIFIC_CHARACTER_SET, *b"CS", utf8.value().as_bytes());
        &utf8
    } else {
        charset
    };
    // Whatever cannot be encoded goes as its ASCII characters: IDs and issuers are ASCII in
    // practice, and the set holds ASCII whatever else it holds.
    let text = |value: &str| {
        charset
            .encode(value, TextKind::MultiValued)
            .unwrap_or_else(|_| value.chars().filter(char::is_ascii).collect::<String>().into_bytes())
    };
    out.element(PATIENT_ID, *b"LO", &text(&local.patient_id));
    out.element(ISSUER_OF_PATIENT_ID, *b"LO", &text(&local.issuer));
    out.element(PATIENT_NAME, *b"PN", &encodable_name(&local.name, charset));
    out.element(PATIENT_BIRTH_DATE, *b"DA", local.birth_date.as_bytes());
    out.element(PATIENT_SEX, *b"CS", local.sex.as_bytes());
    for origin_only in [TYPE_OF_PATIENT_ID, ISSUER_QUALIFIERS_SEQUENCE, OTHER_PATIENT_IDS, OTHER_PATIENT_NAMES] {
        out.remove(origin_only);
    }
    let origin_issuer = shared.origin_issuer();
    let origin = vec![
        (PATIENT_ID, *b"LO", text(&shared.origin_patient_id)),
        (ISSUER_OF_PATIENT_ID, *b"LO", text(origin_issuer)),
        (TYPE_OF_PATIENT_ID, *b"CS", b"TEXT".to_vec()),
    ];
    out.sequence(OTHER_PATIENT_IDS_SEQUENCE, &[origin]);
}

/// A person name encoded in `charset`, without the component groups it cannot carry
/// (ideographic first, then phonetic).
fn encodable_name(name: &str, charset: &SpecificCharacterSet) -> Vec<u8> {
    let name = PersonName::parse(name);
    let [a, i, p] = name.groups().map(str::to_owned);
    let join = |groups: [&str; 3]| groups.join("=").trim_end_matches('=').to_owned();
    [join([&a, &i, &p]), join([&a, "", &p]), join([&a, "", ""])]
        .iter()
        .find_map(|candidate| charset.encode(candidate, TextKind::PersonName).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_only_the_groups_the_set_cannot_carry() {
        let jis = SpecificCharacterSet::parse("\\ISO 2022 IR 87");
        // A character the set has not (here a Hangul one) takes the ideographic group with
        // it; the phonetic one stays.
        let encoded = encodable_name("TAKADA^HANAKO=한田^花子=タカダ^ハナコ", &jis);
        let (decoded, _) = jis.decode_values(&encoded, TextKind::PersonName);
        assert_eq!(decoded, ["TAKADA^HANAKO==タカダ^ハナコ"]);
        assert_eq!(jis.decode_values(&encodable_name("高田^花子", &jis), TextKind::PersonName).0, ["高田^花子"]);
        let latin = SpecificCharacterSet::parse("ISO_IR 100");
        assert_eq!(encodable_name("Takada^Hanako=高田^花子=たかだ^はなこ", &latin), b"Takada^Hanako");
    }
}
