//! Intents and events in SQLite: the [`Journal`] implementation.

use async_trait::async_trait;
use rusqlite::{params, Row, Transaction};

use super::cluster::load_cluster;
use super::lock::fenced;
use super::{database, Inner, SqliteStore};
use crate::error::{Error, Result};
use crate::journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
use crate::lock::Fence;
use crate::rows::{EventRow, IntentRow, EVENT_COLUMNS, INTENT_COLUMNS};
use crate::rules::{check_name, intent_to_record};
use crate::time::Timestamp;

fn intent_row(row: &Row<'_>) -> rusqlite::Result<IntentRow> {
    Ok(IntentRow {
        id: row.get(0)?,
        cluster: row.get(1)?,
        node: row.get(2)?,
        action: row.get(3)?,
        detail: row.get(4)?,
        started_at: row.get(5)?,
        completed_at: row.get(6)?,
        outcome: row.get(7)?,
        outcome_message: row.get(8)?,
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        sequence: row.get(0)?,
        cluster: row.get(1)?,
        at: row.get(2)?,
        level: row.get(3)?,
        kind: row.get(4)?,
        message: row.get(5)?,
        node: row.get(6)?,
    })
}

/// Intents matching a WHERE clause, oldest first.
pub(super) fn select_intents(
    transaction: &Transaction<'_>,
    condition: &str,
    parameters: &[&dyn rusqlite::ToSql],
    action: &str,
) -> Result<Vec<Intent>> {
    let mut statement = transaction
        .prepare(&format!(
            "SELECT {INTENT_COLUMNS} FROM cluster_intents WHERE {condition} ORDER BY id"
        ))
        .map_err(database(action))?;
    let rows = statement
        .query_map(parameters, intent_row)
        .map_err(database(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(database(action))?;
    rows.into_iter().map(IntentRow::into_intent).collect()
}

impl Inner {
    fn record_intent(
        &self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        let what = intent_to_record(fence, node, action)?;
        let cluster = fence.cluster();
        self.write(&what, |transaction| {
            fenced(transaction, fence, &what)?;
            load_cluster(transaction, cluster)?;
            let id: i64 = transaction
                .query_row(
                    "INSERT INTO cluster_intents (cluster, node, action, detail, started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    params![
                        cluster,
                        node,
                        action.as_str(),
                        detail.to_string(),
                        now.unix_seconds()
                    ],
                    |row| row.get(0),
                )
                .map_err(database(&what))?;
            Ok(IntentId::from_raw(id))
        })
    }

    fn complete_intent(
        &self,
        fence: &Fence,
        id: IntentId,
        outcome: &IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        let action = format!("completing intent {id}");
        let cluster = fence.cluster();
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            // Only an open intent is completed, so the first outcome stays.
            transaction
                .execute(
                    "UPDATE cluster_intents SET completed_at = ?3, outcome = ?4, outcome_message = ?5
                     WHERE id = ?1 AND cluster = ?2 AND completed_at IS NULL",
                    params![id.get(), cluster, now.unix_seconds(), outcome.as_str(), outcome.message()],
                )
                .map_err(database(&action))?;
            select_intents(
                transaction,
                "id = ?1 AND cluster = ?2",
                &[&id.get(), &cluster],
                &action,
            )?
            .pop()
            .ok_or(Error::IntentNotFound { id })
        })
    }

    fn open_intents(&self, cluster: &str) -> Result<Vec<Intent>> {
        let action = format!("listing open intents of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            select_intents(
                transaction,
                "cluster = ?1 AND completed_at IS NULL",
                &[&cluster],
                &action,
            )
        })
    }

    fn append_event(&self, event: Event) -> Result<Event> {
        check_name("event kind", &event.kind)?;
        if let Some(node) = &event.node {
            check_name("node", node)?;
        }
        let action = format!(
            "recording event `{}` of cluster `{}`",
            event.kind, event.cluster
        );
        self.write(&action, |transaction| {
            load_cluster(transaction, &event.cluster)?;
            let sequence: i64 = transaction
                .query_row(
                    "INSERT INTO cluster_events (cluster, at, level, kind, message, node)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                    params![
                        event.cluster,
                        event.at.unix_seconds(),
                        event.level.as_str(),
                        event.kind,
                        event.message,
                        event.node
                    ],
                    |row| row.get(0),
                )
                .map_err(database(&action))?;
            Ok(Event { sequence, ..event })
        })
    }

    fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>> {
        let action = format!("listing events of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut statement = transaction
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM cluster_events WHERE cluster = ?1
                     ORDER BY id DESC LIMIT ?2"
                ))
                .map_err(database(&action))?;
            let rows = statement
                .query_map(params![cluster, limit], event_row)
                .map_err(database(&action))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(database(&action))?;
            let mut events = rows
                .into_iter()
                .map(EventRow::into_event)
                .collect::<Result<Vec<_>>>()?;
            events.reverse();
            Ok(events)
        })
    }
}

#[async_trait]
impl Journal for SqliteStore {
    async fn record_intent(
        &self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        let (fence, node, detail) = (fence.clone(), node.map(str::to_owned), detail.clone());
        self.run("recording an intent", move |store| {
            store.record_intent(&fence, node.as_deref(), action, &detail, now)
        })
        .await
    }

    async fn complete_intent(
        &self,
        fence: &Fence,
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        let fence = fence.clone();
        self.run("completing an intent", move |store| {
            store.complete_intent(&fence, id, &outcome, now)
        })
        .await
    }

    async fn open_intents(&self, cluster: &str) -> Result<Vec<Intent>> {
        let cluster = cluster.to_owned();
        self.run("listing open intents", move |store| {
            store.open_intents(&cluster)
        })
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
        let event = Event::new(cluster, now, level, kind, message, node);
        self.run("recording an event", move |store| store.append_event(event))
            .await
    }

    async fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>> {
        let cluster = cluster.to_owned();
        self.run("listing events", move |store| store.events(&cluster, limit))
            .await
    }
}
