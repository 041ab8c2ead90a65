//! Intents and events in memory: the [`Journal`] implementation. Ids and
//! sequences count over the whole state, as the SQL stores' identity
//! columns do, so neither is reused after a cluster is removed.

use async_trait::async_trait;

use super::state::State;
use super::{MemoryStore, Operation};
use crate::error::{Error, Result};
use crate::journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
use crate::lock::Fence;
use crate::rules::{check_name, intent_to_record};
use crate::time::Timestamp;

impl State {
    fn record_intent(
        &mut self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        intent_to_record(fence, node, action)?;
        self.check_fence(fence)?;
        let id = self.last_intent_id + 1;
        let entry = self.cluster_mut(fence.cluster())?;
        let intent = Intent {
            id: IntentId::from_raw(id),
            cluster: fence.cluster().to_owned(),
            node: node.map(str::to_owned),
            action,
            detail: detail.clone(),
            started_at: now,
            completed_at: None,
            outcome: None,
        };
        entry.intents.insert(id, intent);
        self.last_intent_id = id;
        Ok(IntentId::from_raw(id))
    }

    fn complete_intent(
        &mut self,
        fence: &Fence,
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        self.check_fence(fence)?;
        let intent = self
            .clusters
            .get_mut(fence.cluster())
            .and_then(|entry| entry.intents.get_mut(&id.get()))
            .ok_or(Error::IntentNotFound { id })?;
        // Only an open intent is completed, so the first outcome stays.
        if intent.completed_at.is_none() {
            intent.completed_at = Some(now);
            intent.outcome = Some(outcome);
        }
        Ok(intent.clone())
    }

    fn append_event(&mut self, event: Event) -> Result<Event> {
        check_name("event kind", &event.kind)?;
        if let Some(node) = &event.node {
            check_name("node", node)?;
        }
        let sequence = self.last_event_sequence + 1;
        let entry = self.cluster_mut(&event.cluster)?;
        let event = Event { sequence, ..event };
        entry.events.push(event.clone());
        self.last_event_sequence = sequence;
        Ok(event)
    }
}

#[async_trait]
impl Journal for MemoryStore {
    async fn record_intent(
        &self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId> {
        self.write(Operation::RecordIntent, |state, _| {
            state.record_intent(fence, node, action, detail, now)
        })
    }

    async fn complete_intent(
        &self,
        fence: &Fence,
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent> {
        self.write(Operation::CompleteIntent, |state, _| {
            state.complete_intent(fence, id, outcome, now)
        })
    }

    async fn open_intents(&self, cluster: &str) -> Result<Vec<Intent>> {
        self.read(Operation::OpenIntents, |state, _| {
            Ok(state.cluster(cluster)?.open_intents())
        })
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
        self.write(Operation::AppendEvent, |state, _| state.append_event(event))
    }

    async fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>> {
        self.read(Operation::Events, |state, _| {
            let events = &state.cluster(cluster)?.events;
            Ok(events[events.len().saturating_sub(limit)..].to_vec())
        })
    }
}
