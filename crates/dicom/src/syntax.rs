//! Transfer syntaxes as far as parsing is concerned.

/// Implicit VR Little Endian, the default transfer syntax and the one of every command set.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// How a dataset in some transfer syntax is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub explicit_vr: bool,
    pub big_endian: bool,
    pub deflated: bool,
}

impl Syntax {
    pub const IMPLICIT_LE: Syntax = Syntax { explicit_vr: false, big_endian: false, deflated: false };
    pub const EXPLICIT_LE: Syntax = Syntax { explicit_vr: true, big_endian: false, deflated: false };

    /// The layout of a standard transfer syntax. Every encapsulated (compressed) syntax of
    /// PS3.5 Annex A is Explicit VR Little Endian. Private syntaxes are unknown.
    pub fn from_uid(uid: &str) -> Option<Syntax> {
        let uid = uid.trim_end_matches(['\0', ' ']);
        match uid {
            IMPLICIT_VR_LE => Some(Self::IMPLICIT_LE),
            EXPLICIT_VR_BE => Some(Syntax { explicit_vr: true, big_endian: true, deflated: false }),
            DEFLATED_EXPLICIT_VR_LE => Some(Syntax { explicit_vr: true, big_endian: false, deflated: true }),
            _ if uid == EXPLICIT_VR_LE || uid.starts_with("1.2.840.10008.1.2.") => Some(Self::EXPLICIT_LE),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_syntaxes() {
        assert_eq!(Syntax::from_uid("1.2.840.10008.1.2\0"), Some(Syntax::IMPLICIT_LE));
        assert_eq!(Syntax::from_uid("1.2.840.10008.1.2.4.90"), Some(Syntax::EXPLICIT_LE));
        assert!(Syntax::from_uid(DEFLATED_EXPLICIT_VR_LE).is_some_and(|s| s.deflated));
        assert!(Syntax::from_uid(EXPLICIT_VR_BE).is_some_and(|s| s.big_endian));
        assert_eq!(Syntax::from_uid("1.3.46.670589.33.1.4.1"), None);
    }
}
