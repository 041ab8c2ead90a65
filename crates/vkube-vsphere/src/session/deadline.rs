//! Every request to vCenter has a deadline, and a slow one says what it is
//! waiting for. A vCenter that stops answering (hung, overloaded, a network
//! that drops packets) then ends the call with [`Error::NoAnswer`] instead
//! of holding vkube silently for the HTTP client's timeout.
//!
//! `vim_rs` stubs only pass `vim_rs` errors through, so a missed deadline
//! travels as a `ParseError` with a fixed, private form ([`NoAnswer`]) that
//! [`Error::from_client`] turns back into [`Error::NoAnswer`].

use std::future::Future;
use std::time::Duration;

use vim_rs::core::client::Error as VimError;

use crate::error::Error;

use super::Timeouts;

/// What an unanswered request was, as it travels through `vim_rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoAnswer {
    /// host:port.
    pub host: String,
    /// e.g. "`CloneVM_Task` on `vm-42`".
    pub call: String,
    /// How long vkube waited.
    pub waited: Duration,
}

/// Starts the `ParseError` text of an encoded [`NoAnswer`]; never part of
/// an error `vim_rs` or a server produces.
const TAG: &str = "vkube-no-answer";
/// Separates its fields (ASCII unit separator: in no host name or call).
const SEP: char = '\u{1f}';

impl NoAnswer {
    pub(crate) fn encode(&self) -> VimError {
        VimError::ParseError(format!(
            "{TAG}{SEP}{}{SEP}{}{SEP}{}",
            self.waited.as_millis(),
            self.host,
            self.call
        ))
    }

    /// The [`NoAnswer`] a `vim_rs` error carries, if it is one.
    pub(crate) fn decode(err: &VimError) -> Option<NoAnswer> {
        let VimError::ParseError(text) = err else {
            return None;
        };
        let mut fields = text.split(SEP);
        if fields.next()? != TAG {
            return None;
        }
        let waited = Duration::from_millis(fields.next()?.parse().ok()?);
        let (host, call) = (fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        Some(NoAnswer {
            host: host.to_string(),
            call: call.to_string(),
            waited,
        })
    }

    /// The crate error for this, raised while doing `operation`.
    pub(crate) fn into_error(self, operation: &str) -> Error {
        Error::NoAnswer {
            operation: operation.into(),
            host: self.host,
            call: self.call,
            waited: self.waited,
        }
    }
}

/// `duration` as people read it: "250 ms", "2 s", "1.5 s" (tenths below
/// 10 s, and only when they are not zero), "30 s".
pub(crate) fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        return format!("{} ms", duration.as_millis());
    }
    let tenths = (duration.as_millis() + 50) / 100;
    if tenths.is_multiple_of(10) || duration >= Duration::from_secs(10) {
        format!("{} s", (tenths + 5) / 10)
    } else {
        format!("{}.{} s", tenths / 10, tenths % 10)
    }
}

/// The log target of "waiting for vCenter" notices about slow requests. A
/// healthy vCenter answers every request in well under the notice time, so
/// front ends show these at their default verbosity (the CLI does).
pub const WAITING_TARGET: &str = "vkube_vsphere::waiting";

/// Run one request to `host` within `timeouts.request`. When it runs past the
/// slow-notice time, log at info what it waits for (and again each time the
/// wait doubles); past the deadline, give up with a [`NoAnswer`].
pub(crate) async fn bounded<T>(
    timeouts: &Timeouts,
    host: &str,
    call: impl FnOnce() -> String,
    request: impl Future<Output = Result<T, VimError>>,
) -> Result<T, VimError> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeouts.request;
    let mut next_notice = started + timeouts.first_notice(timeouts.request);
    tokio::pin!(request);
    let mut call = Some(call);
    let mut described = String::new();
    loop {
        let wake = next_notice.min(deadline);
        tokio::select! {
            result = &mut request => return result,
            _ = tokio::time::sleep_until(wake) => {}
        }
        if described.is_empty() {
            described = call.take().map(|f| f()).unwrap_or_default();
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            // The error says it; the notices before it said what was awaited.
            tracing::debug!("giving up on {described} after {}", human(timeouts.request));
            return Err(NoAnswer {
                host: host.to_string(),
                call: described,
                waited: timeouts.request,
            }
            .encode());
        }
        tracing::info!(
            target: WAITING_TARGET,
            "waiting for vCenter `{host}`: {described} ({} so far)",
            human(now - started)
        );
        next_notice = started + (next_notice - started) * 2;
    }
}

/// The same deadline for a request made outside `vim_rs` stubs (login).
pub(crate) async fn bounded_login<T>(
    timeouts: &Timeouts,
    host: &str,
    request: impl Future<Output = crate::error::Result<T>>,
) -> crate::error::Result<T> {
    let wrapped = async { Ok::<_, VimError>(request.await) };
    match bounded(timeouts, host, || "the login".to_string(), wrapped).await {
        Ok(result) => result,
        Err(e) => Err(NoAnswer::decode(&e)
            .map(|n| n.into_error("logging in"))
            .unwrap_or_else(|| Error::from_client("logging in", e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_deadline_survives_the_trip_through_vim_rs() {
        let original = NoAnswer {
            host: "[fd00::1]:443".into(),
            call: "`CloneVM_Task` on `vm-42`".into(),
            waited: Duration::from_millis(2500),
        };
        let decoded = NoAnswer::decode(&original.encode()).expect("decodes");
        assert_eq!(decoded, original);
        let err = decoded.into_error("cloning `cp-1`");
        assert_eq!(
            err.to_string(),
            "cloning `cp-1`: vCenter `[fd00::1]:443` did not answer `CloneVM_Task` on `vm-42` within 2.5 s"
        );
        for other in [
            VimError::ParseError("Failed to parse RetrieveResult".into()),
            VimError::ParseError(format!("{TAG}{SEP}x{SEP}h{SEP}c")),
            VimError::ParseError(format!("{TAG}-like text{SEP}1{SEP}h{SEP}c")),
            VimError::MissingOrInvalidSessionKey,
        ] {
            assert_eq!(NoAnswer::decode(&other), None, "{other}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
        assert_eq!(human(Duration::from_secs(2)), "2 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(30_400)), "30 s");
        assert_eq!(human(Duration::from_millis(30_600)), "31 s");
        assert_eq!(human(Duration::from_millis(1_004)), "1 s");
        assert_eq!(human(Duration::from_millis(1_960)), "2 s");
        assert_eq!(human(Duration::from_millis(9_940)), "9.9 s");
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_given_up() {
        let timeouts = Timeouts {
            request: Duration::from_millis(200),
            ..Default::default()
        };
        let hung = std::future::pending::<Result<(), VimError>>();
        let err = bounded(&timeouts, "h:1", || "`CurrentTime`".into(), hung)
            .await
            .unwrap_err();
        let no_answer = NoAnswer::decode(&err).expect("a NoAnswer");
        assert_eq!(no_answer.waited, Duration::from_millis(200));
        assert_eq!(no_answer.call, "`CurrentTime`");
        let quick = async { Ok::<_, VimError>(7) };
        assert_eq!(
            bounded(&timeouts, "h:1", || unreachable!(), quick)
                .await
                .unwrap(),
            7
        );
    }
}
