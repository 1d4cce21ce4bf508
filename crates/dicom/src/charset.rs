//! Specific Character Set (0008,0005): decoding and encoding of text values per PS3.5
//! 6.1.2.5 and Annex H, for the Japanese sets above all.
//!
//! - Multi-valued (0008,0005) switches on ISO 2022 code extensions; an empty first value
//!   means ISO 2022 IR 6.
//! - G0/G1 designations follow the escapes, per value: `ESC ( B`, `ESC ( J`, `ESC ) I`,
//!   `ESC $ B`, `ESC $ ( D` (and `ESC - A`, `ESC $ ) C`, `ESC $ ) A`). G0 returns to the first
//!   value's set at `^` and `=` (person names), at `\` and at control characters, but only
//!   where those bytes stand alone: inside a two-byte set they are halves of characters (ぼ is
//!   JIS 0x245C), so values are split after decoding, never before.
//! - JIS X 0208 and JIS X 0212 are read through `encoding_rs`'s EUC-JP tables. Six code
//!   points are mapped the way JIS X 0208 itself, pydicom, DCMTK and iconv map them (0x2141
//!   is U+301C WAVE DASH, not U+FF5E), and the encoder accepts both forms.
//! - Real-world errors are tolerated and reported as [`CharsetWarning`]s: Shift-JIS bytes
//!   under an ISO 2022 label, a value that ends inside a two-byte set, an escape to a set
//!   that was not declared, and bytes that do not fit the declared set.
//! - The encoder chooses, per character, the first declared set that has it, emits escapes
//!   per component group, returns to the first value's set before every delimiter and at the
//!   end of the value, and refuses a character no declared set can represent.

use std::collections::HashMap;
use std::sync::OnceLock;

const ESC: u8 = 0x1B;

/// A graphic character set that ISO 2022 code extensions can designate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repertoire {
    /// ISO-IR 6, ASCII (G0).
    Ascii,
    /// ISO-IR 14, JIS X 0201 Romaji (G0).
    JisRoman,
    /// ISO-IR 13, JIS X 0201 Katakana (G1, bytes 0xA1-0xDF).
    Katakana,
    /// ISO-IR 100, Latin-1 upper half (G1).
    Latin1,
    /// ISO-IR 87, JIS X 0208 kanji and kana (G0, two bytes).
    Jisx0208,
    /// ISO-IR 159, JIS X 0212 supplementary kanji (G0, two bytes).
    Jisx0212,
    /// ISO-IR 149, KS X 1001 (G1, two bytes).
    Ksx1001,
    /// ISO-IR 58, GB 2312 (G1, two bytes).
    Gb2312,
}

impl Repertoire {
    fn escape(self) -> &'static [u8] {
        match self {
            Self::Ascii => b"\x1b(B",
            Self::JisRoman => b"\x1b(J",
            Self::Katakana => b"\x1b)I",
            Self::Latin1 => b"\x1b-A",
            Self::Jisx0208 => b"\x1b$B",
            Self::Jisx0212 => b"\x1b$(D",
            Self::Ksx1001 => b"\x1b$)C",
            Self::Gb2312 => b"\x1b$)A",
        }
    }

    fn is_g1(self) -> bool {
        matches!(self, Self::Katakana | Self::Latin1 | Self::Ksx1001 | Self::Gb2312)
    }

    fn is_double_byte_g0(self) -> bool {
        matches!(self, Self::Jisx0208 | Self::Jisx0212)
    }

    fn from_escape(sequence: &[u8]) -> Option<Self> {
        Some(match sequence {
            b"(B" => Self::Ascii,
            b"(J" => Self::JisRoman,
            b")I" => Self::Katakana,
            b"-A" => Self::Latin1,
            // `ESC $ @` is JIS C 6226-1978, JIS X 0208's predecessor: read it as JIS X 0208.
            b"$B" | b"$@" => Self::Jisx0208,
            b"$(D" => Self::Jisx0212,
            b"$)C" => Self::Ksx1001,
            b"$)A" => Self::Gb2312,
            _ => return None,
        })
    }
}

/// Something about a value's encoding that was wrong but could be read anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharsetWarning {
    /// A term of (0008,0005) that Renkei does not know; read as ASCII.
    UnknownTerm(String),
    /// A term used where the standard does not allow it (ISO_IR 192 with code extensions,
    /// a two-byte set as the first value, a non-ISO 2022 name among code extensions).
    MisusedTerm(String),
    /// Shift-JIS bytes under an ISO 2022 label.
    ShiftJisMislabelled,
    /// The value ended inside a two-byte set, without the escape back.
    MissingFinalEscape,
    /// An escape to a set that (0008,0005) does not declare.
    UndeclaredEscape(Repertoire),
    /// An escape sequence Renkei does not know; it was skipped.
    UnknownEscape,
    /// The bytes are not in the declared set; they were read as `detected`.
    WronglyDeclared { detected: &'static str },
    /// Bytes that fit nothing; each became U+FFFD.
    Undecodable,
}

