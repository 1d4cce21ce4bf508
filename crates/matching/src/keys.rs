//! Match keys, derived from a record's raw values; the raw values themselves are never
//! rewritten.
//!
//! - Kana comes from the phonetic component group, or failing that from a group written in
//!   kana, or is read from romaji (Hepburn, Kunrei and Nihon-shiki all read the same).
//!   Its strict key folds only what cannot distinguish two names: width, hiragana and
//!   katakana, separated voicing marks, spaces and middle dots. Its loose key also folds
//!   spelling variants: long vowels, small kana, ヴ/ブ, ヂ/ジ, ヅ/ズ (see
//!   [`renkei_domain::names::fuzzy_name_key`]).
//! - Kanji comes from the ideographic group. Its exact key drops ideographic variation
//!   selectors; its folded key maps each character through the 異体字 table. A name with a
//!   private-use character (a facility's 外字) has no kanji key: the code point means
//!   something different at every facility.

use renkei_domain::names::{PersonName, fuzzy_name_key, name_key};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::variants;

/// A facility-local patient record as the archive knows it: the DICOM Patient's Name
/// (`alphabetic=ideographic=phonetic`, each `family^given`), birth date (`YYYYMMDD`) and sex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub birth_date: String,
    pub sex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sex {
    Male,
    Female,
    Other,
}

impl Sex {
    /// Reads DICOM (M/F/O) and FHIR (male/female/other) codes; anything else is unknown.
    pub fn parse(value: &str) -> Option<Sex> {
        match value.trim().to_ascii_lowercase().as_str() {
            "m" | "male" => Some(Sex::Male),
            "f" | "female" => Some(Sex::Female),
            "o" | "other" => Some(Sex::Other),
            _ => None,
        }
    }
}

/// A calendar date as `yyyymmdd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BirthDate(pub u32);

impl BirthDate {
    /// Reads `YYYYMMDD` (DICOM DA) or `YYYY-MM-DD` (FHIR); anything else is unknown.
    pub fn parse(value: &str) -> Option<BirthDate> {
        let value = value.trim();
        let digits: String = match value.len() {
            8 => value.to_owned(),
            10 if value.as_bytes()[4] == b'-' && value.as_bytes()[7] == b'-' => value.replace('-', ""),
            _ => return None,
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let date: u32 = digits.parse().ok()?;
        let (year, month, day) = (date / 10_000, date / 100 % 100, date % 100);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days).contains(&day).then_some(BirthDate(date))
    }

    pub fn year(self) -> u32 {
        self.0 / 10_000
    }

    /// Month and day, as `mmdd`.
    pub fn month_day(self) -> u32 {
        self.0 % 10_000
    }
}

/// One name part (family or given) in kana.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kana {
    pub strict: String,
    pub loose: String,
    /// Romaji without apostrophes is ambiguous where an N meets a vowel or Y: Shinya is
    /// シンヤ, Kana is カナ. The reading with ン, in loose form, when it differs.
    pub syllabic_n: Option<String>,
}

/// One name part (family or given) in kanji.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kanji {
    pub exact: String,
    pub folded: String,
}

/// A name split into family and given parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts<T> {
    pub family: Option<T>,
    pub given: Option<T>,
}

impl<T> Default for NameParts<T> {
    fn default() -> Self {
        NameParts { family: None, given: None }
    }
}

/// Everything the comparisons look at, derived once per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub kana: NameParts<Kana>,
    pub kanji: NameParts<Kanji>,
    pub birth_date: Option<BirthDate>,
    pub sex: Option<Sex>,
}

impl Keys {
    pub fn of(record: &Record) -> Keys {
        let name = PersonName::parse(&record.name);
        let groups = name.groups();
        // The phonetic group first; then whichever group is written in kana; then romaji.
        let kana_source =
            std::iter::once(groups[2]).chain(groups).find(|g| g.chars().any(is_kana)).map(|g| split(g, kana)).or_else(
                || groups.into_iter().find(|g| g.chars().any(|c| c.is_ascii_alphabetic())).map(|g| split(g, romaji)),
            );
        let kanji_source =
            std::iter::once(groups[1]).chain(groups).find(|g| g.chars().any(is_ideograph)).map(|g| split(g, kanji));
        Keys {
            kana: kana_source.unwrap_or_default(),
            kanji: kanji_source.unwrap_or_default(),
            birth_date: BirthDate::parse(&record.birth_date),
            sex: Sex::parse(&record.sex),
        }
    }
}

/// Splits one component group into family and given. Without `^`, a space separates them
/// (as people type); failing that, the whole name is the family part, as JAHIS allows.
fn split<T>(group: &str, key: fn(&str) -> Option<T>) -> NameParts<T> {
    let (family, given) = match group.split_once('^') {
        Some((family, rest)) => (family, rest.split('^').next().unwrap_or_default()),
        None => match group.trim().split_once([' ', '\u{3000}']) {
            Some((family, given)) => (family, given),
            None => (group, ""),
        },
    };
    NameParts { family: key(family), given: key(given) }
}

