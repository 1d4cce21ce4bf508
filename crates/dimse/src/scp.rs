//! The archive's SCP: accepts associations from registered AE titles and serves C-ECHO,
//! C-STORE, C-FIND, C-MOVE and C-GET, each scoped to the calling AE's facility.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::association::server::{AccessControl, Negotiation, ServerAssociationOptions};
use dicom_ul::association::{Association, AsyncServerAssociation};
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PresentationContextResultReason, RequestorRoles, UserIdentity, UserVariableItem,
};
use renkei_dicom::Syntax;
use renkei_domain::model::StoredInstance;
use renkei_domain::{AeTitle, ErrorKind, FacilityId, Uid};
use renkei_imaging::transcode;
use renkei_service::{Archive, Expected, IngestError, Reader, ServiceError, Transcoder};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::channel::{Channel, ChannelError, Received};
use crate::command::{Command, field, status};
use crate::identifier::{self, Identifier, Operation};
use crate::scu::{MoveOriginator, Scu};

/// Identifiers larger than this are refused: no real query needs more.
const MAX_IDENTIFIER: usize = 1 << 20;

/// How the SCP presents itself.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    pub ae_title: String,
    /// The largest PDU this SCP accepts; it bounds the memory of each association.
    pub max_pdu_length: u32,
    /// An association idle for this long is aborted.
    pub idle_timeout: Duration,
    /// How long open associations may take to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ScpConfig {
    fn default() -> Self {
        Self {
            ae_title: "RENKEI".into(),
            max_pdu_length: 256 * 1024,
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Accepts associations until `shutdown` fires, then lets open ones finish their current
/// operation for up to the drain timeout.
pub async fn serve(listener: TcpListener, archive: Arc<Archive>, config: ScpConfig, shutdown: CancellationToken) {
    let config = Arc::new(config);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let task = handle(socket, peer, archive.clone(), config.clone(), shutdown.clone());
                tracker.spawn(task.instrument(info_span!("association", %peer)));
            }
            Err(error) => {
                warn!(%error, "accepting a DICOM connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracker.close();
    if tokio::time::timeout(config.drain_timeout, tracker.wait()).await.is_err() {
        warn!(open = tracker.len(), "associations still open at the shutdown deadline");
    }
}

/// Accepts calling AE titles registered to a facility, as they were when the connection came in.
#[derive(Clone)]
struct RegisteredCallers(Arc<HashMap<String, FacilityId>>);

impl AccessControl for RegisteredCallers {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        _called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let known = AeTitle::new(calling_ae_title).is_ok_and(|ae| self.0.contains_key(ae.as_str()));
        if known { Ok(()) } else { Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized) }
    }
}

/// What the SCP agrees to beyond the defaults: the roles a requestor proposes (C-GET needs
/// the requestor to be a storage SCP), and fuzzy semantic matching of person names for the
/// query SOP classes.
struct Negotiator;

/// Byte 3 of the query/retrieve extended negotiation (PS3.4 Table C.5-2) is fuzzy semantic
/// matching of person names; bytes 1-2 (relational queries, combined date-time matching)
/// and 4-7 are declined.
const FUZZY_MATCHING_BYTE: usize = 2;

impl Negotiation for Negotiator {
    fn negotiate_roles(&self, _sop_class_uid: &str, scu: bool, scp: bool) -> Option<RequestorRoles> {
        Some(RequestorRoles { scu, scp })
    }

    fn extended_negotiation(&self, sop_class_uid: &str, input: &[u8]) -> Option<Vec<u8>> {
        let (_, operation) = identifier::sop_class(sop_class_uid)?;
        if operation != Operation::Find {
            return None;
        }
        let mut accepted = vec![0u8; input.len().min(7)];
        if input.get(FUZZY_MATCHING_BYTE) == Some(&1) {
            accepted[FUZZY_MATCHING_BYTE] = 1;
        }
        Some(accepted)
    }
}

async fn handle(
    socket: TcpStream,
    peer: SocketAddr,
    archive: Arc<Archive>,
    config: Arc<ScpConfig>,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    // Read the registrations for every connection, so the admin CLI's changes apply at once.
    let callers = match archive.facilities().await {
        Ok(facilities) => facilities
            .into_iter()
            .flat_map(|f| f.ae_titles.into_iter().map(move |ae| (ae.as_str().to_owned(), f.id.clone())))
            .collect(),
        Err(error) => {
            warn!(%error, "cannot read facilities; refusing association");
            return;
        }
    };
    let callers = RegisteredCallers(Arc::new(callers));
    let options = ServerAssociationOptions::new()
        .ae_access_control(callers.clone())
        .with_negotiation(Negotiator)
        .ae_title(config.ae_title.clone())
        .promiscuous(true)
        .max_pdu_length(config.max_pdu_length)
        .read_timeout(config.idle_timeout);
    let association = match options.establish_async(socket).await {
        Ok(association) => association,
        Err(error) => {
            info!(%error, %peer, "association not established");
            return;
        }
    };
    let calling_ae = association.peer_ae_title().to_owned();
    let facility = AeTitle::new(&calling_ae).ok().and_then(|ae| callers.0.get(ae.as_str()).cloned());
    let Some(facility) = facility else {
        let _ = association.abort().await;
        return;
    };
    let span = info_span!("session", calling_ae = %calling_ae, facility = %facility);
    let session = Session { channel: Channel::new(association), archive, facility, config, calling_ae };
    session.run(shutdown).instrument(span).await;
}

struct Session {
    channel: Channel<AsyncServerAssociation<TcpStream>>,
    archive: Arc<Archive>,
    facility: FacilityId,
    config: Arc<ScpConfig>,
    calling_ae: String,
}

/// The response status and error comment for a service failure.
fn failure_status(error: &ServiceError) -> u16 {
    match error.kind {
        ErrorKind::OutOfResources => status::OUT_OF_RESOURCES,
        ErrorKind::Invalid => status::DOES_NOT_MATCH,
        _ => status::PROCESSING_FAILURE,
    }
}

impl Session {
    /// This association's facility, as a reader of what other facilities share.
    fn reader(&self) -> Reader {
        Reader { facility: self.facility.clone(), via: format!("DICOM {}", self.calling_ae) }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        debug!("association established");
        loop {
            let received = tokio::select! {
                received = self.channel.receive_command() => received,
                _ = shutdown.cancelled() => {
                    info!("aborting idle association for shutdown");
                    let _ = self.channel.into_association().abort().await;
                    return;
                }
            };
            let outcome = match received {
                Ok(Received::Command { context_id, command }) => self.dispatch(context_id, command).await,
                Ok(Received::Released) => {
                    debug!("association released");
                    return;
                }
                Ok(Received::Aborted) => {
                    debug!("association aborted by peer");
                    return;
                }
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                warn!(%error, "aborting association");
                let _ = self.channel.into_association().abort().await;
                return;
            }
        }
    }

    /// Whether fuzzy semantic matching of person names was agreed for this SOP class.
    fn fuzzy_matching_agreed(&self, sop_class: &str) -> bool {
        self.channel.association().user_variables().iter().any(|variable| {
            matches!(variable, UserVariableItem::SopClassExtendedNegotiationSubItem(class, agreed)
                if class == sop_class && agreed.get(FUZZY_MATCHING_BYTE) == Some(&1))
        })
    }

    fn context_syntax(&self, context_id: u8) -> Result<(Uid, Syntax), ChannelError> {
        let context = self
            .channel
            .association()
            .presentation_contexts()
            .iter()
            .find(|pc| pc.id == context_id && pc.reason == PresentationContextResultReason::Acceptance)
            .ok_or(ChannelError::Protocol("message on a presentation context that was not accepted"))?;
        let uid = Uid::new(&context.transfer_syntax).map_err(|_| ChannelError::Protocol("invalid transfer syntax"))?;
        let syntax = Syntax::from_uid(uid.as_str()).ok_or(ChannelError::Protocol("unknown transfer syntax"))?;
        Ok((uid, syntax))
    }

    async fn respond(
        &mut self,
        context_id: u8,
        response: Command,
        data_set: Option<&[u8]>,
    ) -> Result<(), ChannelError> {
        let response = Command { has_data_set: data_set.is_some(), ..response };
        self.channel.send_command(context_id, &response).await?;
        if let Some(bytes) = data_set {
            self.channel.send_data_set(context_id, bytes).await?;
        }
        Ok(())
    }

    async fn dispatch(&mut self, context_id: u8, command: Command) -> Result<(), ChannelError> {
        match command.field {
            field::C_ECHO_RQ => {
                let response = Command::response(&command, field::C_ECHO_RSP, status::SUCCESS);
                self.respond(context_id, response, None).await
            }
            field::C_STORE_RQ => self.store(context_id, command).await,
            field::C_FIND_RQ => self.find(context_id, command).await,
            field::C_MOVE_RQ => self.retrieve(context_id, command, Operation::Move).await,
            field::C_GET_RQ => self.retrieve(context_id, command, Operation::Get).await,
            // A cancel for an operation that already ended is ignored (PS3.7 9.3.2.3).
            field::C_CANCEL_RQ => Ok(()),
            _ => Err(ChannelError::Protocol("unsupported DIMSE command")),
        }
    }

    async fn store(&mut self, context_id: u8, command: Command) -> Result<(), ChannelError> {
        if !command.has_data_set {
            return Err(ChannelError::Protocol("C-STORE without a data set"));
        }
        let (transfer_syntax, _) = self.context_syntax(context_id)?;
        let expected = Expected {
            sop_class_uid: command.affected_sop_class.as_deref().and_then(|u| Uid::new(u).ok()),
            sop_instance_uid: command.affected_sop_instance.as_deref().and_then(|u| Uid::new(u).ok()),
            study_uid: None,
        };
        let mut failure: Option<IngestError> = None;
        let mut ingest = match self.archive.begin_ingest(self.facility.clone(), transfer_syntax).await {
            Ok(ingest) => Some(ingest),
            Err(error) => {
                failure = Some(error.into());
                None
            }
        };
        // Read the whole data set even after a failure, so the association stays in step.
        loop {
            let (fragment, last) = match self.channel.receive_data_fragment().await {
                Ok(received) => received,
                Err(error) => {
                    if let Some(ingest) = ingest.take() {
                        ingest.abort().await;
                    }
                    return Err(error);
                }
            };
            if let Some(writer) = ingest.as_mut()
                && let Err(error) = writer.write(&fragment).await
            {
                failure = Some(error);
                if let Some(ingest) = ingest.take() {
                    ingest.abort().await;
                }
            }
            if last {
                break;
            }
        }
        let result = match (ingest, failure) {
            (Some(ingest), None) => ingest.finish(&expected).await,
            (Some(ingest), Some(error)) => {
                ingest.abort().await;
                Err(error)
            }
            (None, Some(error)) => Err(error),
            (None, None) => Err(IngestError::Malformed("no data set".into())),
        };
        let mut response = Command::response(&command, field::C_STORE_RSP, status::SUCCESS);
        match result {
            Ok(ingested) => debug!(outcome = ?ingested.outcome, "stored"),
            Err(error) => {
                let code = match &error {
                    IngestError::Malformed(_) => status::CANNOT_UNDERSTAND,
                    IngestError::DoesNotMatch(_) => status::DOES_NOT_MATCH,
                    IngestError::Service(e) => failure_status(e),
                };
                warn!(status = format_args!("{code:#06X}"), reason = %error, "store refused");
                response.status = Some(code);
                response.error_comment = Some(error.to_string());
            }
        }
        self.respond(context_id, response, None).await
    }

    async fn read_identifier(
        &mut self,
        context_id: u8,
        command: &Command,
        expected: Operation,
    ) -> Result<Result<(Identifier, Syntax), String>, ChannelError> {
        if !command.has_data_set {
            return Err(ChannelError::Protocol("query/retrieve request without identifier"));
        }
        let (_, syntax) = self.context_syntax(context_id)?;
        let bytes = self.channel.receive_data_set(MAX_IDENTIFIER).await?;
        let model = match command.affected_sop_class.as_deref().and_then(identifier::sop_class) {
            Some((model, operation)) if operation == expected => model,
            _ => return Ok(Err("SOP class does not fit the operation".into())),
        };
        Ok(identifier::parse(&bytes, syntax, model).map(|id| (id, syntax)).map_err(|e| e.to_string()))
    }

    async fn find(&mut self, context_id: u8, command: Command) -> Result<(), ChannelError> {
        let final_failure = |code: u16, comment: String| {
            let mut response = Command::response(&command, field::C_FIND_RSP, code);
            response.error_comment = Some(comment);
            response
        };
        let (identifier, syntax) = match self.read_identifier(context_id, &command, Operation::Find).await? {
            Ok(parsed) => parsed,
            Err(reason) => return self.respond(context_id, final_failure(status::DOES_NOT_MATCH, reason), None).await,
        };
        let mut query = match identifier.query() {
            Ok(query) => query,
            Err(error) => return self.respond(context_id, final_failure(status::DOES_NOT_MATCH, error.0), None).await,
        };
        query.fuzzy = command.affected_sop_class.as_deref().is_some_and(|class| self.fuzzy_matching_agreed(class));
        let matches = match self.archive.find_as(&self.reader(), &query).await {
            Ok(matches) => matches,
            Err(error) => {
                return self.respond(context_id, final_failure(failure_status(&error), error.message), None).await;
            }
        };
        debug!(level = query.level.as_str(), matches = matches.len(), "find");
        for found in &matches {
            let data_set = identifier.response(found, syntax, &self.config.ae_title);
            let pending = Command::response(&command, field::C_FIND_RSP, status::PENDING);
            self.respond(context_id, pending, Some(&data_set)).await?;
        }
        self.respond(context_id, Command::response(&command, field::C_FIND_RSP, status::SUCCESS), None).await
    }

    async fn retrieve(&mut self, context_id: u8, command: Command, operation: Operation) -> Result<(), ChannelError> {
        let response_field = if operation == Operation::Move { field::C_MOVE_RSP } else { field::C_GET_RSP };
        let final_failure = |code: u16, comment: String| {
            let mut response = Command::response(&command, response_field, code);
            response.error_comment = Some(comment);
            response
        };
        let (identifier, syntax) = match self.read_identifier(context_id, &command, operation).await? {
            Ok(parsed) => parsed,
            Err(reason) => return self.respond(context_id, final_failure(status::DOES_NOT_MATCH, reason), None).await,
        };
        let query = match identifier.retrieve_query() {
            Ok(query) => query,
            Err(error) => return self.respond(context_id, final_failure(status::DOES_NOT_MATCH, error.0), None).await,
        };
        let mut destination = None;
        if operation == Operation::Move {
            let node = match command.move_destination.as_deref().map(AeTitle::new) {
                Some(Ok(ae)) => self.archive.node(&self.facility, &ae).await,
                _ => Ok(None),
            };
            match node {
                Ok(Some(node)) => destination = Some(node),
                Ok(None) => {
                    let comment = "move destination is not a node of this facility".to_owned();
                    return self
                        .respond(context_id, final_failure(status::MOVE_DESTINATION_UNKNOWN, comment), None)
                        .await;
                }
                Err(error) => {
                    return self.respond(context_id, final_failure(failure_status(&error), error.message), None).await;
                }
            }
        }
        let instances = match self.archive.retrieve_as(&self.reader(), &query).await {
            Ok(instances) => instances,
            Err(error) => {
                return self.respond(context_id, final_failure(failure_status(&error), error.message), None).await;
            }
        };
        let mut target = match &destination {
            None => Target::SameAssociation,
            Some(node) => {
                let address = format!("{}:{}", node.host, node.port);
                let contexts = proposed_contexts(&instances);
                match Scu::connect(
                    &address,
                    &self.config.ae_title,
                    node.ae_title.as_str(),
                    &contexts,
                    self.config.max_pdu_length,
                )
                .await
                {
                    Ok(scu) => Target::Node(Box::new(scu)),
                    Err(error) => {
                        warn!(%error, destination = %node.ae_title, "cannot open association to move destination");
                        let comment = format!("cannot reach {}", node.ae_title);
                        return self
                            .respond(context_id, final_failure(status::UNABLE_TO_PERFORM_SUB_OPERATIONS, comment), None)
                            .await;
                    }
                }
            }
        };
        let originator =
            MoveOriginator { ae_title: self.calling_ae.clone(), message_id: command.message_id.unwrap_or(0) };
        let mut progress = Progress { remaining: instances.len(), ..Default::default() };
        let mut cancelled = false;
        for instance in &instances {
            progress.remaining -= 1;
            let sent = match &mut target {
                Target::Node(scu) => send_to_node(scu, &self.archive, instance, &originator).await,
                Target::SameAssociation => {
                    let (code, cancel) = self.send_back(instance).await?;
                    cancelled |= cancel;
                    code
                }
            };
            progress.record(sent, instance);
            if cancelled {
                break;
            }
            if progress.remaining > 0 {
                let pending = progress.response(&command, response_field, status::PENDING);
                self.respond(context_id, pending, None).await?;
            }
        }
        if let Target::Node(scu) = target
            && let Err(error) = scu.release().await
        {
            debug!(%error, "releasing the move association failed");
        }
        info!(
            operation = ?operation,
            completed = progress.completed,
            failed = progress.failed,
            warning = progress.warning,
            "retrieve finished"
        );
        let code = if cancelled {
            status::CANCEL
        } else if progress.failed == 0 && progress.warning == 0 {
            status::SUCCESS
        } else if progress.completed == 0 && progress.warning == 0 {
            status::UNABLE_TO_PERFORM_SUB_OPERATIONS
        } else {
            status::WARNING_SUB_OPERATIONS
        };
        let mut response = progress.response(&command, response_field, code);
        response.remaining = cancelled.then_some(progress.remaining as u16);
        let failed_list =
            (!progress.failed_uids.is_empty()).then(|| identifier::failed_instances(&progress.failed_uids, syntax));
        self.respond(context_id, response, failed_list.as_deref()).await
    }

    /// A C-GET sub-operation: C-STORE back over this association. Returns the status and
    /// whether the requestor asked to cancel meanwhile.
    async fn send_back(&mut self, instance: &StoredInstance) -> Result<(SubOperation, bool), ChannelError> {
        let accepted = |sop_class: &str, syntax: &str| self.channel.accepted_context(sop_class, syntax);
        let Some((context, target)) = sending_context(accepted, instance) else {
            return Ok((SubOperation::Failed, false));
        };
        let Some(outgoing) = Outgoing::of(&self.archive, instance, target).await else {
            return Ok((SubOperation::Failed, false));
        };
        let request = Command {
            field: field::C_STORE_RQ,
            message_id: Some(next_sub_operation_id()),
            affected_sop_class: Some(instance.sop_class_uid.to_string()),
            affected_sop_instance: Some(instance.sop_instance_uid.to_string()),
            priority: Some(0),
            has_data_set: true,
            ..Default::default()
        };
        self.channel.send_command(context, &request).await?;
        self.channel.send_data_set_from(context, outgoing.file, outgoing.size).await?;
        let mut cancel = false;
        loop {
            match self.channel.receive_command().await? {
                Received::Command { command, .. } if command.field == field::C_STORE_RSP => {
                    return Ok((SubOperation::from_status(command.status), cancel));
                }
                Received::Command { command, .. } if command.field == field::C_CANCEL_RQ => cancel = true,
                _ => return Err(ChannelError::Protocol("expected a C-STORE response during C-GET")),
            }
        }
    }
}

enum Target {
    SameAssociation,
    Node(Box<Scu>),
}

/// The result of one C-STORE sub-operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubOperation {
    Completed,
    Warning,
    Failed,
}