/// How a VR's value is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// PN: `^` and `=` reset the code extensions too.
    PersonName,
    /// SH, LO, CS, UC and the other multi-valued string VRs: `\` separates values.
    MultiValued,
    /// ST, LT, UT: one value, backslash is an ordinary character.
    Text,
}

/// A decoded value and what was wrong with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub warnings: Vec<CharsetWarning>,
}

/// Why text could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("character {character:?} (U+{:04X}) cannot be represented in {charset}", *character as u32)]
    Unrepresentable { character: char, charset: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SingleByte {
    Ascii,
    Latin1,
    /// ISO_IR 13: JIS X 0201, Romaji in the lower half and Katakana in the upper.
    Jisx0201,
    Other(&'static encoding_rs::Encoding),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Utf8,
    Single(SingleByte),
    Extension { initial_g0: Repertoire, initial_g1: Option<Repertoire>, declared: Vec<Repertoire> },
}

/// A parsed Specific Character Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecificCharacterSet {
    mode: Mode,
    /// The value as declared, for echoing it back.
    value: String,
    /// Problems with the declaration itself.
    pub warnings: Vec<CharsetWarning>,
}

impl Default for SpecificCharacterSet {
    fn default() -> Self {
        Self { mode: Mode::Single(SingleByte::Ascii), value: String::new(), warnings: Vec::new() }
    }
}

fn single_term(term: &str) -> Option<Mode> {
    use encoding_rs::*;
    Some(match term {
        "" | "ISO_IR 6" => Mode::Single(SingleByte::Ascii),
        "ISO_IR 100" => Mode::Single(SingleByte::Latin1),
        "ISO_IR 13" => Mode::Single(SingleByte::Jisx0201),
        "ISO_IR 192" => Mode::Utf8,
        "ISO_IR 101" => Mode::Single(SingleByte::Other(ISO_8859_2)),
        "ISO_IR 109" => Mode::Single(SingleByte::Other(ISO_8859_3)),
        "ISO_IR 110" => Mode::Single(SingleByte::Other(ISO_8859_4)),
        "ISO_IR 144" => Mode::Single(SingleByte::Other(ISO_8859_5)),
        "ISO_IR 127" => Mode::Single(SingleByte::Other(ISO_8859_6)),
        "ISO_IR 126" => Mode::Single(SingleByte::Other(ISO_8859_7)),
        "ISO_IR 138" => Mode::Single(SingleByte::Other(ISO_8859_8)),
        "ISO_IR 148" => Mode::Single(SingleByte::Other(WINDOWS_1254)),
        "ISO_IR 166" => Mode::Single(SingleByte::Other(WINDOWS_874)),
        "GB18030" => Mode::Single(SingleByte::Other(GB18030)),
        "GBK" => Mode::Single(SingleByte::Other(GBK)),
        _ => return None,
    })
}

/// The G0 and G1 sets an ISO 2022 term designates.
fn extension_term(term: &str) -> Option<(Option<Repertoire>, Option<Repertoire>)> {
    use Repertoire::*;
    Some(match term {
        "" | "ISO 2022 IR 6" => (Some(Ascii), None),
        "ISO 2022 IR 13" => (Some(JisRoman), Some(Katakana)),
        "ISO 2022 IR 87" => (Some(Jisx0208), None),
        "ISO 2022 IR 159" => (Some(Jisx0212), None),
        "ISO 2022 IR 100" => (None, Some(Latin1)),
        "ISO 2022 IR 149" => (None, Some(Ksx1001)),
        "ISO 2022 IR 58" => (None, Some(Gb2312)),
        _ => return None,
    })
}

impl SpecificCharacterSet {
    /// UTF-8 (ISO_IR 192).
    pub fn utf8() -> Self {
        Self { mode: Mode::Utf8, value: "ISO_IR 192".into(), warnings: Vec::new() }
    }

    /// Parses the value of (0008,0005) (already decoded as ASCII).
    pub fn parse(value: &str) -> Self {
        let terms: Vec<&str> = value.split('\\').map(|t| t.trim_matches([' ', '\0'])).collect();
        let value = terms.join("\\");
        let mut warnings = Vec::new();
        let is_extension = terms.len() > 1 || terms[0].starts_with("ISO 2022");
        if !is_extension {
            let mode = single_term(terms[0]).unwrap_or_else(|| {
                warnings.push(CharsetWarning::UnknownTerm(terms[0].to_owned()));
                Mode::Single(SingleByte::Ascii)
            });
            return Self { mode, value, warnings };
        }
        let mut declared = Vec::new();
        let (mut initial_g0, mut initial_g1) = (Repertoire::Ascii, None);
        for (index, term) in terms.iter().enumerate() {
            // `ISO_IR 13` among code extensions is a common alias of `ISO 2022 IR 13`.
            let normalized = match *term {
                "ISO_IR 13" => "ISO 2022 IR 13",
                "ISO_IR 100" => "ISO 2022 IR 100",
                "ISO_IR 6" => "ISO 2022 IR 6",
                other => other,
            };
            if normalized != *term {
                warnings.push(CharsetWarning::MisusedTerm((*term).to_owned()));
            }
            let Some((g0, g1)) = extension_term(normalized) else {
                if single_term(term).is_some() {
                    warnings.push(CharsetWarning::MisusedTerm((*term).to_owned()));
                } else {
                    warnings.push(CharsetWarning::UnknownTerm((*term).to_owned()));
                }
                continue;
            };
            declared.extend(g0);
            declared.extend(g1);
            if index == 0 {
                match g0 {
                    Some(g0) if g0.is_double_byte_g0() => {
                        // A two-byte set cannot be the default; start from ASCII.
                        warnings.push(CharsetWarning::MisusedTerm((*term).to_owned()));
                    }
                    Some(g0) => initial_g0 = g0,
                    None => {}
                }
                initial_g1 = g1;
            }
        }
        if !declared.contains(&Repertoire::Ascii) && initial_g0 == Repertoire::Ascii {
            declared.insert(0, Repertoire::Ascii);
        }
        Self { mode: Mode::Extension { initial_g0, initial_g1, declared }, value, warnings }
    }

    /// The value to write as (0008,0005) for text encoded with this set.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether text in this set can only be ASCII, so it needs no declaration.
    pub fn is_default(&self) -> bool {
        self.mode == Mode::Single(SingleByte::Ascii)
    }

    /// Decodes one element's bytes, all its values, to text. Padding is not removed.
    pub fn decode(&self, bytes: &[u8], kind: TextKind) -> Decoded {
        let mut warnings = Vec::new();
        let text = match &self.mode {
            Mode::Utf8 => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => guess(bytes, &mut warnings),
            },
            Mode::Single(set) => decode_single(*set, bytes, &mut warnings),
            Mode::Extension { initial_g0, initial_g1, declared } => {
                decode_extension(bytes, kind, *initial_g0, *initial_g1, declared, &mut warnings)
            }
        };
        Decoded { text, warnings }
    }

    /// Decodes and splits into values (after decoding), removing each value's padding.
    pub fn decode_values(&self, bytes: &[u8], kind: TextKind) -> (Vec<String>, Vec<CharsetWarning>) {
        let Decoded { text, warnings } = self.decode(bytes, kind);
        let values = match kind {
            TextKind::Text => vec![text.trim_end_matches([' ', '\0']).to_owned()],
            _ => text.split('\\').map(|v| v.trim_matches([' ', '\0']).to_owned()).collect(),
        };
        (values, warnings)
    }

    /// Encodes text (all values, joined by `\`) in this set.
    pub fn encode(&self, text: &str, kind: TextKind) -> Result<Vec<u8>, EncodeError> {
        let refuse = |character| EncodeError::Unrepresentable { character, charset: self.describe() };
        match &self.mode {
            Mode::Utf8 => Ok(text.as_bytes().to_vec()),
            Mode::Single(SingleByte::Ascii) => {
                text.chars().map(|c| if c.is_ascii() { Ok(c as u8) } else { Err(refuse(c)) }).collect()
            }
            Mode::Single(SingleByte::Latin1) => {
                text.chars().map(|c| if (c as u32) < 0x100 { Ok(c as u8) } else { Err(refuse(c)) }).collect()
            }
            Mode::Single(SingleByte::Jisx0201) => text
                .chars()
                .map(|c| match c {
                    c if c.is_ascii() => Ok(c as u8),
                    c => katakana_byte(c).ok_or_else(|| refuse(c)),
                })
                .collect(),
            Mode::Single(SingleByte::Other(encoding)) => {
                let mut encoder = encoding.new_encoder();
                let mut out = Vec::with_capacity(text.len() * 2);
                let (result, _) = encoder.encode_from_utf8_to_vec_without_replacement(text, &mut out, true);
                match result {
                    encoding_rs::EncoderResult::Unmappable(c) => Err(refuse(c)),
                    _ => Ok(out),
                }
            }
            Mode::Extension { initial_g0, initial_g1, declared } => {
                encode_extension(text, kind, *initial_g0, *initial_g1, declared).map_err(refuse)
            }
        }
    }

    fn describe(&self) -> String {
        if self.value.is_empty() { "the default character repertoire".into() } else { self.value.clone() }
    }
}