fn kana(value: &str) -> Option<Kana> {
    let strict = strict_kana(value);
    (!strict.is_empty()).then(|| Kana { loose: fuzzy_name_key(&strict), strict, syllabic_n: None })
}

fn romaji(value: &str) -> Option<Kana> {
    let mut read = kana(&read_romaji(value, false))?;
    let other = fuzzy_name_key(&strict_kana(&read_romaji(value, true)));
    read.syllabic_n = (other != read.loose).then_some(other);
    Some(read)
}

fn kanji(value: &str) -> Option<Kanji> {
    if value.chars().any(|c| ('\u{E000}'..='\u{F8FF}').contains(&c)) {
        return None;
    }
    let exact: String = name_key(value).chars().filter(|c| !is_variation_selector(*c) && !is_separator(*c)).collect();
    (!exact.is_empty()).then(|| Kanji { folded: exact.chars().map(variants::fold).collect(), exact })
}

/// Width, script and case folded; separators dropped; voicing marks composed.
pub fn strict_kana(value: &str) -> String {
    // NFKC turns a spacing voicing mark (゛) into a space and a combining one: drop the
    // space and compose again, so that カ゛ and ガ are one key.
    let spaced = name_key(value);
    let joined: String = spaced.chars().filter(|c| !is_separator(*c)).collect();
    joined.nfc().collect()
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\u{3000}' | '・' | '･' | '-' | '‐' | '−' | '―' | '~' | '.' | ',')
}

fn is_variation_selector(c: char) -> bool {
    ('\u{FE00}'..='\u{FE0F}').contains(&c) || ('\u{E0100}'..='\u{E01EF}').contains(&c)
}

fn is_kana(c: char) -> bool {
    ('\u{3041}'..='\u{30FA}').contains(&c) || ('\u{FF66}'..='\u{FF9D}').contains(&c)
}

fn is_ideograph(c: char) -> bool {
    matches!(c,
        '\u{3005}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}' | '\u{E000}'..='\u{F8FF}')
}

/// Romaji syllables and their kana, longest first within each consonant.
const SYLLABLES: &[(&str, &str)] = &[
    ("KYA", "キャ"),
    ("KYU", "キュ"),
    ("KYO", "キョ"),
    ("GYA", "ギャ"),
    ("GYU", "ギュ"),
    ("GYO", "ギョ"),
    ("SHA", "シャ"),
    ("SHU", "シュ"),
    ("SHO", "ショ"),
    ("SHE", "シェ"),
    ("SHI", "シ"),
    ("SYA", "シャ"),
    ("SYU", "シュ"),
    ("SYO", "ショ"),
    ("JYA", "ジャ"),
    ("JYU", "ジュ"),
    ("JYO", "ジョ"),
    ("ZYA", "ジャ"),
    ("ZYU", "ジュ"),
    ("ZYO", "ジョ"),
    ("CHA", "チャ"),
    ("CHU", "チュ"),
    ("CHO", "チョ"),
    ("CHE", "チェ"),
    ("CHI", "チ"),
    ("TYA", "チャ"),
    ("TYU", "チュ"),
    ("TYO", "チョ"),
    ("TSU", "ツ"),
    ("NYA", "ニャ"),
    ("NYU", "ニュ"),
    ("NYO", "ニョ"),
    ("HYA", "ヒャ"),
    ("HYU", "ヒュ"),
    ("HYO", "ヒョ"),
    ("BYA", "ビャ"),
    ("BYU", "ビュ"),
    ("BYO", "ビョ"),
    ("PYA", "ピャ"),
    ("PYU", "ピュ"),
    ("PYO", "ピョ"),
    ("MYA", "ミャ"),
    ("MYU", "ミュ"),
    ("MYO", "ミョ"),
    ("RYA", "リャ"),
    ("RYU", "リュ"),
    ("RYO", "リョ"),
    ("JA", "ジャ"),
    ("JU", "ジュ"),
    ("JO", "ジョ"),
    ("JE", "ジェ"),
    ("JI", "ジ"),
    ("KA", "カ"),
    ("KI", "キ"),
    ("KU", "ク"),
    ("KE", "ケ"),
    ("KO", "コ"),
    ("GA", "ガ"),
    ("GI", "ギ"),
    ("GU", "グ"),
    ("GE", "ゲ"),
    ("GO", "ゴ"),
    ("SA", "サ"),
    ("SI", "シ"),
    ("SU", "ス"),
    ("SE", "セ"),
    ("SO", "ソ"),
    ("ZA", "ザ"),
    ("ZI", "ジ"),
    ("ZU", "ズ"),
    ("ZE", "ゼ"),
    ("ZO", "ゾ"),
    ("TA", "タ"),
    ("TI", "チ"),
    ("TU", "ツ"),
    ("TE", "テ"),
    ("TO", "ト"),
    ("DA", "ダ"),
    ("DI", "ヂ"),
    ("DU", "ヅ"),
    ("DE", "デ"),
    ("DO", "ド"),
    ("NA", "ナ"),
    ("NI", "ニ"),
    ("NU", "ヌ"),
    ("NE", "ネ"),
    ("NO", "ノ"),
    ("HA", "ハ"),
    ("HI", "ヒ"),
    ("HU", "フ"),
    ("HE", "ヘ"),
    ("HO", "ホ"),
    ("FA", "ファ"),
    ("FI", "フィ"),
    ("FU", "フ"),
    ("FE", "フェ"),
    ("FO", "フォ"),
    ("BA", "バ"),
    ("BI", "ビ"),
    ("BU", "ブ"),
    ("BE", "ベ"),
    ("BO", "ボ"),
    ("PA", "パ"),
    ("PI", "ピ"),
    ("PU", "プ"),
    ("PE", "ペ"),
    ("PO", "ポ"),
    ("MA", "マ"),
    ("MI", "ミ"),
    ("MU", "ム"),
    ("ME", "メ"),
    ("MO", "モ"),
    ("YA", "ヤ"),
    ("YU", "ユ"),
    ("YO", "ヨ"),
    ("RA", "ラ"),
    ("RI", "リ"),
    ("RU", "ル"),
    ("RE", "レ"),
    ("RO", "ロ"),
    ("WA", "ワ"),
    ("WI", "ウィ"),
    ("WE", "ウェ"),
    ("WO", "ヲ"),
    ("VA", "ヴァ"),
    ("VI", "ヴィ"),
    ("VU", "ヴ"),
    ("VE", "ヴェ"),
    ("VO", "ヴォ"),
    ("A", "ア"),
    ("I", "イ"),
    ("U", "ウ"),
    ("E", "エ"),
    ("O", "オ"),
];

