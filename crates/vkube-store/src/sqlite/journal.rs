//! Intents and events in SQLite: the [`Journal`] implementation.

use rusqlite::{params, Row, Transaction};

use super::cluster::{load_cluster, parse_stored};
use super::{check_name, database, SqliteStore};
use crate::error::{Error, Result};
use crate::journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
use crate::time::Timestamp;

const INTENT_COLUMNS: &str =
    "id, cluster, node, action, detail, started_at, completed_at, outcome, outcome_message";

const EVENT_COLUMNS: &str = "id, cluster, at, level, kind, message, node";

/// A `cluster_intents` row as stored.
struct IntentRow {
    id: i64,
    cluster: String,
    node: Option<String>,
    action: String,
    detail: String,
    started_at: i64,
    completed_at: Option<i64>,
    outcome: Option<String>,
    outcome_message: Option<String>,
}

impl IntentRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
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

    fn into_intent(self) -> Result<Intent> {
        let what =
            |field: &str| format!("{field} of intent {} (cluster `{}`)", self.id, self.cluster);
        let action = parse_stored(IntentAction::parse, &self.action, || what("action"))?;
        let detail = serde_json::from_str(&self.detail).map_err(|error| Error::Corrupt {
            what: what("detail"),
            problem: error.to_string(),
        })?;
        let outcome = match &self.outcome {
            None => None,
            Some(outcome) => Some(parse_stored(
                |text| IntentOutcome::parse(text, self.outcome_message.clone()),
                outcome,
                || what("outcome"),
            )?),
        };
        Ok(Intent {
            id: IntentId::from_raw(self.id),
            cluster: self.cluster,
            node: self.node,
            action,
            detail,
            started_at: Timestamp::from_unix_seconds(self.started_at),
            completed_at: self.completed_at.map(Timestamp::from_unix_seconds),
            outcome,
        })
    }
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
        .query_map(parameters, IntentRow::read)
        .map_err(database(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(database(action))?;
    rows.into_iter().map(IntentRow::into_intent).collect()
}

fn load_intent(transaction: &Transaction<'_>, id: IntentId, action: &str) -> Result<Intent> {
    select_intents(transaction, "id = ?1", &[&id.get()], action)?
        .pop()
        .ok_or(Error::IntentNotFound { id })
}

/// A `cluster_events` row as stored.
struct EventRow {
    sequence: i64,
    cluster: String,
    at: i64,
    level: String,
    kind: String,
    message: String,
    node: Option<String>,
}

impl EventRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
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

    fn into_event(self) -> Result<Event> {
        let level = parse_stored(EventLevel::parse, &self.level, || {
            format!(
                "level of event {} (cluster `{}`)",
                self.sequence, self.cluster
            )
        })?;
        Ok(Event {
            sequence: self.sequence,
            cluster: self.cluster,
            at: Timestamp::from_unix_seconds(self.at),
            level,
            kind: self.kind,
            message: self.message,
            node: self.node,
        })
    }
}

impl Journal for SqliteStore {
    fn record_intent(
        &self,
        cluster: &str,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        if let Some(node) = node {
            check_name("node", node)?;
        }
        let what = format!("recording intent `{action}` for cluster `{cluster}`");
        self.write(&what, |transaction| {
            load_cluster(transaction, cluster)?;
            // RETURNING: SQLite 3.35+ and PostgreSQL alike.
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
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        let action = format!("completing intent {id}");
        self.write(&action, |transaction| {
            // Only an open intent is completed, so the first outcome stays.
            transaction
                .execute(
                    "UPDATE cluster_intents SET completed_at = ?2, outcome = ?3, outcome_message = ?4
                     WHERE id = ?1 AND completed_at IS NULL",
                    params![id.get(), now.unix_seconds(), outcome.as_str(), outcome.message()],
                )
                .map_err(database(&action))?;
            load_intent(transaction, id, &action)
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

    fn append_event(
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
        self.write(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            let sequence: i64 = transaction
                .query_row(
                    "INSERT INTO cluster_events (cluster, at, level, kind, message, node)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                    params![
                        cluster,
                        now.unix_seconds(),
                        level.as_str(),
                        kind,
                        message,
                        node
                    ],
                    |row| row.get(0),
                )
                .map_err(database(&action))?;
            Ok(Event {
                sequence,
                cluster: cluster.to_owned(),
                at: now,
                level,
                kind: kind.to_owned(),
                message: message.to_owned(),
                node: node.map(str::to_owned),
            })
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
                .query_map(params![cluster, limit], EventRow::read)
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