fn katakana_byte(c: char) -> Option<u8> {
    let code = c as u32;
    (0xFF61..=0xFF9F).contains(&code).then(|| (code - 0xFF61 + 0xA1) as u8)
}

fn decode_single(set: SingleByte, bytes: &[u8], warnings: &mut Vec<CharsetWarning>) -> String {
    match set {
        SingleByte::Latin1 => {
            // UTF-8 labelled ISO_IR 100 is a common mistake; Latin-1 text is almost never
            // valid UTF-8 with multi-byte sequences.
            if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
                warnings.push(CharsetWarning::WronglyDeclared { detected: "UTF-8" });
                return String::from_utf8_lossy(bytes).into_owned();
            }
            bytes.iter().map(|b| *b as char).collect()
        }
        SingleByte::Ascii if bytes.is_ascii() => bytes.iter().map(|b| *b as char).collect(),
        SingleByte::Ascii => guess(bytes, warnings),
        SingleByte::Jisx0201 => {
            let mut out = String::with_capacity(bytes.len());
            let mut rest = bytes;
            while let Some((&b, tail)) = rest.split_first() {
                match b {
                    0x00..=0x7F => out.push(b as char),
                    0xA1..=0xDF => out.push(char::from_u32(0xFF61 + (b - 0xA1) as u32).unwrap_or('\u{FFFD}')),
                    _ => {
                        // Shift-JIS kanji under ISO_IR 13 (which has none): read the rest so.
                        warnings.push(CharsetWarning::ShiftJisMislabelled);
                        out.push_str(&encoding_rs::SHIFT_JIS.decode_without_bom_handling(rest).0);
                        break;
                    }
                }
                rest = tail;
            }
            out
        }
        SingleByte::Other(encoding) => {
            let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
            if had_errors {
                warnings.push(CharsetWarning::Undecodable);
            }
            text.into_owned()
        }
    }
}

