//! The group committer: one task takes index writes from every concurrent ingest and
//! commits whatever has queued up in a single transaction, so the cost of a durable commit
//! (an fsync) is shared by all instances that arrived while the previous one ran. Blobs are
//! durable before they are queued here, so an index row never points at a blob that a crash
//! could still take away.

use std::sync::Arc;

use renkei_domain::model::{NewInstance, StoreOutcome};
use renkei_store::InstanceStore;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ServiceError;

/// Most instances in one transaction: bounds its duration and the latency of the first.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<StoreOutcome, ServiceError>>;

pub(crate) struct Committer {
    sender: Mutex<Option<mpsc::Sender<(NewInstance, Reply)>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    pub(crate) fn start(store: Arc<dyn InstanceStore>) -> Self {
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        let task = tokio::spawn(run(store, receiver));
        Self { sender: Mutex::new(Some(sender)), task: Mutex::new(Some(task)) }
    }

    /// Queues a record and waits until its transaction has committed.
    pub(crate) async fn commit(&self, record: NewInstance) -> Result<StoreOutcome, ServiceError> {
        let sender = self.sender.lock().await.clone().ok_or_else(shutting_down)?;
        let (reply, outcome) = oneshot::channel();
        sender.send((record, reply)).await.map_err(|_| shutting_down())?;
        outcome.await.map_err(|_| shutting_down())?
    }

    /// Closes the queue and waits until everything queued has been committed.
    pub(crate) async fn shutdown(&self) {
        self.sender.lock().await.take();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

fn shutting_down() -> ServiceError {
    ServiceError { kind: renkei_domain::ErrorKind::Unavailable, message: "archive is shutting down".into() }
}

async fn run(store: Arc<dyn InstanceStore>, mut receiver: mpsc::Receiver<(NewInstance, Reply)>) {
    let mut records = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((record, reply)) = receiver.recv().await {
        records.push(record);
        replies.push(reply);
        while records.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok((record, reply)) => {
                    records.push(record);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        tracing::trace!(batch = records.len(), "committing index batch");
        match store.record_instances(&records).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(outcome.map_err(ServiceError::from));
                }
            }
            Err(error) => {
                let error = ServiceError::from(error);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        records.clear();
    }
}
