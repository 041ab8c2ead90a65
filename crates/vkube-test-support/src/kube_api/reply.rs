//! Answers, and the per-route answers a test sets in place of the stand-in's own.

use std::collections::VecDeque;
use std::fmt;

use serde_json::{json, Value};

use super::request::Recorded;

/// One answer: status, content type and body.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Reply {
    /// A JSON answer, e.g. a recorded body from [`super::fixtures`].
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            body: body.into().into_bytes(),
        }
    }

    /// A plain-text answer, as the health endpoints (`/readyz`, `/livez`, `/healthz`) send.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.into().into_bytes(),
        }
    }

    /// A JSON answer from a value.
    pub fn value(status: u16, body: &Value) -> Reply {
        Reply::json(status, body.to_string())
    }

    /// A `Status` failure in the API server's shape, e.g.
    /// `Reply::failure(429, "TooManyRequests", "Cannot evict pod as it would violate the
    /// pod's disruption budget.", json!({"causes": […]}))`.
    pub fn failure(code: u16, reason: &str, message: &str, details: Value) -> Reply {
        Reply::json(code, status_body(code, reason, message, details))
    }
}

/// A `Status` failure body as kube-apiserver writes it (`details` left out when null).
pub fn status_body(code: u16, reason: &str, message: &str, details: Value) -> String {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    });
    if status["details"].is_null() {
        status.as_object_mut().unwrap().remove("details");
    }
    status.to_string()
}

/// Decides the answer to one request; `None` lets the stand-in answer as it would.
pub(crate) type Handler = Box<dyn FnMut(&Recorded) -> Option<Reply> + Send>;

enum Answer {
    /// The same answer every time.
    Always(Reply),
    /// One answer per request, in order; the last repeats.
    Sequence(VecDeque<Reply>),
    /// The test's own code.
    Handler(Handler),
}

struct Override {
    method: String,
    path: String,
    answer: Answer,
}

/// The answers the test set, per route (method and exact path, without the query).
#[derive(Default)]
pub(crate) struct Overrides {
    routes: Vec<Override>,
}

impl Overrides {
    /// Answers `method path` with `answer` from now on, replacing any earlier override of
    /// the route.
    fn set(&mut self, method: &str, path: &str, answer: Answer) {
        self.clear(method, path);
        self.routes.push(Override {
            method: method.to_string(),
            path: path.to_string(),
            answer,
        });
    }

    pub(crate) fn always(&mut self, method: &str, path: &str, reply: Reply) {
        self.set(method, path, Answer::Always(reply));
    }

    pub(crate) fn sequence(&mut self, method: &str, path: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a sequence needs at least one reply");
        self.set(method, path, Answer::Sequence(replies.into()));
    }

    pub(crate) fn handler(&mut self, method: &str, path: &str, handler: Handler) {
        self.set(method, path, Answer::Handler(handler));
    }

    pub(crate) fn clear(&mut self, method: &str, path: &str) {
        self.routes
            .retain(|o| !(o.method == method && o.path == path));
    }

    /// The test's answer to `request`, if it set one.
    pub(crate) fn answer(&mut self, request: &Recorded) -> Option<Reply> {
        let found = self
            .routes
            .iter_mut()
            .find(|o| o.method == request.method && o.path == request.path)?;
        match &mut found.answer {
            Answer::Always(reply) => Some(reply.clone()),
            Answer::Sequence(replies) if replies.len() > 1 => replies.pop_front(),
            Answer::Sequence(replies) => replies.front().cloned(),
            Answer::Handler(handler) => handler(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> Recorded {
        Recorded {
            method: method.into(),
            path: path.into(),
            query: None,
            content_type: None,
            body: Vec::new(),
            client: None,
            status: 0,
        }
    }

    #[test]
    fn sequences_repeat_their_last_reply_and_later_overrides_replace_earlier_ones() {
        let mut overrides = Overrides::default();
        let path = "/api/v1/namespaces/default/pods/web-0/eviction";
        let blocked = Reply::failure(429, "TooManyRequests", "blocked", Value::Null);
        let evicted = Reply::json(201, "{}");
        overrides.sequence(
            "POST",
            path,
            vec![blocked.clone(), blocked.clone(), evicted.clone()],
        );
        let eviction = request("POST", path);
        let statuses: Vec<u16> = (0..5)
            .map(|_| overrides.answer(&eviction).unwrap().status)
            .collect();
        assert_eq!(statuses, [429, 429, 201, 201, 201]);
        assert_eq!(overrides.answer(&request("GET", path)), None);

        overrides.always("POST", path, blocked.clone());
        assert_eq!(overrides.answer(&eviction), Some(blocked));
        overrides.clear("POST", path);
        assert_eq!(overrides.answer(&eviction), None);
    }

    #[test]
    fn handlers_see_the_request_and_may_defer_to_the_stand_in() {
        let mut overrides = Overrides::default();
        overrides.handler(
            "GET",
            "/api/v1/nodes",
            Box::new(|r| (r.query.as_deref() == Some("watch=true")).then(|| Reply::json(200, ""))),
        );
        let mut watch = request("GET", "/api/v1/nodes");
        assert_eq!(overrides.answer(&watch), None);
        watch.query = Some("watch=true".into());
        assert_eq!(overrides.answer(&watch).unwrap().status, 200);
    }

    #[test]
    fn status_bodies_have_the_api_servers_shape() {
        let body: Value = serde_json::from_str(&status_body(
            404,
            "NotFound",
            "nodes \"w-1\" not found",
            json!({"name": "w-1", "kind": "nodes"}),
        ))
        .unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["code"], 404);
        assert_eq!(body["details"]["kind"], "nodes");
        let bare: Value = serde_json::from_str(&status_body(
            401,
            "Unauthorized",
            "Unauthorized",
            Value::Null,
        ))
        .unwrap();
        assert!(bare.get("details").is_none());
    }
}