/// Reads bytes that do not fit their declaration: UTF-8, then Shift-JIS, then Latin-1.
fn guess(bytes: &[u8], warnings: &mut Vec<CharsetWarning>) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        warnings.push(CharsetWarning::WronglyDeclared { detected: "UTF-8" });
        return text.to_owned();
    }
    if let Some(text) = encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes) {
        warnings.push(CharsetWarning::ShiftJisMislabelled);
        return text.into_owned();
    }
    warnings.push(CharsetWarning::WronglyDeclared { detected: "ISO-8859-1" });
    bytes.iter().map(|b| *b as char).collect()
}

fn is_delimiter(byte: u8, kind: TextKind) -> bool {
    match kind {
        TextKind::PersonName => matches!(byte, b'^' | b'=' | b'\\'),
        TextKind::MultiValued => byte == b'\\',
        TextKind::Text => false,
    }
}

fn push_warning(warnings: &mut Vec<CharsetWarning>, warning: CharsetWarning) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

fn decode_extension(
    bytes: &[u8],
    kind: TextKind,
    initial_g0: Repertoire,
    initial_g1: Option<Repertoire>,
    declared: &[Repertoire],
    warnings: &mut Vec<CharsetWarning>,
) -> String {
    // High bytes without any escape, under a label whose G1 cannot hold them: the whole value
    // is in some other encoding (typically Shift-JIS labelled ISO 2022 IR 87).
    if !bytes.contains(&ESC) && initial_g1.is_none() && !bytes.is_ascii() {
        return guess(bytes, warnings);
    }
    let tables = jis_tables();
    let (mut g0, mut g1) = (initial_g0, initial_g1);
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == ESC {
            // An escape: ESC, intermediate bytes 0x20-0x2F, one final byte 0x30-0x7E.
            let mut end = i + 1;
            while end < bytes.len() && (0x20..=0x2F).contains(&bytes[end]) {
                end += 1;
            }
            let sequence = &bytes[i + 1..(end + 1).min(bytes.len())];
            match Repertoire::from_escape(sequence) {
                Some(repertoire) => {
                    if !declared.contains(&repertoire) {
                        push_warning(warnings, CharsetWarning::UndeclaredEscape(repertoire));
                    }
                    if repertoire.is_g1() {
                        g1 = Some(repertoire);
                    } else {
                        g0 = repertoire;
                    }
                }
                None => push_warning(warnings, CharsetWarning::UnknownEscape),
            }
            i = end + 1;
            continue;
        }
        if b < 0x21 || (!g0.is_double_byte_g0() && is_delimiter(b, kind)) {
            // Controls and delimiters return G0 to the first value's set (PS3.5 6.1.2.5.3).
            if b != b' ' {
                g0 = initial_g0;
            }
            out.push(b as char);
            i += 1;
            continue;
        }
        if b >= 0x80 {
            match g1 {
                Some(Repertoire::Katakana) if (0xA1..=0xDF).contains(&b) => {
                    out.push(char::from_u32(0xFF61 + (b - 0xA1) as u32).unwrap_or('\u{FFFD}'));
                    i += 1;
                }
                Some(Repertoire::Latin1) if b >= 0xA0 => {
                    out.push(b as char);
                    i += 1;
                }
                Some(two_byte @ (Repertoire::Ksx1001 | Repertoire::Gb2312)) if i + 1 < bytes.len() => {
                    let encoding = if two_byte == Repertoire::Ksx1001 { encoding_rs::EUC_KR } else { encoding_rs::GBK };
                    let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[i..i + 2]);
                    if had_errors {
                        push_warning(warnings, CharsetWarning::Undecodable);
                    }
                    out.push_str(&text);
                    i += 2;
                }
                _ => {
                    push_warning(warnings, CharsetWarning::Undecodable);
                    out.push('\u{FFFD}');
                    i += 1;
                }
            }
            continue;
        }
        match g0 {
            Repertoire::Jisx0208 | Repertoire::Jisx0212 => {
                let second = bytes.get(i + 1).copied().filter(|s| (0x21..=0x7E).contains(s));
                let Some(second) = second else {
                    push_warning(warnings, CharsetWarning::Undecodable);
                    out.push('\u{FFFD}');
                    i += 1;
                    continue;
                };
                let table = if g0 == Repertoire::Jisx0208 { &tables.decode_0208 } else { &tables.decode_0212 };
                match table[jis_index(b, second)] {
                    Some(c) => out.push(c),
                    None => {
                        push_warning(warnings, CharsetWarning::Undecodable);
                        out.push('\u{FFFD}');
                    }
                }
                i += 2;
            }
            // JIS X 0201 Romaji differs from ASCII only at 0x5C (¥) and 0x7E (‾); like
            // pydicom and DCMTK, Renkei keeps them as `\` and `~`, so that `\` still separates values.
            _ => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    if g0.is_double_byte_g0() && g0 != initial_g0 {
        push_warning(warnings, CharsetWarning::MissingFinalEscape);
    }
    out
}

