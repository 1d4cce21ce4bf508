//! The DIMSE message layer over a dicom-ul association: commands and data sets as sequences
//! of P-DATA fragments (PS3.8 9.3.5, PS3.7 Annex E).
//!
//! Data sets are streamed fragment by fragment in both directions, so no object is ever held
//! whole in memory; small ones (identifiers) can be collected up to a bound.

use std::collections::VecDeque;

use dicom_ul::association::{Association, AsyncAssociation};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::command::{Command, CommandError};

/// The most data one outgoing fragment carries, whatever the peer admits.
const MAX_FRAGMENT: usize = 1 << 20;
/// A PDV item adds a 4-byte length, the context id and the message control header.
const PDV_OVERHEAD: usize = 6;

/// A failure of the association, or of the peer to follow the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("association failed")]
    Association(#[from] dicom_ul::association::Error),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("data set exceeds {0} bytes")]
    TooLarge(usize),
    #[error("reading a stored object failed")]
    Io(#[from] std::io::Error),
}

/// What the peer sent when a command was expected.
#[derive(Debug)]
pub enum Received {
    Command {
        context_id: u8,
        command: Command,
    },
    /// The peer asked to release; the release response has been sent.
    Released,
    Aborted,
}

/// Commands and data sets over one association.
pub struct Channel<A> {
    association: A,
    pending: VecDeque<PDataValue>,
    max_fragment: usize,
}

enum Next {
    Value(PDataValue),
    Released,
    Aborted,
}

impl<A> Channel<A>
where
    A: AsyncAssociation<TcpStream> + Association + Send,
{
    pub fn new(association: A) -> Self {
        let peer_max = association.peer_max_pdu_length() as usize;
        let max_fragment = peer_max.saturating_sub(PDV_OVERHEAD).clamp(1024, MAX_FRAGMENT);
        Self { association, pending: VecDeque::new(), max_fragment }
    }

    pub fn association(&self) -> &A {
        &self.association
    }

    /// The id of the accepted presentation context for `sop_class` in `transfer_syntax`.
    pub fn accepted_context(&self, sop_class: &str, transfer_syntax: &str) -> Option<u8> {
        self.association
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.reason == PresentationContextResultReason::Acceptance
                    && pc.abstract_syntax == sop_class
                    && pc.transfer_syntax == transfer_syntax
            })
            .map(|pc| pc.id)
    }

    pub fn into_association(self) -> A {
        self.association
    }

    async fn next_value(&mut self) -> Result<Next, ChannelError> {
        loop {
            if let Some(value) = self.pending.pop_front() {
                return Ok(Next::Value(value));
            }
            match AsyncAssociation::receive(&mut self.association).await? {
                Pdu::PData { data } => self.pending.extend(data),
                Pdu::ReleaseRQ => {
                    AsyncAssociation::send(&mut self.association, &Pdu::ReleaseRP).await?;
                    return Ok(Next::Released);
                }
                Pdu::AbortRQ { .. } => return Ok(Next::Aborted),
                _ => return Err(ChannelError::Protocol("unexpected PDU during association")),
            }
        }
    }

    /// Waits for the next command.
    pub async fn receive_command(&mut self) -> Result<Received, ChannelError> {
        let mut bytes = Vec::new();
        let mut context = None;
        loop {
            let value = match self.next_value().await? {
                Next::Value(value) => value,
                Next::Released if context.is_none() => return Ok(Received::Released),
                Next::Aborted => return Ok(Received::Aborted),
                Next::Released => return Err(ChannelError::Protocol("release inside a command")),
            };
            if value.value_type != PDataValueType::Command {
                return Err(ChannelError::Protocol("data fragment where a command was expected"));
            }
            if context.is_some_and(|id| id != value.presentation_context_id) {
                return Err(ChannelError::Protocol("command fragments on different contexts"));
            }
            context = Some(value.presentation_context_id);
            if bytes.len() + value.data.len() > 64 * 1024 {
                return Err(ChannelError::TooLarge(64 * 1024));
            }
            bytes.extend_from_slice(&value.data);
            if value.is_last {
                let command = Command::decode(&bytes)?;
                return Ok(Received::Command { context_id: value.presentation_context_id, command });
            }
        }
    }

    /// The next fragment of the data set that follows a command, and whether it is the last.
    pub async fn receive_data_fragment(&mut self) -> Result<(Vec<u8>, bool), ChannelError> {
        match self.next_value().await? {
            Next::Value(value) if value.value_type == PDataValueType::Data => Ok((value.data, value.is_last)),
            Next::Value(_) => Err(ChannelError::Protocol("command fragment inside a data set")),
            Next::Released | Next::Aborted => Err(ChannelError::Protocol("association ended inside a data set")),
        }
    }

    /// Collects a whole (small) data set, refusing one larger than `limit` bytes.
    pub async fn receive_data_set(&mut self, limit: usize) -> Result<Vec<u8>, ChannelError> {
        let mut bytes = Vec::new();
        loop {
            let (fragment, last) = self.receive_data_fragment().await?;
            if bytes.len() + fragment.len() > limit {
                return Err(ChannelError::TooLarge(limit));
            }
            bytes.extend_from_slice(&fragment);
            if last {
                return Ok(bytes);
            }
        }
    }

    async fn send_fragment(
        &mut self,
        context_id: u8,
        value_type: PDataValueType,
        data: Vec<u8>,
        is_last: bool,
    ) -> Result<(), ChannelError> {
        let value = PDataValue { presentation_context_id: context_id, value_type, is_last, data };
        AsyncAssociation::send(&mut self.association, &Pdu::PData { data: vec![value] }).await?;
        Ok(())
    }

    pub async fn send_command(&mut self, context_id: u8, command: &Command) -> Result<(), ChannelError> {
        self.send_bytes(context_id, PDataValueType::Command, &command.encode()).await
    }

    pub async fn send_data_set(&mut self, context_id: u8, bytes: &[u8]) -> Result<(), ChannelError> {
        self.send_bytes(context_id, PDataValueType::Data, bytes).await
    }

    async fn send_bytes(
        &mut self,
        context_id: u8,
        value_type: PDataValueType,
        bytes: &[u8],
    ) -> Result<(), ChannelError> {
        let mut chunks = bytes.chunks(self.max_fragment).peekable();
        if chunks.peek().is_none() {
            return self.send_fragment(context_id, value_type, Vec::new(), true).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.send_fragment(context_id, value_type.clone(), chunk.to_vec(), last).await?;
        }
        Ok(())
    }

    /// Streams a data set of `size` bytes from `reader`.
    pub async fn send_data_set_from(
        &mut self,
        context_id: u8,
        mut reader: impl AsyncRead + Unpin,
        size: u64,
    ) -> Result<(), ChannelError> {
        let mut remaining = size;
        loop {
            let take = remaining.min(self.max_fragment as u64) as usize;
            let mut chunk = vec![0u8; take];
            reader.read_exact(&mut chunk).await?;
            remaining -= take as u64;
            self.send_fragment(context_id, PDataValueType::Data, chunk, remaining == 0).await?;
            if remaining == 0 {
                return Ok(());
            }
        }
    }
}
