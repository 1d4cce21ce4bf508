//! A Structured Report's content tree, read from the walker's tree of the object: every
//! content item with its concept, its value and its children. Text is decoded under the
//! object's Specific Character Set; numbers keep the unit code they came with.

use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::tags::tag;
use renkei_dicom::walk::{Node, NodeValue};

use crate::codes::Concept;

const CODE_VALUE: u32 = tag(0x0008, 0x0100);
const CODING_SCHEME: u32 = tag(0x0008, 0x0102);
const CODE_MEANING: u32 = tag(0x0008, 0x0104);
const LONG_CODE_VALUE: u32 = tag(0x0008, 0x0119);
const UNITS: u32 = tag(0x0040, 0x08EA);
const VALUE_TYPE: u32 = tag(0x0040, 0xA040);
const CONCEPT_NAME: u32 = tag(0x0040, 0xA043);
const DATE_TIME: u32 = tag(0x0040, 0xA120);
const UID: u32 = tag(0x0040, 0xA124);
const TEXT_VALUE: u32 = tag(0x0040, 0xA160);
const FLOATING_POINT_VALUE: u32 = tag(0x0040, 0xA161);
const CONCEPT_CODE: u32 = tag(0x0040, 0xA168);
const MEASURED_VALUE: u32 = tag(0x0040, 0xA300);
const NUMERIC_VALUE: u32 = tag(0x0040, 0xA30A);
const CONTENT: u32 = tag(0x0040, 0xA730);

/// A coded concept: (coding scheme, code value) identify it; the meaning is for people.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Code {
    pub scheme: String,
    pub value: String,
    pub meaning: String,
}

impl Code {
    pub fn is(&self, concept: Concept) -> bool {
        concept.matches(&self.scheme, &self.value)
    }
}

/// A content item's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Container,
    /// A number and its unit; `None` when the item carries no measured value.
    Num(Option<(f64, Code)>),
    Code(Code),
    Text(String),
    DateTime(String),
    Uid(String),
    /// A value type read no further here (IMAGE, SCOORD, PNAME…).
    Other,
}

/// One content item and what it contains or has as properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub concept: Option<Code>,
    pub value: Value,
    pub children: Vec<Item>,
}

impl Item {
    pub fn is(&self, concept: Concept) -> bool {
        self.concept.as_ref().is_some_and(|c| c.is(concept))
    }

    /// The direct children that are `concept`.
    pub fn all(&self, concept: Concept) -> impl Iterator<Item = &Item> {
        self.children.iter().filter(move |c| c.is(concept))
    }

    /// The first item that is `concept`, at any depth below this one (depth first). Devices
    /// nest some items differently (the X-ray source data of an event, say), and a concept
    /// means the same wherever it sits inside one event or one container.
    pub fn find(&self, concept: Concept) -> Option<&Item> {
        self.children.iter().find_map(|c| if c.is(concept) { Some(c) } else { c.find(concept) })
    }

    /// Every item that is `concept`, at any depth, in document order (not below a match).
    pub fn find_all(&self, concept: Concept) -> Vec<&Item> {
        let mut found = Vec::new();
        for child in &self.children {
            if child.is(concept) {
                found.push(child);
            } else {
                found.extend(child.find_all(concept));
            }
        }
        found
    }

    pub fn number(&self) -> Option<(f64, &Code)> {
        match &self.value {
            Value::Num(Some((value, unit))) => Some((*value, unit)),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&Code> {
        match &self.value {
            Value::Code(code) => Some(code),
            _ => None,
        }
    }

    /// A TEXT, DATETIME or UIDREF value, or a code's meaning.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(text) | Value::DateTime(text) | Value::Uid(text) => Some(text),
            Value::Code(code) => Some(&code.meaning),
            _ => None,
        }
    }
}

/// Reads values of one data set: its character set and byte order.
pub struct Reader {
    charset: SpecificCharacterSet,
    big_endian: bool,
}

impl Reader {
    /// A reader for the data set whose top level is `nodes`.
    pub fn new(nodes: &[Node], big_endian: bool) -> Self {
        let charset = bytes(nodes, renkei_dicom::tags::SPECIFIC_CHARACTER_SET)
            .map(|b| SpecificCharacterSet::parse(&renkei_dicom::text::ascii(b)))
            .unwrap_or_else(|| SpecificCharacterSet::parse(""));
        Self { charset, big_endian }
    }

    /// The first value of a string element, decoded and trimmed ("" when absent).
    pub fn string(&self, nodes: &[Node], t: u32) -> String {
        self.strings(nodes, t).into_iter().next().unwrap_or_default()
    }