fn encode_extension(
    text: &str,
    kind: TextKind,
    initial_g0: Repertoire,
    initial_g1: Option<Repertoire>,
    declared: &[Repertoire],
) -> Result<Vec<u8>, char> {
    let tables = jis_tables();
    let (mut g0, mut g1) = (initial_g0, initial_g1);
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        let code = c as u32;
        let resets = code < 0x21 && c != ' ' || (c.is_ascii() && is_delimiter(code as u8, kind));
        if resets {
            if g0 != initial_g0 {
                out.extend_from_slice(initial_g0.escape());
                g0 = initial_g0;
            }
            out.push(code as u8);
            continue;
        }
        // The current G0 first, then the first value's, then the other declared sets in order.
        let candidates = [g0, initial_g0].into_iter().chain(declared.iter().copied());
        let mut chosen = None;
        for repertoire in candidates {
            let bytes: Option<Vec<u8>> = match repertoire {
                Repertoire::Ascii if c.is_ascii() => Some(vec![code as u8]),
                Repertoire::JisRoman if c.is_ascii() && c != '\\' && c != '~' => Some(vec![code as u8]),
                Repertoire::Katakana => katakana_byte(c).map(|b| vec![b]),
                Repertoire::Latin1 if (0xA0..0x100).contains(&code) => Some(vec![code as u8]),
                Repertoire::Jisx0208 => tables.encode_0208.get(&c).map(|p| p.to_vec()),
                Repertoire::Jisx0212 => tables.encode_0212.get(&c).map(|p| p.to_vec()),
                Repertoire::Ksx1001 | Repertoire::Gb2312 => {
                    let encoding =
                        if repertoire == Repertoire::Ksx1001 { encoding_rs::EUC_KR } else { encoding_rs::GBK };
                    let mut buffer = [0u8; 4];
                    let (bytes, _, unmappable) = encoding.encode(c.encode_utf8(&mut buffer));
                    (!unmappable && bytes.len() == 2 && bytes[0] >= 0xA1 && bytes[1] >= 0xA1).then(|| bytes.to_vec())
                }
                _ => None,
            };
            if let Some(bytes) = bytes {
                chosen = Some((repertoire, bytes));
                break;
            }
        }
        let (repertoire, bytes) = chosen.ok_or(c)?;
        if repertoire.is_g1() {
            if g1 != Some(repertoire) {
                out.extend_from_slice(repertoire.escape());
                g1 = Some(repertoire);
            }
        } else if g0 != repertoire {
            out.extend_from_slice(repertoire.escape());
            g0 = repertoire;
        }
        out.extend_from_slice(&bytes);
    }
    if g0 != initial_g0 {
        out.extend_from_slice(initial_g0.escape());
    }
    Ok(out)
}