impl SubOperation {
    fn from_status(code: Option<u16>) -> Self {
        match code {
            Some(status::SUCCESS) => Self::Completed,
            // Warning statuses of C-STORE: B000, B006, B007 (PS3.4 B.2.3).
            Some(code) if code & 0xF000 == 0xB000 => Self::Warning,
            _ => Self::Failed,
        }
    }
}

#[derive(Default)]
struct Progress {
    remaining: usize,
    completed: usize,
    failed: usize,
    warning: usize,
    failed_uids: Vec<String>,
}

impl Progress {
    fn record(&mut self, result: SubOperation, instance: &StoredInstance) {
        match result {
            SubOperation::Completed => self.completed += 1,
            SubOperation::Warning => self.warning += 1,
            SubOperation::Failed => {
                self.failed += 1;
                self.failed_uids.push(instance.sop_instance_uid.to_string());
            }
        }
    }

    fn response(&self, request: &Command, response_field: u16, code: u16) -> Command {
        let clamp = |n: usize| n.min(u16::MAX as usize) as u16;
        Command {
            remaining: (code == status::PENDING).then_some(clamp(self.remaining)),
            completed: Some(clamp(self.completed)),
            failed: Some(clamp(self.failed)),
            warning: Some(clamp(self.warning)),
            ..Command::response(request, response_field, code)
        }
    }
}

