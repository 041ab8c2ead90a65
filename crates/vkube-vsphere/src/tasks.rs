//! Waiting for vSphere tasks. All tasks a session waits for are polled
//! together: one waiter at a time reads `info.state`, `info.progress` and
//! `info.result` of every pending task in a single property retrieval and
//! wakes the others. A task no poll has seen yet is looked at at once — a
//! new task wakes the poller from its interval — because tasks often end
//! within their start call's round trip (the simulator's always do); after
//! that the interval starts at 100 ms and backs off to 1 s. A task's result
//! comes with the poll that sees it end; a fault is read once, when it
//! failed, in its own retrieval (see below why).
//!
//! Why not `vim_rs`'s `TaskTracker`: its shared update loop stops for every
//! waiter when one task's fault does not parse (the simulator's fault
//! encoding), so one failed clone would fail all parallel clones. For the
//! same reason the shared poll never reads `info.error`.
//!
//! A wait is bounded by the task's own progress, not by a total: each poll
//! also reads `info.progress`, and a task whose state and progress have not
//! changed for [`Timeouts::task_stall`](crate::session::Timeouts) fails with
//! [`Error::TaskStalled`]. A slow task is logged at info level (what, which
//! task, where it stands), first after the slow-notice time, then every
//! [`NOTICE_EVERY`]. Polls are reads and survive a session's end (see
//! [`crate::collect`]); task objects outlive the session that started them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use vim_rs::types::enums::TaskInfoStateEnum;
use vim_rs::types::structs::{LocalizedMethodFault, ManagedObjectReference};

use crate::collect::{retrieve_objects, Wanted};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::session::Session;

const FIRST_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// How often a slow task is logged after the first notice.
const NOTICE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
enum Finished {
    Success,
    Error,
}

/// What the last poll saw of a task (state and progress), and since when.
#[derive(Debug, Clone)]
struct Seen {
    state: Option<TaskInfoStateEnum>,
    progress: Option<i32>,
    since: Instant,
}

impl Seen {
    /// How long the task has not changed, when that reaches `limit`.
    fn stalled(&self, now: Instant, limit: Duration) -> Option<Duration> {
        let unchanged = now.saturating_duration_since(self.since);
        (unchanged >= limit).then_some(unchanged)
    }

    fn describe(&self) -> String {
        let state = match &self.state {
            Some(state) => state.to_string(),
            None => "not yet seen".into(),
        };
        match self.progress {
            Some(percent) => format!("{state} at {percent} %"),
            None => state,
        }
    }
}

/// One pending task.
#[derive(Debug, Clone)]
struct Pending {
    finished: Option<Finished>,
    /// `info.result`, once it ended well (a managed object, e.g. a clone).
    result: Option<ManagedObjectReference>,
    seen: Seen,
    /// Whether any poll has looked at it yet.
    polled: bool,
}

impl Pending {
    /// A task just started: not seen by any poll yet.
    fn new() -> Pending {
        Pending {
            finished: None,
            result: None,
            seen: Seen {
                state: None,
                progress: None,
                since: Instant::now(),
            },
            polled: false,
        }
    }
}

/// Shared state of one session's task waits.
#[derive(Default)]
pub(crate) struct TaskWaits {
    tasks: Mutex<HashMap<String, Pending>>,
    poller: tokio::sync::Mutex<()>,
    /// A poll ended: waiters look at their task again.
    changed: tokio::sync::Notify,
    /// A task was added: the poller looks at it at once.
    arrived: tokio::sync::Notify,
}

impl TaskWaits {
    fn pending(&self, id: &str) -> Option<Pending> {
        self.tasks.lock().expect("task map").get(id).cloned()
    }

    fn any_unpolled(&self) -> bool {
        self.tasks
            .lock()
            .expect("task map")
            .values()
            .any(|p| !p.polled && p.finished.is_none())
    }