fn jis_index(first: u8, second: u8) -> usize {
    (first as usize - 0x21) * 94 + (second as usize - 0x21)
}

/// JIS X 0208 and JIS X 0212 in both directions, built once from `encoding_rs`'s EUC-JP.
struct JisTables {
    decode_0208: Vec<Option<char>>,
    decode_0212: Vec<Option<char>>,
    encode_0208: HashMap<char, [u8; 2]>,
    encode_0212: HashMap<char, [u8; 2]>,
}

/// Where the WHATWG tables (CP932 heritage) differ from JIS X 0208 as pydicom, DCMTK and
/// iconv read it: (JIS code, WHATWG character, JIS character).
const JIS_STANDARD_MAPPINGS: [([u8; 2], char, char); 6] = [
    ([0x21, 0x41], '\u{FF5E}', '\u{301C}'), // WAVE DASH 〜
    ([0x21, 0x42], '\u{2225}', '\u{2016}'), // DOUBLE VERTICAL LINE ‖
    ([0x21, 0x5D], '\u{FF0D}', '\u{2212}'), // MINUS SIGN −
    ([0x21, 0x71], '\u{FFE0}', '\u{00A2}'), // CENT SIGN ¢
    ([0x21, 0x72], '\u{FFE1}', '\u{00A3}'), // POUND SIGN £
    ([0x22, 0x4C], '\u{FFE2}', '\u{00AC}'), // NOT SIGN ¬
];

