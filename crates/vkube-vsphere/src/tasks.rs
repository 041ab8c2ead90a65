//! Waiting for vSphere tasks. All tasks a session waits for are polled
//! together: one waiter at a time reads `info.state` of every pending task
//! in a single property retrieval, on an interval that starts at 100 ms and
//! backs off to 1 s, and wakes the others. Results and faults are read once
//! per task when it ends.
//!
//! Why not `vim_rs`'s `TaskTracker`: its shared update loop stops for every
//! waiter when one task's fault does not parse (the simulator's fault
//! encoding), so one failed clone would fail all parallel clones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use vim_rs::types::enums::TaskInfoStateEnum;
use vim_rs::types::structs::{LocalizedMethodFault, ManagedObjectReference};

use crate::collect::{retrieve_objects, Wanted};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::session::Session;

const FIRST_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
enum Finished {
    Success,
    Error,
}

/// Shared state of one session's task waits.
#[derive(Default)]
pub(crate) struct TaskWaits {
    finished: Mutex<HashMap<String, Option<Finished>>>,
    poller: tokio::sync::Mutex<()>,
    changed: tokio::sync::Notify,
}

impl TaskWaits {
    fn status(&self, id: &str) -> Option<Finished> {
        self.finished
            .lock()
            .expect("task map")
            .get(id)
            .cloned()
            .flatten()
    }

    async fn poll_all(&self, session: &Session) -> Result<()> {
        let pending: Vec<ManagedObjectReference> = {
            let map = self.finished.lock().expect("task map");
            map.iter()
                .filter(|(_, f)| f.is_none())
                .map(|(id, _)| task_ref(id))
                .collect()
        };
        let mut states = retrieve_objects(
            session,
            &pending,
            &[Wanted {
                type_name: "Task",
                paths: &["info.state"],
            }],
        )
        .await?;
        let mut map = self.finished.lock().expect("task map");
        for props in states.iter_mut() {
            let finished = match props.take::<TaskInfoStateEnum>("info.state") {
                Some(TaskInfoStateEnum::Success) => Some(Finished::Success),
                Some(TaskInfoStateEnum::Error) => Some(Finished::Error),
                _ => None,
            };
            if let (Some(f), Some(slot)) = (finished, map.get_mut(&props.obj.value)) {
                *slot = Some(f);
            }
        }
        Ok(())
    }
}

fn task_ref(id: &str) -> ManagedObjectReference {
    ManagedObjectReference {
        r#type: vim_rs::types::enums::MoTypesEnum::Task,
        value: id.to_string(),
    }
}

/// Wait for `task` to end. Returns the task's result when it is a managed
/// object (e.g. the VM a clone created). A failed task becomes an [`Error`]
/// naming `operation` and the fault.
pub(crate) async fn wait(
    session: &Session,
    waits: &TaskWaits,
    operation: &str,
    task: ManagedObjectReference,
) -> Result<Option<ManagedObjectReference>> {
    let id = task.value.clone();
    waits
        .finished
        .lock()
        .expect("task map")
        .insert(id.clone(), None);
    let outcome = wait_until_finished(session, waits, &id).await;
    waits.finished.lock().expect("task map").remove(&id);
    match outcome? {
        Finished::Success => {
            let mut props = retrieve_objects(
                session,
                &[task],
                &[Wanted {
                    type_name: "Task",
                    paths: &["info.result"],
                }],
            )
            .await?;
            Ok(props
                .first_mut()
                .and_then(|p| p.take::<ManagedObjectReference>("info.result")))
        }
        Finished::Error => Err(task_error(session, operation, &task_ref(&id)).await),
    }
}

async fn wait_until_finished(session: &Session, waits: &TaskWaits, id: &str) -> Result<Finished> {
    let mut interval = FIRST_INTERVAL;
    loop {
        let notified = waits.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(done) = waits.status(id) {
            return Ok(done);
        }
        match waits.poller.try_lock() {
            Ok(_polling) => {
                tokio::time::sleep(interval).await;
                let polled = waits.poll_all(session).await;
                waits.changed.notify_waiters();
                polled?;
                interval = (interval.mul_f32(1.5)).min(MAX_INTERVAL);
            }
            Err(_) => {
                // Another waiter polls for us; the timeout covers a poller that failed.
                let _ = tokio::time::timeout(MAX_INTERVAL * 2, notified).await;
            }
        }
    }
}

/// The fault of a failed task. The simulator encodes some faults in a way
/// `vim_rs` cannot parse; then its message (`*types.InvalidPowerState`) still
/// names the fault.
async fn task_error(session: &Session, operation: &str, task: &ManagedObjectReference) -> Error {
    match retrieve_objects(
        session,
        std::slice::from_ref(task),
        &[Wanted {
            type_name: "Task",
            paths: &["info.error"],
        }],
    )
    .await
    {
        Ok(mut props) => match props
            .first_mut()
            .and_then(|p| p.take::<LocalizedMethodFault>("info.error"))
        {
            Some(fault) => {
                let mut err = Error::from_fault(operation, &fault.fault);
                if let Error::Fault { message, .. } = &mut err {
                    if message.is_none()
                        && !fault.localized_message.as_deref().unwrap_or("").is_empty()
                    {
                        *message = fault.localized_message.clone();
                    }
                }
                err
            }
            None => Error::raised(operation, Fault::Other("MethodFault".into()), None),
        },
        Err(_) => {
            let message = retrieve_objects(
                session,
                std::slice::from_ref(task),
                &[Wanted {
                    type_name: "Task",
                    paths: &["info.error.localizedMessage"],
                }],
            )
            .await
            .ok()
            .and_then(|mut p| {
                p.first_mut()
                    .and_then(|p| p.string("info.error.localizedMessage"))
            })
            .unwrap_or_default();
            match message.strip_prefix("*types.") {
                Some(name) => Error::raised(operation, Fault::from_name(name), None),
                None => Error::raised(operation, Fault::Other("MethodFault".into()), Some(message)),
            }
        }
    }
}