    async fn poll_all(&self, session: &Session) -> Result<()> {
        let pending: Vec<ManagedObjectReference> = {
            let map = self.tasks.lock().expect("task map");
            map.iter()
                .filter(|(_, p)| p.finished.is_none())
                .map(|(id, _)| task_ref(id))
                .collect()
        };
        let mut states = retrieve_objects(
            session,
            &pending,
            &[Wanted {
                type_name: "Task",
                paths: &["info.state", "info.progress", "info.result"],
            }],
        )
        .await?;
        let now = Instant::now();
        let mut map = self.tasks.lock().expect("task map");
        for props in states.iter_mut() {
            let Some(slot) = map.get_mut(&props.obj.value) else {
                continue;
            };
            let state = props.take::<TaskInfoStateEnum>("info.state");
            let progress = props.take::<i32>("info.progress");
            slot.polled = true;
            if state == Some(TaskInfoStateEnum::Success) {
                slot.result = props.take::<ManagedObjectReference>("info.result");
            }
            slot.finished = match state {
                Some(TaskInfoStateEnum::Success) => Some(Finished::Success),
                Some(TaskInfoStateEnum::Error) => Some(Finished::Error),
                _ => None,
            };
            if slot.seen.state != state || slot.seen.progress != progress {
                slot.seen = Seen {
                    state,
                    progress,
                    since: now,
                };
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
        .tasks
        .lock()
        .expect("task map")
        .insert(id.clone(), Pending::new());
    waits.arrived.notify_waiters();
    let outcome = wait_until_finished(session, waits, operation, &id).await;
    let pending = waits.tasks.lock().expect("task map").remove(&id);
    match outcome? {
        Finished::Success => Ok(pending.and_then(|p| p.result)),
        Finished::Error => Err(task_error(session, operation, &task).await),
    }
}

async fn wait_until_finished(
    session: &Session,
    waits: &TaskWaits,
    operation: &str,
    id: &str,
) -> Result<Finished> {
    let timeouts = session.options().timeouts;
    let started = Instant::now();
    let mut next_notice = started + timeouts.first_notice(timeouts.task_stall);
    let mut interval = FIRST_INTERVAL;
    loop {
        let notified = waits.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(pending) = waits.pending(id) else {
            return Err(Error::Protocol {
                operation: operation.into(),
                detail: format!("lost track of task `{id}`"),
            });
        };
        if let Some(done) = pending.finished {
            return Ok(done);
        }
        let now = Instant::now();
        if let Some(waited) = pending.seen.stalled(now, timeouts.task_stall) {
            return Err(Error::TaskStalled {
                operation: operation.into(),
                host: session.host().to_string(),
                task: id.to_string(),
                waited,
                state: pending.seen.describe(),
            });
        }
        if now >= next_notice {
            tracing::info!(
                "waiting for vCenter `{}`: {operation} (task `{id}` {}, {} so far)",
                session.host(),
                pending.seen.describe(),
                crate::session::human(now - started)
            );
            next_notice = now + NOTICE_EVERY.max(timeouts.slow_notice);
        }
        match waits.poller.try_lock() {
            Ok(_polling) => {
                let due = poll_due(waits, interval).await;
                let polled = waits.poll_all(session).await;
                waits.changed.notify_waiters();
                polled?;
                interval = match due {
                    Due::NewTask => FIRST_INTERVAL,
                    Due::Interval => interval.mul_f32(1.5).min(MAX_INTERVAL),
                };
            }
            Err(_) => {
                // Another waiter polls for us; the timeout covers a poller that failed.
                let _ = tokio::time::timeout(MAX_INTERVAL * 2, notified).await;
            }
        }
    }
}

/// Why the poller polls now.
#[derive(Debug, PartialEq)]
enum Due {
    /// A task no poll has seen yet.
    NewTask,
    /// The interval passed.
    Interval,
}

/// Wait until the next poll is due: at once when a task no poll has seen is
/// pending, else after `interval` unless a new task arrives first.
async fn poll_due(waits: &TaskWaits, interval: Duration) -> Due {
    let arrived = waits.arrived.notified();
    tokio::pin!(arrived);
    // Registered before the check, so a task added in between still wakes us.
    arrived.as_mut().enable();
    if waits.any_unpolled() {
        return Due::NewTask;
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => Due::Interval,
        _ = arrived => Due::NewTask,
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
        // vCenter stopped answering: asking again for the message would wait as long.
        Err(e) if e.is_no_answer() => e,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn add_unpolled(waits: &TaskWaits, id: &str) {
        waits
            .tasks
            .lock()
            .expect("task map")
            .insert(id.into(), Pending::new());
        waits.arrived.notify_waiters();
    }

    #[tokio::test]
    async fn a_task_no_poll_has_seen_is_polled_at_once() {
        let waits = TaskWaits::default();
        add_unpolled(&waits, "task-1");
        let started = Instant::now();
        assert_eq!(
            poll_due(&waits, Duration::from_secs(60)).await,
            Due::NewTask
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_new_task_wakes_the_poller_from_its_interval() {
        let waits = std::sync::Arc::new(TaskWaits::default());
        let poller = {
            let waits = waits.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                (
                    poll_due(&waits, Duration::from_secs(60)).await,
                    started.elapsed(),
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        add_unpolled(&waits, "task-2");
        let (due, waited) = poller.await.expect("poller");
        assert_eq!(due, Due::NewTask);
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[tokio::test]
    async fn without_new_tasks_the_poller_waits_its_interval() {
        let waits = TaskWaits::default();
        let started = Instant::now();
        assert_eq!(
            poll_due(&waits, Duration::from_millis(30)).await,
            Due::Interval
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_task_stalls_only_when_nothing_changed_for_the_whole_limit() {
        let start = Instant::now();
        let seen = Seen {
            state: Some(TaskInfoStateEnum::Running),
            progress: Some(40),
            since: start,
        };
        let limit = Duration::from_secs(600);
        assert_eq!(seen.stalled(start + Duration::from_secs(599), limit), None);
        assert_eq!(
            seen.stalled(start + limit, limit),
            Some(Duration::from_secs(600))
        );
        assert_eq!(seen.describe(), "running at 40 %");
        let queued = Seen {
            state: Some(TaskInfoStateEnum::Queued),
            progress: None,
            since: start,
        };
        assert_eq!(queued.describe(), "queued");
        let err = Error::TaskStalled {
            operation: "cloning `cp-1`".into(),
            host: "vc:443".into(),
            task: "task-7".into(),
            waited: limit,
            state: seen.describe(),
        };
        assert_eq!(
            err.to_string(),
            "cloning `cp-1`: vCenter `vc:443` reported no progress of task `task-7` for 600 s (it is running at 40 %)"
        );
    }
}
