//! queue_basic on `prism_queue`: a receive takes the oldest visible rows with
//! `FOR UPDATE SKIP LOCKED` (concurrent receivers never wait on or share a row) and hides
//! them until their deadline. A receipt is `<id>.<token>`; the token changes with every
//! delivery, so an old receipt stops working.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Postgres, column};
use crate::backends::driver::poll_until;
use crate::interfaces::{QueueBasic, ReceivedMessage, check_receive};
use crate::{BackendError, BackendResult};

impl Postgres {
    /// The row named by `receipt` while its delivery is still current.
    async fn settle(&self, queue: &str, receipt: &str, statement: &str) -> Result<bool, BackendError> {
        let Some((id, _)) = receipt.split_once('.') else {
            return Ok(false);
        };
        let Ok(id) = id.parse::<i64>() else {
            return Ok(false);
        };
        let n = self
            .execute(statement, &[&id, &self.queue_name(queue), &receipt])
            .await?;
        Ok(n == 1)
    }

    fn queue_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }
}

#[async_trait]
impl QueueBasic for Postgres {
    async fn enqueue(&self, queue: String, payload: Bytes) -> Result<String, BackendError> {
        let rows = self
            .query(
                "INSERT INTO prism_queue (queue, payload) VALUES ($1, $2) RETURNING id",
                &[&self.queue_name(&queue), &payload.as_ref()],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| BackendError::Internal("postgres: INSERT ... RETURNING gave no row".into()))?;
        let id: i64 = column(row, 0)?;
        Ok(id.to_string())
    }

    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        check_receive(max, visibility)?;
        let name = self.queue_name(&queue);
        let (max, seconds) = (i64::from(max), visibility.as_secs_f64());
        poll_until(wait, || async {
            let rows = self
                .query(
                    "UPDATE prism_queue
                     SET visible_at = now() + make_interval(secs => $3::float8),
                         deliveries = deliveries + 1,
                         receipt = id::text || '.' || md5(random()::text || clock_timestamp()::text)
                     WHERE id IN (
                         SELECT id FROM prism_queue WHERE queue = $1 AND visible_at <= now()
                         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING id, receipt, payload, deliveries",
                    &[&name, &max, &seconds],
                )
                .await?;
            let mut got: Vec<(i64, ReceivedMessage)> = rows
                .iter()
                .map(|row| {
                    let id: i64 = column(row, 0)?;
                    let message = ReceivedMessage {
                        message_id: id.to_string(),
                        receipt: column(row, 1)?,
                        payload: Bytes::from(column::<Vec<u8>>(row, 2)?),
                        delivery_count: column::<i32>(row, 3)?.max(0) as u32,
                    };
                    Ok((id, message))
                })
                .collect::<BackendResult<_>>()?;
            // RETURNING has no order: oldest first.
            got.sort_by_key(|(id, _)| *id);
            Ok(got.into_iter().map(|(_, m)| m).collect())
        })
        .await
    }

    async fn ack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        self.settle(
            &queue,
            &receipt,
            "DELETE FROM prism_queue WHERE id = $1 AND queue = $2 AND receipt = $3 AND visible_at > now()",
        )
        .await
    }

    async fn nack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        self.settle(
            &queue,
            &receipt,
            "UPDATE prism_queue SET visible_at = now(), receipt = NULL
             WHERE id = $1 AND queue = $2 AND receipt = $3 AND visible_at > now()",
        )
        .await
    }
}