/// Reads romaji as katakana. Macrons and circumflexes lengthen the vowel; a doubled
/// consonant is ッ; N (or M before B, P, M) that starts no syllable is ン; letters that
/// start no syllable (the H of Satoh) are dropped, which the loose key then forgives.
pub fn romaji_to_kana(value: &str) -> String {
    read_romaji(value, false)
}

/// Reads romaji; with `syllabic_n`, an N before a vowel or Y is ン too (Shinya as シンヤ).
fn read_romaji(value: &str, syllabic_n: bool) -> String {
    let mut letters = String::with_capacity(value.len());
    for c in value.nfkd() {
        match c {
            '\u{0304}' | '\u{0302}' => {
                if let Some(vowel) = letters.chars().last() {
                    letters.push(if vowel == 'O' { 'U' } else { vowel });
                }
            }
            c if c.is_ascii_alphabetic() => letters.push(c.to_ascii_uppercase()),
            '\'' => letters.push('\''),
            _ => {}
        }
    }
    let letters = letters.replace('L', "R");
    let bytes = letters.as_bytes();
    let mut out = String::with_capacity(letters.len() * 3);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &letters[i..];
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        let is_vowel = |b: Option<u8>| matches!(b, Some(b'A' | b'I' | b'U' | b'E' | b'O'));
        if c == b'\'' {
            i += 1;
            continue;
        }
        // ン: an N that starts no syllable (or, read the other way, any N after the first
        // letter), and Hepburn's M before B, P and M.
        let syllabic = c == b'N' && ((!is_vowel(next) && next != Some(b'Y')) || (syllabic_n && i > 0));
        if syllabic || (c == b'M' && matches!(next, Some(b'B' | b'P' | b'M'))) {
            out.push('ン');
            i += 1;
            continue;
        }
        if !is_vowel(Some(c)) && (next == Some(c) || (c == b'T' && next == Some(b'C'))) {
            out.push('ッ');
            i += 1;
            continue;
        }
        match SYLLABLES.iter().find(|(romaji, _)| rest.starts_with(romaji)) {
            Some((romaji, kana)) => {
                out.push_str(kana);
                i += romaji.len();
            }
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Keys {
        Keys::of(&Record { name: name.into(), birth_date: "19800102".into(), sex: "F".into() })
    }

    #[test]
    fn a_japanese_name_yields_kana_and_kanji_keys() {
        let keys = record("Yamada^Tarou=山田^太郎=やまだ^たろう");
        let family = keys.kana.family.expect("kana family");
        assert_eq!(family.strict, "ヤマダ");
        assert_eq!(keys.kana.given.expect("kana given").loose, "タロ");
        assert_eq!(keys.kanji.family.expect("kanji").exact, "山田");
        assert_eq!(keys.birth_date, Some(BirthDate(19800102)));
        assert_eq!(keys.sex, Some(Sex::Female));
    }

    #[test]
    fn half_width_and_separated_voicing_marks_are_the_same_strict_kana() {
        let a = record("=^=ﾔﾏﾀﾞ^ﾀﾛｳ");
        let b = record("=^=ヤマタ\u{309B}^タロウ");
        let c = record("=^=やまだ^たろう");
        assert_eq!(a.kana, c.kana);
        assert_eq!(b.kana, c.kana);
    }

    #[test]
    fn romaji_is_read_into_kana() {
        assert_eq!(romaji_to_kana("Yamada"), "ヤマダ");
        assert_eq!(romaji_to_kana("Shinichi"), "シニチ");
        assert_eq!(romaji_to_kana("Shin'ichi"), "シンイチ");
        assert_eq!(romaji_to_kana("Hokkaido"), "ホッカイド");
        assert_eq!(romaji_to_kana("Nanba"), romaji_to_kana("Namba"));
        assert_eq!(romaji_to_kana("Kenta"), "ケンタ");
        assert_eq!(romaji_to_kana("Hattori"), "ハットリ");
        assert_eq!(romaji_to_kana("Matchan"), "マッチャン");
        assert_eq!(romaji_to_kana("Tuda"), romaji_to_kana("Tsuda"));
        // Shinya is シンヤ, and Kana カナ: both readings are kept where they differ.
        let given = |v: &str| record(&format!("Tanaka^{v}")).kana.given.expect("given");
        assert_eq!(given("Shinya").syllabic_n.as_deref(), Some("シンヤ"));
        assert_eq!(given("Kenichi").syllabic_n.as_deref(), Some("ケンイチ"));
        assert_eq!(given("Kana").syllabic_n.as_deref(), Some("カンア"));
        assert_eq!(given("Kenta").syllabic_n, None);
        assert_eq!(romaji_to_kana("Sizuka"), romaji_to_kana("Shizuka"));
        // Long vowels however written meet in the loose key.
        let loose = |v: &str| record(&format!("Sato^{v}")).kana.given.expect("given").loose;
        assert_eq!(loose("Yuuko"), loose("Yūko"));
        assert_eq!(loose("Yuko"), loose("Yuuko"));
        let family = |v: &str| record(v).kana.family.expect("family").loose;
        assert_eq!(family("Satoh"), family("Satou"));
        assert_eq!(family("SATO"), family("=^=サトウ"));
    }

    #[test]
    fn names_without_a_caret_split_on_a_space_or_stay_whole() {
        let spaced = record("=山田　太郎=ヤマダ タロウ");
        assert_eq!(spaced.kanji.given.expect("given").exact, "太郎");
        assert_eq!(spaced.kana.given.expect("given").strict, "タロウ");
        let whole = record("=山田太郎");
        assert_eq!(whole.kanji.family.expect("family").exact, "山田太郎");
        assert_eq!(whole.kanji.given, None);
    }

    #[test]
    fn kanji_variants_fold_but_stay_distinct_when_exact() {
        let a = record("=髙橋^一郎").kanji.family.expect("family");
        let b = record("=高橋^一郎").kanji.family.expect("family");
        assert_ne!(a.exact, b.exact);
        assert_eq!(a.folded, b.folded);
        // An ideographic variation selector is dropped from both keys.
        let ivs = record("=葛\u{E0100}西^一郎").kanji.family.expect("family");
        assert_eq!(ivs.exact, "葛西");
    }

    #[test]
    fn a_private_use_character_leaves_no_kanji_key() {
        let keys = record("=\u{E123}田^花子=ヨシダ^ハナコ");
        assert_eq!(keys.kanji.family, None);
        assert!(keys.kanji.given.is_some());
        assert!(keys.kana.family.is_some());
    }

    #[test]
    fn unknown_values_are_missing_not_wrong() {
        let keys = Keys::of(&Record { name: String::new(), birth_date: "1980".into(), sex: "U".into() });
        assert_eq!(keys, Keys::default());
        assert_eq!(BirthDate::parse("1980-01-02"), Some(BirthDate(19800102)));
        assert_eq!(BirthDate::parse("19801302"), None);
        assert_eq!(BirthDate::parse("19800231"), None, "no 31 February");
        assert_eq!(BirthDate::parse("20000229"), Some(BirthDate(20000229)), "2000 was a leap year");
        assert_eq!(BirthDate::parse("19000229"), None, "1900 was not");
        assert_eq!(BirthDate::parse("1980-0-102"), None, "dashes only where ISO puts them");
    }
}