fn next_sub_operation_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).max(1)
}

/// One presentation context per (SOP class, transfer syntax) pair among the instances:
/// objects are sent as stored, never transcoded.
/// The presentation contexts to propose to a C-MOVE destination: each SOP class in each
/// stored syntax, and in the native syntaxes Renkei can transcode to, for a destination that
/// takes no compression (or no encoding) the objects are stored in.
fn proposed_contexts(instances: &[StoredInstance]) -> Vec<(String, Vec<String>)> {
    let mut contexts: Vec<(String, Vec<String>)> = Vec::new();
    let mut propose = |sop_class: &str, syntax: &str| {
        let context = (sop_class.to_owned(), vec![syntax.to_owned()]);
        if !contexts.contains(&context) {
            contexts.push(context);
        }
    };
    for instance in instances {
        propose(instance.sop_class_uid.as_str(), instance.transfer_syntax_uid.as_str());
    }
    for instance in instances {
        if renkei_imaging::can_decode(instance.transfer_syntax_uid.as_str()) {
            for target in transcode::TARGETS {
                propose(instance.sop_class_uid.as_str(), target);
            }
        }
    }
    // A-ASSOCIATE-RQ admits at most 128 presentation contexts (odd ids 1..=255); the stored
    // syntaxes come first, so the fallbacks are what a very mixed study loses.
    contexts.truncate(128);
    contexts
}

