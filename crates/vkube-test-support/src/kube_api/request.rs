//! What the stand-in records: every request, every client certificate, and the objects
//! applied through it.

use serde_json::Value;

/// One request as the stand-in received it, with the status it was answered with.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as sent.
    pub body: Vec<u8>,
    /// The certificate the client authenticated with on this connection.
    pub client: Option<ClientCertificate>,
    /// The HTTP status of the answer; 0 while the request is being routed (only
    /// [`super::StandIn::respond_with`] handlers see that).
    pub status: u16,
}

impl Recorded {
    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The first value of query parameter `key`.
    pub fn query_value(&self, key: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The body as JSON; panics (failing the test) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Whether this is a server-side apply (`PATCH` with the apply patch type).
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH" && self.content_type.as_deref() == Some(APPLY_PATCH)
    }
}

/// The content type of a server-side apply.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// A client certificate presented to the stand-in, with the identity kube-apiserver would
/// derive from it: the common name is the user, each organisation a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The subject's common name (the user name).
    pub common_name: Option<String>,
    /// The subject's organisations (the groups), in order.
    pub organizations: Vec<String>,
}

/// One object applied through the stand-in and accepted (answered 200 or 201).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedObject {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// The namespace on the request path; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// The field manager the client named.
    pub field_manager: String,
    /// The object as the client sent it.
    pub body: Value,
}

/// Decodes `%XX` escapes and `+` (query strings are form-encoded); malformed escapes stay as
/// they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_form_decoded() {
        let request = Recorded {
            method: "GET".into(),
            path: "/api/v1/pods".into(),
            query: Some("fieldSelector=spec.nodeName%3Dw-1&labelSelector=a+b&bad=%zz%4".into()),
            content_type: None,
            body: Vec::new(),
            client: None,
            status: 200,
        };
        assert_eq!(
            request.query_pairs(),
            [
                ("fieldSelector".to_string(), "spec.nodeName=w-1".to_string()),
                ("labelSelector".to_string(), "a b".to_string()),
                ("bad".to_string(), "%zz%4".to_string()),
            ]
        );
        assert_eq!(request.query_value("labelSelector").as_deref(), Some("a b"));
        assert_eq!(request.query_value("watch"), None);
    }
}
