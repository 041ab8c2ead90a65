//! Intents and events in PostgreSQL: the [`Journal`] implementation.
//!
//! Writes hold their cluster row `FOR KEY SHARE`: the cluster cannot be
//! removed under them, and they do not queue behind each other.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::cluster::load_cluster;
use super::lock::fenced;
use super::{commit, pg, read, write, PgStore};
use crate::error::{Error, Result};
use crate::journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
use crate::lock::Fence;
use crate::rows::{EventRow, IntentRow, EVENT_COLUMNS};
use crate::rules::{check_name, intent_to_record};
use crate::time::Timestamp;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// `cluster_intents` columns in [`IntentRow`] order, JSONB `detail` as text.
const INTENT_COLUMNS: &str = "id, cluster, node, action, detail::text, started_at, \
     completed_at, outcome, outcome_message";

fn intent_row(row: &Row) -> IntentRow {
    IntentRow {
        id: row.get(0),
        cluster: row.get(1),
        node: row.get(2),
        action: row.get(3),
        detail: row.get(4),
        started_at: row.get(5),
        completed_at: row.get(6),
        outcome: row.get(7),
        outcome_message: row.get(8),
    }
}

/// Intents matching a WHERE clause, oldest first.
pub(super) async fn select_intents(
    client: &impl GenericClient,
    condition: &str,
    parameters: Params<'_>,
    action: &str,
) -> Result<Vec<Intent>> {
    client
        .query(
            &format!("SELECT {INTENT_COLUMNS} FROM cluster_intents WHERE {condition} ORDER BY id"),
            parameters,
        )
        .await
        .map_err(pg(action))?
        .iter()
        .map(|row| intent_row(row).into_intent())
        .collect()
}

#[async_trait]
impl Journal for PgStore {
    async fn record_intent(
        &self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        let what = intent_to_record(fence, node, action)?;
        let cluster = fence.cluster();
        let mut client = self.client(&what).await?;
        let transaction = write(&mut client, &what).await?;
        fenced(&transaction, fence, &what).await?;
        load_cluster(&transaction, cluster, "FOR KEY SHARE").await?;
        let id: i64 = transaction
            .query_one(
                "INSERT INTO cluster_intents (cluster, node, action, detail, started_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &cluster,
                    &node,
                    &action.as_str(),
                    detail,
                    &now.unix_seconds(),
                ],
            )
            .await
            .map_err(pg(&what))?
            .get(0);
        commit(transaction, &what).await?;
        Ok(IntentId::from_raw(id))
    }

    async fn complete_intent(
        &self,
        fence: &Fence,
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        let action = format!("completing intent {id}");
        let cluster = fence.cluster();
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        // Only an open intent is completed, so the first outcome stays.
        transaction
            .execute(
                "UPDATE cluster_intents SET completed_at = $3, outcome = $4, outcome_message = $5
                 WHERE id = $1 AND cluster = $2 AND completed_at IS NULL",
                &[
                    &id.get(),
                    &cluster,
                    &now.unix_seconds(),
                    &outcome.as_str(),
                    &outcome.message(),
                ],
            )
            .await
            .map_err(pg(&action))?;
        let intent = select_intents(
            &transaction,
            "id = $1 AND cluster = $2",
            &[&id.get(), &cluster],
            &action,
        )
        .await?
        .pop()
        .ok_or(Error::IntentNotFound { id })?;
        commit(transaction, &action).await?;
        Ok(intent)
    }

    async fn open_intents(&self, cluster: &str) -> Result<Vec<Intent>> {
        let action = format!("listing open intents of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "").await?;
        select_intents(
            &transaction,
            "cluster = $1 AND completed_at IS NULL",
            &[&cluster],
            &action,
        )
        .await
    }

    async fn append_event(
        &self,
        cluster: &str,
        now: Timestamp,
        level: EventLevel,
        kind: &str,
        message: &str,
        node: Option<&str>,
    ) -> Result<Event> {
        check_name("event kind", kind)?;
        if let Some(node) = node {
            check_name("node", node)?;
        }
        let action = format!("recording event `{kind}` of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "FOR KEY SHARE").await?;
        let sequence: i64 = transaction
            .query_one(
                "INSERT INTO cluster_events (cluster, at, level, kind, message, node)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &cluster,
                    &now.unix_seconds(),
                    &level.as_str(),
                    &kind,
                    &message,
                    &node,
                ],
            )
            .await
            .map_err(pg(&action))?
            .get(0);
        commit(transaction, &action).await?;
        Ok(Event {
            sequence,
            ..Event::new(cluster, now, level, kind, message, node)
        })
    }

    async fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>> {
        let action = format!("listing events of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "").await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = transaction
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM cluster_events WHERE cluster = $1
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&cluster, &limit],
            )
            .await
            .map_err(pg(&action))?;
        let mut events = rows
            .iter()
            .map(|row| {
                EventRow {
                    sequence: row.get(0),
                    cluster: row.get(1),
                    at: row.get(2),
                    level: row.get(3),
                    kind: row.get(4),
                    message: row.get(5),
                    node: row.get(6),
                }
                .into_event()
            })
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}