/// The accepted context to send `instance` on, and the syntax to transcode it to first:
/// `None` when its stored syntax was accepted.
fn sending_context(
    accepted: impl Fn(&str, &str) -> Option<u8>,
    instance: &StoredInstance,
) -> Option<(u8, Option<&'static str>)> {
    let (sop_class, stored) = (instance.sop_class_uid.as_str(), instance.transfer_syntax_uid.as_str());
    if let Some(context) = accepted(sop_class, stored) {
        return Some((context, None));
    }
    if !renkei_imaging::can_decode(stored) {
        return None;
    }
    transcode::TARGETS.into_iter().find_map(|target| accepted(sop_class, target).map(|context| (context, Some(target))))
}

/// A data set on its way out of the archive: a file and how many bytes of it to send.
struct Outgoing {
    file: tokio::fs::File,
    size: u64,
}

impl Outgoing {
    /// The data set as it goes out: as stored, or transcoded to `target` (see
    /// [`Archive::outgoing`]).
    async fn of(archive: &Arc<Archive>, instance: &StoredInstance, target: Option<&'static str>) -> Option<Self> {
        let transcoder: Transcoder = |path, stored, target, out| Ok(transcode::transcode(path, stored, target, out)?);
        let transcoding = target.map(|target| (target, transcoder));
        match archive.outgoing(instance, transcoding).await {
            Ok((file, size)) => Some(Self { file, size }),
            Err(error) => {
                warn!(%error, "cannot prepare an instance for a retrieve");
                None
            }
        }
    }
}

