//! Batched inserts. Appends hand their rows to one writer task, which sends an INSERT
//! once `batch_rows` rows wait or the oldest has waited `flush_interval`, at most
//! `concurrent_inserts` at once. An append
//! returns only after its rows are written, so nothing acknowledged is lost; at most
//! `buffer_rows` rows wait at once, and further appends wait for room (pushback, never
//! dropping). [`Batcher::close`] (called when the driver is dropped) makes the writer
//! flush at once whatever waits, and everything after it without delay.
//!
//! An append given up by its caller (its deadline passed, its client left) before its
//! batch is sent is taken out of the batch: a caller told it failed must be able to
//! retry without duplicating rows. Its rows hold their buffer room until then, so
//! abandoned appends cannot grow the queue past `buffer_rows`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::rows::{Batch, EventRow};
use super::{ClickhouseConfig, TABLE, ensure_schema, error};
use crate::backends::driver::bounded;
use crate::{BackendError, BackendResult};

struct Pending {
    rows: Batch,
    done: oneshot::Sender<BackendResult<()>>,
    /// The rows' buffer room, given back when they are written or dropped.
    _room: OwnedSemaphorePermit,
}

pub struct Batcher {
    tx: mpsc::UnboundedSender<Pending>,
    room: Arc<Semaphore>,
    buffer_rows: usize,
    closing: CancellationToken,
}

impl Batcher {
    pub fn start(client: clickhouse::Client, schema: Arc<OnceCell<()>>, config: &ClickhouseConfig) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let closing = CancellationToken::new();
        let writer = Writer {
            closing: closing.clone(),
            client,
            schema,
            timeout: config.timeout,
            batch_rows: config.batch_rows,
            flush_interval: config.flush_interval,
            concurrent_inserts: config.concurrent_inserts,
        };
        tokio::spawn(writer.run(rx));
        Batcher {
            tx,
            room: Arc::new(Semaphore::new(config.buffer_rows)),
            buffer_rows: config.buffer_rows,
            closing,
        }
    }

    /// Flushes what waits now, and every later append without waiting (shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Writes `rows`, waiting for room in the buffer first; returns once they are in
    /// ClickHouse.
    pub async fn write(&self, rows: Batch) -> Result<(), BackendError> {
        if rows.is_empty() {
            return Ok(());
        }
        // An append larger than the whole buffer takes all of it.
        let wanted = rows.len().min(self.buffer_rows) as u32;
        let room = self
            .room
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| BackendError::Unavailable("clickhouse: the insert batcher has stopped".into()))?;
        let (done, written) = oneshot::channel();
        self.tx
            .send(Pending {
                rows,
                done,
                _room: room,
            })
            .map_err(|_| BackendError::Unavailable("clickhouse: the insert batcher has stopped".into()))?;
        written
            .await
            .map_err(|_| BackendError::Unavailable("clickhouse: the insert batcher stopped before writing".into()))?
    }
}

struct Writer {
    closing: CancellationToken,
    client: clickhouse::Client,
    schema: Arc<OnceCell<()>>,
    timeout: Duration,
    batch_rows: usize,
    flush_interval: Duration,
    /// INSERTs sent at once: the next batch is collected and sent while ClickHouse still
    /// works on the one before (one at a time left a core idle half the time).
    concurrent_inserts: usize,
}

impl Writer {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>) {
        let mut inserting = tokio::task::JoinSet::new();
        // Ends when every sender is gone and the channel is drained: the final flush.
        while let Some(first) = rx.recv().await {
            let deadline = tokio::time::Instant::now() + self.flush_interval;
            let mut batch = vec![first];
            let mut rows = batch[0].rows.len();
            while rows < self.batch_rows && !self.closing.is_cancelled() {
                tokio::select! {
                    _ = self.closing.cancelled() => break,
                    next = rx.recv() => match next {
                        Some(p) => {
                            rows += p.rows.len();
                            batch.push(p);
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            batch.retain(|pending| !pending.done.is_closed());
            if batch.is_empty() {
                continue;
            }
            while inserting.len() >= self.concurrent_inserts {
                inserting.join_next().await;
            }
            let insert = Insert {
                client: self.client.clone(),
                schema: self.schema.clone(),
                timeout: self.timeout,
            };
            inserting.spawn(async move {
                let result = insert.write(&batch).await;
                for pending in batch {
                    let _ = pending.done.send(result.clone());
                }
            });
        }
        while inserting.join_next().await.is_some() {}
    }
}

/// One INSERT of a batch.
struct Insert {
    client: clickhouse::Client,
    schema: Arc<OnceCell<()>>,
    timeout: Duration,
}

impl Insert {
    async fn write(&self, batch: &[Pending]) -> Result<(), BackendError> {
        ensure_schema(&self.client, &self.schema, self.timeout).await?;
        bounded("clickhouse", self.timeout, async {
            let mut insert = self.client.insert::<EventRow<'static>>(TABLE).await.map_err(error)?;
            for rows in batch.iter().map(|p| &p.rows) {
                for i in 0..rows.len() {
                    insert.write(&rows.row(i)).await.map_err(error)?;
                }
            }
            insert.end().await.map_err(error)
        })
        .await
    }
}
