//! DIMSE command sets (PS3.7 9.3 and 9.1): group 0000, always Implicit VR Little Endian.

use renkei_dicom::walk::walk_bytes;
use renkei_dicom::write::DatasetWriter;
use renkei_dicom::{Syntax, text};

/// Command Field (0000,0100) values.
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_GET_RQ: u16 = 0x0010;
    pub const C_GET_RSP: u16 = 0x8010;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_MOVE_RQ: u16 = 0x0021;
    pub const C_MOVE_RSP: u16 = 0x8021;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Status (0000,0900) values used by Renkei (PS3.7 Annex C, PS3.4 B.2.3 and C.4).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const PENDING: u16 = 0xFF00;
    pub const CANCEL: u16 = 0xFE00;
    pub const WARNING_SUB_OPERATIONS: u16 = 0xB000;
    /// Refused: out of resources (the store is full).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Refused: out of resources, unable to perform sub-operations.
    pub const UNABLE_TO_PERFORM_SUB_OPERATIONS: u16 = 0xA702;
    /// Refused: move destination unknown.
    pub const MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
    /// Error: data set does not match SOP class (or the identifier does not).
    pub const DOES_NOT_MATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Failure: processing failure.
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// Failure: unrecognised operation.
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
}

const NO_DATA_SET: u16 = 0x0101;
const DATA_SET_PRESENT: u16 = 0x0000;

/// A decoded or to-be-encoded command set. Only the fields the C-services use are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub field: u16,
    pub message_id: Option<u16>,
    pub responded_to: Option<u16>,
    pub affected_sop_class: Option<String>,
    pub affected_sop_instance: Option<String>,
    pub priority: Option<u16>,
    pub has_data_set: bool,
    pub status: Option<u16>,
    pub error_comment: Option<String>,
    pub move_destination: Option<String>,
    pub move_originator_ae: Option<String>,
    pub move_originator_id: Option<u16>,
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
}

/// A command set that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed command set: {0}")]
pub struct CommandError(String);

fn us(value: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(value.get(..2)?.try_into().ok()?))
}

impl Command {
    /// A response to `request` with the given field and status.
    pub fn response(request: &Command, field: u16, status: u16) -> Command {
        Command {
            field,
            responded_to: request.message_id,
            affected_sop_class: request.affected_sop_class.clone(),
            affected_sop_instance: request.affected_sop_instance.clone(),
            status: Some(status),
            ..Default::default()
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let elements = walk_bytes(bytes, Syntax::IMPLICIT_LE, &|tag| tag >> 16 == 0, 1024)
            .map_err(|e| CommandError(e.to_string()))?;
        let mut command = Command::default();
        let mut field = None;
        for element in elements {
            let value = element.value.as_slice();
            let string = || Some(text::ascii(value));
            match element.tag {
                0x0000_0002 => command.affected_sop_class = string(),
                0x0000_0100 => field = us(value),
                0x0000_0110 => command.message_id = us(value),
                0x0000_0120 => command.responded_to = us(value),
                0x0000_0600 => command.move_destination = string(),
                0x0000_0700 => command.priority = us(value),
                0x0000_0800 => command.has_data_set = us(value) != Some(NO_DATA_SET),
                0x0000_0900 => command.status = us(value),
                0x0000_0902 => command.error_comment = string(),
                0x0000_1000 => command.affected_sop_instance = string(),
                0x0000_1020 => command.remaining = us(value),
                0x0000_1021 => command.completed = us(value),
                0x0000_1022 => command.failed = us(value),
                0x0000_1023 => command.warning = us(value),
                0x0000_1030 => command.move_originator_ae = string(),
                0x0000_1031 => command.move_originator_id = us(value),
                _ => {}
            }
        }
        command.field = field.ok_or_else(|| CommandError("no command field".into()))?;
        Ok(command)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = DatasetWriter::new(Syntax::IMPLICIT_LE);
        if let Some(v) = &self.affected_sop_class {
            w.text(0x0000_0002, *b"UI", v);
        }
        w.u16_element(0x0000_0100, self.field);
        if let Some(v) = self.message_id {
            w.u16_element(0x0000_0110, v);
        }
        if let Some(v) = self.responded_to {
            w.u16_element(0x0000_0120, v);
        }
        if let Some(v) = &self.move_destination {
            w.text(0x0000_0600, *b"AE", v);
        }
        if let Some(v) = self.priority {
            w.u16_element(0x0000_0700, v);
        }
        w.u16_element(0x0000_0800, if self.has_data_set { DATA_SET_PRESENT } else { NO_DATA_SET });
        if let Some(v) = self.status {
            w.u16_element(0x0000_0900, v);
        }
        if let Some(v) = &self.error_comment {
            // Error Comment is LO: at most 64 characters.
            let clipped: String = v.chars().filter(|c| *c != '\\').take(64).collect();
            w.text(0x0000_0902, *b"LO", &clipped);
        }
        if let Some(v) = &self.affected_sop_instance {
            w.text(0x0000_1000, *b"UI", v);
        }
        for (tag, value) in [
            (0x0000_1020, self.remaining),
            (0x0000_1021, self.completed),
            (0x0000_1022, self.failed),
            (0x0000_1023, self.warning),
        ] {
            if let Some(v) = value {
                w.u16_element(tag, v);
            }
        }
        if let Some(v) = &self.move_originator_ae {
            w.text(0x0000_1030, *b"AE", v);
        }
        if let Some(v) = self.move_originator_id {
            w.u16_element(0x0000_1031, v);
        }
        let body = w.into_bytes();
        let mut out = DatasetWriter::new(Syntax::IMPLICIT_LE);
        out.element(0x0000_0000, *b"UL", &(body.len() as u32).to_le_bytes()).raw(&body);
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_store_request() {
        let command = Command {
            field: field::C_STORE_RQ,
            message_id: Some(7),
            affected_sop_class: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            affected_sop_instance: Some("1.2.3.4".into()),
            priority: Some(0),
            has_data_set: true,
            move_originator_ae: Some("MOVER".into()),
            move_originator_id: Some(3),
            ..Default::default()
        };
        let bytes = command.encode();
        // Group length counts every byte after its own element.
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, bytes.len() - 12);
        assert_eq!(Command::decode(&bytes).expect("decodes"), command);
    }

    #[test]
    fn error_comments_are_clipped_to_lo() {
        let mut command = Command::response(&Command::default(), field::C_STORE_RSP, status::CANNOT_UNDERSTAND);
        command.error_comment = Some("x".repeat(100));
        let decoded = Command::decode(&command.encode()).expect("decodes");
        assert_eq!(decoded.error_comment.map(|c| c.len()), Some(64));
    }

    #[test]
    fn a_command_without_field_is_refused() {
        assert!(Command::decode(&[]).is_err());
    }
}