async fn send_to_node(
    scu: &mut Scu,
    archive: &Arc<Archive>,
    instance: &StoredInstance,
    originator: &MoveOriginator,
) -> SubOperation {
    let Some((context, target)) = sending_context(|class, syntax| scu.context_for(class, syntax), instance) else {
        return SubOperation::Failed;
    };
    let Some(outgoing) = Outgoing::of(archive, instance, target).await else { return SubOperation::Failed };
    let (class, uid) = (instance.sop_class_uid.as_str(), instance.sop_instance_uid.as_str());
    let response = scu.store(context, class, uid, outgoing.file, outgoing.size, Some(originator)).await;
    match response {
        Ok(response) => SubOperation::from_status(response.status),
        Err(error) => {
            warn!(%error, "move sub-operation failed");
            SubOperation::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every standard transfer syntax for storage (PS3.5 Table A-1 and Annex A.4), which the
    /// SCP must accept as proposed: objects are kept as received, never decoded.
    const STANDARD_TRANSFER_SYNTAXES: &[&str] = &[
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.98",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.94",
        "1.2.840.10008.1.2.4.95",
        "1.2.840.10008.1.2.4.100",
        "1.2.840.10008.1.2.4.100.1",
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.101.1",
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.102.1",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.103.1",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.104.1",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.105.1",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.106.1",
        "1.2.840.10008.1.2.4.107",
        "1.2.840.10008.1.2.4.108",
        "1.2.840.10008.1.2.4.110",
        "1.2.840.10008.1.2.4.111",
        "1.2.840.10008.1.2.4.112",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
        "1.2.840.10008.1.2.5",
    ];

    #[test]
    fn every_standard_transfer_syntax_is_accepted() {
        let refused: Vec<&str> = STANDARD_TRANSFER_SYNTAXES
            .iter()
            .copied()
            .filter(|uid| !dicom_ul::association::server::is_supported(uid))
            .collect();
        assert!(refused.is_empty(), "refused: {refused:?}");
        for uid in STANDARD_TRANSFER_SYNTAXES {
            assert!(renkei_dicom::Syntax::from_uid(uid).is_some(), "{uid} has no layout");
        }
    }

    #[test]
    fn moves_propose_stored_syntaxes_first_then_the_fallbacks() {
        use renkei_domain::Uid;
        use renkei_domain::model::{BlobHash, StoredInstance};
        let instance = |class: &str, syntax: &str| StoredInstance {
            study_uid: Uid::new("1.1").expect("uid"),
            series_uid: Uid::new("1.1.1").expect("uid"),
            sop_instance_uid: Uid::new("1.1.1.1").expect("uid"),
            sop_class_uid: Uid::new(class).expect("uid"),
            transfer_syntax_uid: Uid::new(syntax).expect("uid"),
            blob: BlobHash(String::new()),
            size: 0,
            study_date: None,
            shared: None,
        };
        let (ct, video) = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.77.1.4.1");
        let contexts = super::proposed_contexts(&[
            instance(ct, "1.2.840.10008.1.2.4.80"),
            instance(ct, "1.2.840.10008.1.2.1"),
            instance(video, "1.2.840.10008.1.2.4.102"),
        ]);
        let pairs: Vec<(&str, &str)> = contexts.iter().map(|(class, ts)| (class.as_str(), ts[0].as_str())).collect();
        assert_eq!(
            pairs,
            [
                (ct, "1.2.840.10008.1.2.4.80"),
                (ct, "1.2.840.10008.1.2.1"),
                (video, "1.2.840.10008.1.2.4.102"),
                (ct, "1.2.840.10008.1.2"),
            ],
            "each pair once; MPEG-4 video cannot be decoded, so it has no fallback"
        );
    }
}