    /// Every value of a string element, decoded and trimmed.
    pub fn strings(&self, nodes: &[Node], t: u32) -> Vec<String> {
        let Some(value) = bytes(nodes, t) else { return Vec::new() };
        let kind = match vr(nodes, t) {
            Some(b"UT" | b"LT" | b"ST") => TextKind::Text,
            Some(b"PN") => TextKind::PersonName,
            _ => TextKind::MultiValued,
        };
        self.charset.decode_values(value, kind).0
    }

    /// The first value of a DS, IS, FD or FL element.
    pub fn number(&self, nodes: &[Node], t: u32) -> Option<f64> {
        let value = bytes(nodes, t)?;
        let float = |width: usize| -> Option<f64> {
            let b = value.get(..width)?;
            Some(match (width, self.big_endian) {
                (8, false) => f64::from_le_bytes(b.try_into().ok()?),
                (8, true) => f64::from_be_bytes(b.try_into().ok()?),
                (_, false) => f64::from(f32::from_le_bytes(b.try_into().ok()?)),
                (_, true) => f64::from(f32::from_be_bytes(b.try_into().ok()?)),
            })
        };
        let number = match vr(nodes, t)? {
            b"FD" => float(8)?,
            b"FL" => float(4)?,
            _ => renkei_dicom::text::ascii(value).split('\\').next()?.trim().parse().ok()?,
        };
        number.is_finite().then_some(number)
    }

    fn code(&self, item: &[Node]) -> Code {
        let mut value = self.string(item, CODE_VALUE);
        if value.is_empty() {
            value = self.string(item, LONG_CODE_VALUE);
        }
        Code { scheme: self.string(item, CODING_SCHEME), value, meaning: self.string(item, CODE_MEANING) }
    }

    /// The phantom named by a code item (a CTDI Phantom Type Code Sequence's).
    pub fn phantom(&self, item: &[Node]) -> Option<renkei_domain::dose::Phantom> {
        crate::extract::phantom(&self.code(item))
    }

    /// The first item's code of a code sequence.
    fn code_in(&self, nodes: &[Node], t: u32) -> Option<Code> {
        items(nodes, t).first().map(|item| self.code(item))
    }

    /// The document's content tree: its root item, from the top level of the data set.
    pub fn document(&self, nodes: &[Node]) -> Item {
        self.item(nodes, 0)
    }

    fn item(&self, nodes: &[Node], depth: usize) -> Item {
        let value_type = self.string(nodes, VALUE_TYPE);
        let value = match value_type.as_str() {
            "CONTAINER" => Value::Container,
            "NUM" => Value::Num(items(nodes, MEASURED_VALUE).first().and_then(|measured| {
                let unit = self.code_in(measured, UNITS).unwrap_or_default();
                let number =
                    self.number(measured, NUMERIC_VALUE).or_else(|| self.number(measured, FLOATING_POINT_VALUE))?;
                Some((number, unit))
            })),
            "CODE" => self.code_in(nodes, CONCEPT_CODE).map_or(Value::Other, Value::Code),
            "TEXT" => Value::Text(self.string(nodes, TEXT_VALUE)),
            "DATETIME" => Value::DateTime(self.string(nodes, DATE_TIME)),
            "UIDREF" => Value::Uid(self.string(nodes, UID)),
            _ => Value::Other,
        };
        // The walker bounds nesting already; this only keeps a hostile tree from recursing
        // past what any real report needs.
        let children = if depth < 24 {
            items(nodes, CONTENT).iter().map(|child| self.item(child, depth + 1)).collect()
        } else {
            Vec::new()
        };
        Item { concept: self.code_in(nodes, CONCEPT_NAME), value, children }
    }
}

fn node(nodes: &[Node], t: u32) -> Option<&Node> {
    nodes.iter().find(|n| n.tag == t)
}

fn vr(nodes: &[Node], t: u32) -> Option<&[u8; 2]> {
    node(nodes, t).map(|n| &n.vr)
}

fn bytes(nodes: &[Node], t: u32) -> Option<&[u8]> {
    match &node(nodes, t)?.value {
        NodeValue::Bytes(bytes) => Some(bytes),
        _ => None,
    }
}

/// The items of a sequence (none when absent or not a sequence).
pub fn items(nodes: &[Node], t: u32) -> &[Vec<Node>] {
    match node(nodes, t).map(|n| &n.value) {
        Some(NodeValue::Items(items)) => items,
        _ => &[],
    }
}
