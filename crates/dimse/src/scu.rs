//! A small SCU: opens an association and sends C-STORE and C-ECHO requests. The SCP uses it
//! for C-MOVE sub-operations; the benchmark uses it as a load generator.

use dicom_ul::association::{AsyncClientAssociation, ClientAssociationOptions};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;

use crate::channel::{Channel, ChannelError, Received};
use crate::command::{Command, field, status};

/// The verification SOP class.
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// An open association as requestor.
pub struct Scu {
    channel: Channel<AsyncClientAssociation<TcpStream>>,
    next_message_id: u16,
}

/// Identifies the C-MOVE that caused a C-STORE (PS3.7 9.1.1.1).
#[derive(Debug, Clone)]
pub struct MoveOriginator {
    pub ae_title: String,
    pub message_id: u16,
}

impl Scu {
    /// Opens an association proposing each (abstract syntax, transfer syntaxes) context.
    pub async fn connect(
        address: &str,
        calling_ae: &str,
        called_ae: &str,
        contexts: &[(String, Vec<String>)],
        max_pdu_length: u32,
    ) -> Result<Scu, ChannelError> {
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(calling_ae.to_owned())
            .called_ae_title(called_ae.to_owned())
            .max_pdu_length(max_pdu_length);
        for (abstract_syntax, transfer_syntaxes) in contexts {
            options = options.with_presentation_context(abstract_syntax.clone(), transfer_syntaxes.clone());
        }
        let mut association = options.establish_async(address).await?;
        // Commands and data sets go out as separate small writes; Nagle would hold them back.
        association.inner_stream().set_nodelay(true)?;
        Ok(Scu { channel: Channel::new(association), next_message_id: 1 })
    }

    /// The accepted presentation context for this SOP class in this transfer syntax.
    pub fn context_for(&self, sop_class: &str, transfer_syntax: &str) -> Option<u8> {
        self.channel.accepted_context(sop_class, transfer_syntax)
    }

    fn message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    async fn response(&mut self) -> Result<Command, ChannelError> {
        match self.channel.receive_command().await? {
            Received::Command { command, .. } => Ok(command),
            _ => Err(ChannelError::Protocol("association ended before the response")),
        }
    }

    /// C-ECHO; returns the response status.
    pub async fn echo(&mut self) -> Result<u16, ChannelError> {
        let context = self
            .context_for(VERIFICATION, renkei_dicom::syntax::IMPLICIT_VR_LE)
            .or_else(|| self.context_for(VERIFICATION, renkei_dicom::syntax::EXPLICIT_VR_LE))
            .ok_or(ChannelError::Protocol("verification was not accepted"))?;
        let request = Command {
            field: field::C_ECHO_RQ,
            message_id: Some(self.message_id()),
            affected_sop_class: Some(VERIFICATION.into()),
            ..Default::default()
        };
        self.channel.send_command(context, &request).await?;
        Ok(self.response().await?.status.unwrap_or(status::PROCESSING_FAILURE))
    }

    /// C-STORE of a data set of `size` bytes read from `data`; returns the response.
    pub async fn store(
        &mut self,
        context: u8,
        sop_class: &str,
        sop_instance: &str,
        data: impl AsyncRead + Unpin,
        size: u64,
        originator: Option<&MoveOriginator>,
    ) -> Result<Command, ChannelError> {
        let request = Command {
            field: field::C_STORE_RQ,
            message_id: Some(self.message_id()),
            affected_sop_class: Some(sop_class.into()),
            affected_sop_instance: Some(sop_instance.into()),
            priority: Some(0),
            has_data_set: true,
            move_originator_ae: originator.map(|o| o.ae_title.clone()),
            move_originator_id: originator.map(|o| o.message_id),
            ..Default::default()
        };
        self.channel.send_command(context, &request).await?;
        self.channel.send_data_set_from(context, data, size).await?;
        self.response().await
    }

    /// Releases the association.
    pub async fn release(self) -> Result<(), ChannelError> {
        self.channel.into_association().release().await?;
        Ok(())
    }
}
