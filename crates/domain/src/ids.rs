//! Validated identifiers. Each newtype checks its invariant once, at construction.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("facility id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    FacilityId,
    #[error("AE title must be 1-16 printable ASCII characters without backslash")]
    AeTitle,
    #[error("UID must be 1-64 characters of digits and dots")]
    Uid,
}

/// A facility (hospital, clinic) of the group. Every stored object belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FacilityId(String);

impl FacilityId {
    pub fn new(value: &str) -> Result<Self, IdError> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(value.to_owned())) } else { Err(IdError::FacilityId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DICOM Application Entity title, stored without the padding spaces of the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AeTitle(String);

impl AeTitle {
    /// Leading and trailing spaces are not significant in AE titles (PS3.5 6.2).
    pub fn new(value: &str) -> Result<Self, IdError> {
        let trimmed = value.trim_matches(|c| c == ' ' || c == '\0');
        let ok = !trimmed.is_empty()
            && trimmed.len() <= 16
            && trimmed.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
        if ok { Ok(Self(trimmed.to_owned())) } else { Err(IdError::AeTitle) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DICOM UID (PS3.5 9.1). Trailing NUL padding is removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uid(String);

impl Uid {
    pub fn new(value: &str) -> Result<Self, IdError> {
        let trimmed = value.trim_end_matches(['\0', ' ']).trim_start_matches(' ');
        let ok = !trimmed.is_empty() && trimmed.len() <= 64 && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if ok { Ok(Self(trimmed.to_owned())) } else { Err(IdError::Uid) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}
string_newtype_impls!(FacilityId, AeTitle, Uid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles_are_trimmed_and_bounded() {
        assert_eq!(AeTitle::new(" CT01  ").unwrap().as_str(), "CT01");
        assert_eq!(AeTitle::new(""), Err(IdError::AeTitle));
        assert_eq!(AeTitle::new("ABCDEFGHIJKLMNOPQ"), Err(IdError::AeTitle));
        assert_eq!(AeTitle::new("A\\B"), Err(IdError::AeTitle));
    }

    #[test]
    fn uids_drop_nul_padding_and_refuse_letters() {
        assert_eq!(Uid::new("1.2.3\0").unwrap().as_str(), "1.2.3");
        assert_eq!(Uid::new("1.2.a"), Err(IdError::Uid));
        assert_eq!(Uid::new(&"1".repeat(65)), Err(IdError::Uid));
    }

    #[test]
    fn facility_ids_are_slugs() {
        assert!(FacilityId::new("hosp-01_A").is_ok());
        assert_eq!(FacilityId::new("病院"), Err(IdError::FacilityId));
    }
}