fn jis_tables() -> &'static JisTables {
    static TABLES: OnceLock<JisTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let decode = |prefix: &[u8], row: u8, cell: u8| -> Option<char> {
            let mut euc = prefix.to_vec();
            euc.extend_from_slice(&[row | 0x80, cell | 0x80]);
            let text = encoding_rs::EUC_JP.decode_without_bom_handling_and_without_replacement(&euc)?;
            let mut chars = text.chars();
            let c = chars.next()?;
            chars.next().is_none().then_some(c)
        };
        let mut tables = JisTables {
            decode_0208: vec![None; 94 * 94],
            decode_0212: vec![None; 94 * 94],
            encode_0208: HashMap::new(),
            encode_0212: HashMap::new(),
        };
        for row in 0x21..=0x7E_u8 {
            for cell in 0x21..=0x7E_u8 {
                let index = jis_index(row, cell);
                if let Some(c) = decode(&[], row, cell) {
                    let c = JIS_STANDARD_MAPPINGS.iter().find(|(_, whatwg, _)| *whatwg == c).map_or(c, |m| m.2);
                    tables.decode_0208[index] = Some(c);
                    tables.encode_0208.entry(c).or_insert([row, cell]);
                }
                if let Some(c) = decode(&[0x8F], row, cell) {
                    tables.decode_0212[index] = Some(c);
                    tables.encode_0212.entry(c).or_insert([row, cell]);
                }
            }
        }
        // Text that came through CP932 carries the WHATWG forms: encode those too.
        for (code, whatwg, _) in JIS_STANDARD_MAPPINGS {
            tables.encode_0208.insert(whatwg, code);
        }
        tables
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H31: &[u8] = &[
        0x59, 0x61, 0x6d, 0x61, 0x64, 0x61, 0x5e, 0x54, 0x61, 0x72, 0x6f, 0x75, 0x3d, 0x1b, 0x24, 0x42, 0x3b, 0x33,
        0x45, 0x44, 0x1b, 0x28, 0x42, 0x5e, 0x1b, 0x24, 0x42, 0x42, 0x40, 0x4f, 0x3a, 0x1b, 0x28, 0x42, 0x3d, 0x1b,
        0x24, 0x42, 0x24, 0x64, 0x24, 0x5e, 0x24, 0x40, 0x1b, 0x28, 0x42, 0x5e, 0x1b, 0x24, 0x42, 0x24, 0x3f, 0x24,
        0x6d, 0x24, 0x26, 0x1b, 0x28, 0x42,
    ];
    const H32: &[u8] = &[
        0xd4, 0xcf, 0xc0, 0xde, 0x5e, 0xc0, 0xdb, 0xb3, 0x3d, 0x1b, 0x24, 0x42, 0x3b, 0x33, 0x45, 0x44, 0x1b, 0x28,
        0x4a, 0x5e, 0x1b, 0x24, 0x42, 0x42, 0x40, 0x4f, 0x3a, 0x1b, 0x28, 0x4a, 0x3d, 0x1b, 0x24, 0x42, 0x24, 0x64,
        0x24, 0x5e, 0x24, 0x40, 0x1b, 0x28, 0x4a, 0x5e, 0x1b, 0x24, 0x42, 0x24, 0x3f, 0x24, 0x6d, 0x24, 0x26, 0x1b,
        0x28, 0x4a,
    ];

    fn decode(charset: &str, bytes: &[u8]) -> Decoded {
        SpecificCharacterSet::parse(charset).decode(bytes, TextKind::PersonName)
    }

    #[test]
    fn ps3_5_h_3_1_both_ways() {
        let set = SpecificCharacterSet::parse("\\ISO 2022 IR 87");
        let decoded = set.decode(H31, TextKind::PersonName);
        assert_eq!(decoded.text, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        assert_eq!(set.encode("Yamada^Tarou=山田^太郎=やまだ^たろう", TextKind::PersonName).as_deref(), Ok(H31));
    }

    #[test]
    fn ps3_5_h_3_2_both_ways() {
        let set = SpecificCharacterSet::parse("ISO 2022 IR 13\\ISO 2022 IR 87");
        let decoded = set.decode(H32, TextKind::PersonName);
        assert_eq!(decoded.text, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう");
        assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        assert_eq!(set.encode("ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", TextKind::PersonName).as_deref(), Ok(H32));
    }

    #[test]
    fn bo_keeps_its_backslash_byte() {
        // くぼた: ぼ is JIS 0x24 0x5C, whose second byte is a backslash.
        let bytes = b"Kubota^Tarou=\x1b$B$/$\\$?\x1b(B^\x1b$BB@O:\x1b(B";
        let set = SpecificCharacterSet::parse("\\ISO 2022 IR 87");
        let (values, warnings) = set.decode_values(bytes, TextKind::PersonName);
        assert_eq!(values, vec!["Kubota^Tarou=くぼた^太郎"]);
        assert!(warnings.is_empty());
        assert_eq!(set.encode("ボ", TextKind::PersonName), Ok(b"\x1b$B%\\\x1b(B".to_vec()));
    }

    #[test]
    fn wave_dash_reads_as_jis_and_encodes_from_both_forms() {
        let set = SpecificCharacterSet::parse("\\ISO 2022 IR 87");
        assert_eq!(set.decode(b"\x1b$B!A\x1b(B", TextKind::MultiValued).text, "\u{301C}");
        assert_eq!(set.encode("\u{301C}", TextKind::MultiValued), Ok(b"\x1b$B!A\x1b(B".to_vec()));
        assert_eq!(set.encode("\u{FF5E}", TextKind::MultiValued), Ok(b"\x1b$B!A\x1b(B".to_vec()));
    }

    #[test]
    fn multi_valued_names_split_after_decoding() {
        let set = SpecificCharacterSet::parse("ISO 2022 IR 13\\ISO 2022 IR 87");
        let bytes = b"\xd4\xcf\xc0\xde\\\xc0\xdb\xb3=\x1b$B;3ED\x1b(J\\\x1b$BB@O:\x1b(J";
        let (values, warnings) = set.decode_values(bytes, TextKind::PersonName);
        assert_eq!(values, vec!["ﾔﾏﾀﾞ", "ﾀﾛｳ=山田", "太郎"]);
        assert!(warnings.is_empty());
    }

    #[test]
    fn padding_after_the_final_escape_is_trimmed() {
        let set = SpecificCharacterSet::parse("\\ISO 2022 IR 87");
        let (values, _) = set.decode_values(b"\x1b$B;3ED\x1b(B ", TextKind::PersonName);
        assert_eq!(values, vec!["山田"]);
    }

    #[test]
    fn jis_x_0212_both_ways() {
        // 丂 (U+4E02) is JIS X 0212 0x3021.
        let set = SpecificCharacterSet::parse("\\ISO 2022 IR 87\\ISO 2022 IR 159");
        let decoded = set.decode(b"\x1b$(D0!\x1b(B", TextKind::PersonName);
        assert_eq!(decoded.text, "丂");
        assert!(decoded.warnings.is_empty());
        assert_eq!(set.encode("山丂", TextKind::PersonName), Ok(b"\x1b$B;3\x1b$(D0!\x1b(B".to_vec()));
    }

    #[test]
    fn single_byte_sets() {
        assert_eq!(decode("ISO_IR 13", b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3").text, "ﾔﾏﾀﾞ^ﾀﾛｳ");
        assert_eq!(decode("ISO_IR 100", b"M\xfcller").text, "Müller");
        assert_eq!(decode("ISO_IR 192", "山田^太郎".as_bytes()).text, "山田^太郎");
        assert_eq!(decode("", b"Yamada").text, "Yamada");
    }

    #[test]
    fn tolerated_errors_are_reported() {
        // Shift-JIS bytes under an ISO 2022 IR 87 label.
        let sjis = encoding_rs::SHIFT_JIS.encode("山田^太郎").0.into_owned();
        let decoded = decode("\\ISO 2022 IR 87", &sjis);
        assert_eq!(decoded.text, "山田^太郎");
        assert_eq!(decoded.warnings, vec![CharsetWarning::ShiftJisMislabelled]);
        // No escape back at the end.
        let decoded = decode("\\ISO 2022 IR 87", b"Yamada=\x1b$B;3ED");
        assert_eq!(decoded.text, "Yamada=山田");
        assert_eq!(decoded.warnings, vec![CharsetWarning::MissingFinalEscape]);
        // An escape to a set the declaration does not name.
        let decoded = decode("ISO_IR 6\\ISO 2022 IR 13", b"\x1b$B;3ED\x1b(B");
        assert_eq!(decoded.text, "山田");
        assert_eq!(decoded.warnings, vec![CharsetWarning::UndeclaredEscape(Repertoire::Jisx0208)]);
        // UTF-8 declared as Latin-1, and undeclared high bytes.
        let decoded = decode("ISO_IR 100", "山田".as_bytes());
        assert_eq!(
            (decoded.text.as_str(), decoded.warnings),
            ("山田", vec![CharsetWarning::WronglyDeclared { detected: "UTF-8" }])
        );
        let decoded = decode("", &encoding_rs::SHIFT_JIS.encode("ヤマダ").0);
        assert_eq!((decoded.text.as_str(), decoded.warnings), ("ヤマダ", vec![CharsetWarning::ShiftJisMislabelled]));
        // Unknown terms and escapes never leak raw bytes.
        assert_eq!(
            SpecificCharacterSet::parse("ISO_IR 999").warnings,
            vec![CharsetWarning::UnknownTerm("ISO_IR 999".into())]
        );
        let decoded = decode("\\ISO 2022 IR 87", b"A\x1b$%ZB");
        assert_eq!(decoded.text, "AB");
        assert_eq!(decoded.warnings, vec![CharsetWarning::UnknownEscape]);
        assert!(!decoded.text.contains('\x1b'));
    }

    #[test]
    fn unrepresentable_characters_are_errors() {
        let error = SpecificCharacterSet::parse("ISO_IR 13").encode("山田", TextKind::PersonName);
        assert!(matches!(error, Err(EncodeError::Unrepresentable { character: '山', .. })));
        assert!(SpecificCharacterSet::parse("\\ISO 2022 IR 87").encode("한", TextKind::PersonName).is_err());
        assert!(SpecificCharacterSet::default().encode("é", TextKind::PersonName).is_err());
    }

    /// Round trips for generated names in every set that can hold them.
    #[test]
    fn encode_then_decode_is_the_identity() {
        let kanji: Vec<char> =
            "山田太郎花子佐藤鈴木高橋田中渡辺伊藤中村小林加藤吉田山本斎藤齋藤髙橋邊辺窪久保".chars().collect();
        let hiragana: Vec<char> = ('ぁ'..='ん').collect();
        let katakana: Vec<char> = ('ァ'..='ヶ').chain(['ー', '〜']).collect();
        let halfwidth: Vec<char> = ('ｦ'..='ﾟ').collect();
        let romaji: Vec<char> = ('A'..='Z').chain('a'..='z').collect();
        let sets = [
            ("\\ISO 2022 IR 87", vec![&kanji, &hiragana, &katakana, &romaji]),
            ("ISO 2022 IR 13\\ISO 2022 IR 87", vec![&kanji, &hiragana, &katakana, &halfwidth, &romaji]),
            ("\\ISO 2022 IR 87\\ISO 2022 IR 159", vec![&kanji, &hiragana, &katakana, &romaji]),
            ("ISO_IR 13", vec![&halfwidth, &romaji]),
            ("ISO_IR 192", vec![&kanji, &hiragana, &katakana, &halfwidth, &romaji]),
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for (label, alphabets) in sets {
            let set = SpecificCharacterSet::parse(label);
            for _ in 0..2000 {
                let mut name = String::new();
                for group in 0..1 + next(3) {
                    if group > 0 {
                        name.push('=');
                    }
                    for component in 0..1 + next(3) {
                        if component > 0 {
                            name.push('^');
                        }
                        let alphabet = alphabets[next(alphabets.len())];
                        for _ in 0..1 + next(5) {
                            name.push(alphabet[next(alphabet.len())]);
                        }
                    }
                }
                let bytes = set.encode(&name, TextKind::PersonName).unwrap_or_else(|e| panic!("{label}: {e}"));
                let decoded = set.decode(&bytes, TextKind::PersonName);
                assert_eq!(decoded.text, name, "{label}: {bytes:02x?}");
                assert!(decoded.warnings.is_empty(), "{label}: {name}: {:?}", decoded.warnings);
            }
        }
    }
}
