//! [`TaggingClient`]: a vAPI REST session and the tagging calls over it.
//!
//! The session is separate from the SOAP one (vCenter issues REST session
//! ids through its own login), made with the same credentials and HTTP
//! client (TLS policy). An expired session (HTTP 401) is renewed once per
//! call, serialized so that concurrent callers log in only once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{AttachedObjects, Category, CategorySpec, DynamicId, Tag, TagSpec};
use super::request::{Call, Flavor};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::session::Session;

/// Header carrying the REST session id.
const SESSION_HEADER: &str = "vmware-api-session-id";

/// A logged-in tagging API client. Call [`TaggingClient::close`] when done.
pub struct TaggingClient {
    http: reqwest::Client,
    base: String,
    flavor: Flavor,
    username: String,
    password: Secret,
    host: String,
    /// Generation (bumped on each re-login) and session id.
    token: RwLock<(u64, Option<String>)>,
    relogin: tokio::sync::Mutex<()>,
    round_trips: AtomicU64,
    relogins: AtomicU64,
}

impl TaggingClient {
    /// Log in to the REST API of the vCenter `session` is connected to,
    /// with its credentials and TLS policy. Tries `/api` first and falls
    /// back to `/rest` when the server does not serve it.
    pub async fn login(session: &Session) -> Result<TaggingClient> {
        let options = session.options();
        TaggingClient::login_with(
            session.http().clone(),
            &options.endpoint,
            &options.username,
            &options.password,
        )
        .await
    }

    /// Log in with an explicit HTTP client and credentials.
    pub async fn login_with(
        http: reqwest::Client,
        endpoint: &Endpoint,
        username: &str,
        password: &Secret,
    ) -> Result<TaggingClient> {
        let mut client = TaggingClient {
            http,
            base: format!("https://{}", endpoint.address()),
            flavor: Flavor::Api,
            username: username.to_string(),
            password: password.clone(),
            host: endpoint.address(),
            token: RwLock::new((0, None)),
            relogin: tokio::sync::Mutex::new(()),
            round_trips: AtomicU64::new(0),
            relogins: AtomicU64::new(0),
        };
        let token = match client.create_session(Flavor::Api).await? {
            Some(token) => token,
            None => {
                client.flavor = Flavor::Rest;
                client
                    .create_session(Flavor::Rest)
                    .await?
                    .ok_or_else(|| Error::NotVcenter {
                        url: format!("{}/rest", client.base),
                        detail:
                            "it serves neither `/api/session` nor `/rest/com/vmware/cis/session`"
                                .into(),
                    })?
            }
        };
        tracing::debug!(flavor = ?client.flavor, "logged in to the REST API");
        *client.token.write().expect("token lock") = (0, Some(token));
        Ok(client)
    }

    /// Which form of the API the server speaks.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// HTTP requests made, logins included.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// How often the REST session expired and was re-established.
    pub fn relogins(&self) -> u64 {
        self.relogins.load(Ordering::Relaxed)
    }

    /// Log out. Idempotent; a failed logout is logged, not returned.
    pub async fn close(&self) {
        let token = self.token.write().expect("token lock").1.take();
        let Some(token) = token else { return };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{}", self.base, self.flavor.session_path());
        if let Err(e) = self
            .http
            .delete(url)
            .header(SESSION_HEADER, token)
            .send()
            .await
        {
            tracing::debug!("REST logout failed: {e}");
        }
    }

    /// `Ok(None)` when the server does not serve this flavor's session endpoint.
    async fn create_session(&self, flavor: Flavor) -> Result<Option<String>> {
        let operation = "logging in to the vCenter REST API";
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{}{}", self.base, flavor.session_path()))
            .basic_auth(&self.username, Some(self.password.expose()))
            // Ask for the id in the answer only, not as a cookie.
            .header("vmware-use-header-authn", "true")
            .send()
            .await
            .map_err(|e| transport(operation, e))?;
        let status = response.status().as_u16();
        match status {
            404 | 405 => Ok(None),
            401 | 403 => Err(Error::InvalidLogin {
                user: self.username.clone(),
                host: self.host.clone(),
            }),
            _ => {
                let text = response.text().await.map_err(|e| transport(operation, e))?;
                if !(200..300).contains(&status) {
                    return Err(rest_fault(operation, status, &text));
                }
                let body: Value = serde_json::from_str(&text).map_err(|_| Error::Protocol {
                    operation: operation.into(),
                    detail: "the session id is not JSON".into(),
                })?;
                match flavor.unwrap(body) {
                    Value::String(token) if !token.is_empty() => Ok(Some(token)),
                    _ => Err(Error::Protocol {
                        operation: operation.into(),
                        detail: "the answer has no session id".into(),
                    }),
                }
            }
        }
    }

    /// Log in again unless another task already did since `generation`.
    async fn renew(&self, generation: u64) -> Result<()> {
        let _serialized = self.relogin.lock().await;
        if self.token.read().expect("token lock").0 != generation {
            return Ok(());
        }
        tracing::info!("vCenter REST session expired; logging in again");
        let token = self
            .create_session(self.flavor)
            .await?
            .ok_or_else(|| Error::Protocol {
                operation: "logging in to the vCenter REST API again".into(),
                detail: "the session endpoint disappeared".into(),
            })?;
        *self.token.write().expect("token lock") = (generation + 1, Some(token));
        self.relogins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn send_once(&self, call: &Call, token: Option<String>) -> Result<reqwest::Response> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .request(call.method.clone(), format!("{}{}", self.base, call.path));
        if let Some(token) = token {
            request = request.header(SESSION_HEADER, token);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| transport(&call.operation, e))
    }

    /// Send a call; renew the session once on 401. Answers the unwrapped body.
    pub async fn send(&self, call: &Call) -> Result<Value> {
        let (generation, token) = self.token.read().expect("token lock").clone();
        let mut response = self.send_once(call, token).await?;
        if response.status().as_u16() == 401 {
            self.renew(generation).await?;
            let token = self.token.read().expect("token lock").1.clone();
            response = self.send_once(call, token).await?;
        }
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| transport(&call.operation, e))?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            let body: Value = serde_json::from_str(&text).map_err(|e| Error::Protocol {
                operation: call.operation.clone(),
                detail: format!("the answer is not JSON: {e}"),
            })?;
            return Ok(self.flavor.unwrap(body));
        }
        if status == 403 {
            return Err(Error::PermissionDenied {
                object: call.object.clone(),
                privilege: call.privilege.to_string(),
            });
        }
        Err(rest_fault(&call.operation, status, &text))
    }

    async fn get<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let value = self.send(&call).await?;
        // `/rest` omits empty lists entirely (`{}` → null).
        let value = if value.is_null() {
            Value::Array(Vec::new())
        } else {
            value
        };
        serde_json::from_value(value).map_err(|e| Error::Protocol {
            operation: call.operation.clone(),
            detail: format!("unexpected answer shape: {e}"),
        })
    }

    /// Ids of every category.
    pub async fn category_ids(&self) -> Result<Vec<String>> {
        self.get(self.flavor.list_categories()).await
    }

    /// One category.
    pub async fn category(&self, id: &str) -> Result<Category> {
        let call = self.flavor.get_category(id);
        let value = self.send(&call).await?;
        serde_json::from_value(value).map_err(|e| Error::Protocol {
            operation: call.operation.clone(),
            detail: format!("unexpected answer shape: {e}"),
        })
    }

    /// Every category (one call per category: the API has no batch read).
    pub async fn categories(&self) -> Result<Vec<Category>> {
        let mut out = Vec::new();
        for id in self.category_ids().await? {
            out.push(self.category(&id).await?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Create a category; answers its id. Not idempotent: fails with
    /// `ALREADY_EXISTS` when the name is taken (see [`Error::is_already_exists`]).
    pub async fn create_category(&self, spec: &CategorySpec) -> Result<String> {
        self.get(self.flavor.create_category(spec)).await
    }

    /// Set a category's associable types; `types` must start with the
    /// current ones (vCenter only allows appending). Idempotent.
    pub async fn set_associable_types(
        &self,
        category_id: &str,
        category_name: &str,
        types: &[String],
    ) -> Result<()> {
        self.send(
            &self
                .flavor
                .set_associable_types(category_id, category_name, types),
        )
        .await
        .map(drop)
    }

    /// Ids of a category's tags.
    pub async fn tag_ids_for_category(&self, category_id: &str) -> Result<Vec<String>> {
        self.get(self.flavor.list_tags_for_category(category_id))
            .await
    }

    /// One tag.
    pub async fn tag(&self, id: &str) -> Result<Tag> {
        let call = self.flavor.get_tag(id);
        let value = self.send(&call).await?;
        serde_json::from_value(value).map_err(|e| Error::Protocol {
            operation: call.operation.clone(),
            detail: format!("unexpected answer shape: {e}"),
        })
    }

    /// Every tag of a category, sorted by name.
    pub async fn tags_for_category(&self, category_id: &str) -> Result<Vec<Tag>> {
        let mut out = Vec::new();
        for id in self.tag_ids_for_category(category_id).await? {
            out.push(self.tag(&id).await?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Create a tag; answers its id. Fails with `ALREADY_EXISTS` when the
    /// category already has a tag of that name.
    pub async fn create_tag(&self, spec: &TagSpec) -> Result<String> {
        self.get(self.flavor.create_tag(spec)).await
    }

    /// Attach a tag to an object. Idempotent. vCenter enforces the
    /// category's cardinality and associable types here; the simulator
    /// does not.
    pub async fn attach(&self, tag_id: &str, object: &DynamicId) -> Result<()> {
        self.send(&self.flavor.attach(tag_id, object))
            .await
            .map(drop)
    }

    /// Detach a tag from an object. Idempotent.
    pub async fn detach(&self, tag_id: &str, object: &DynamicId) -> Result<()> {
        self.send(&self.flavor.detach(tag_id, object))
            .await
            .map(drop)
    }

    /// Objects a tag is attached to.
    pub async fn attached_objects(&self, tag_id: &str) -> Result<Vec<DynamicId>> {
        let mut out: Vec<DynamicId> = self.get(self.flavor.list_attached_objects(tag_id)).await?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Objects each tag is attached to: one batch call, or one call per tag
    /// on servers without the batch action.
    pub async fn attached_objects_on_tags(
        &self,
        tag_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<DynamicId>>> {
        let mut out: BTreeMap<String, Vec<DynamicId>> =
            tag_ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        if tag_ids.is_empty() {
            return Ok(out);
        }
        match self
            .get::<Vec<AttachedObjects>>(self.flavor.list_attached_objects_on_tags(tag_ids))
            .await
        {
            Ok(batch) => {
                for entry in batch {
                    let mut objects = entry.object_ids.unwrap_or_default();
                    objects.sort();
                    objects.dedup();
                    out.insert(entry.tag_id, objects);
                }
            }
            Err(Error::RestFault {
                status: 400 | 404 | 405,
                ..
            }) => {
                for id in tag_ids {
                    out.insert(id.clone(), self.attached_objects(id).await?);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// Ids of the tags attached to an object.
    pub async fn attached_tags(&self, object: &DynamicId) -> Result<Vec<String>> {
        let mut out: Vec<String> = self.get(self.flavor.list_attached_tags(object)).await?;
        out.sort();
        Ok(out)
    }
}

fn transport(operation: &str, err: reqwest::Error) -> Error {
    Error::Transport {
        operation: operation.into(),
        detail: crate::error::describe_reqwest(&std::sync::Arc::new(err)),
    }
}

/// A vAPI error answer: `/api` sends `{"error_type": "ALREADY_EXISTS",
/// "messages": [...]}`, `/rest` sends `{"type":
/// "com.vmware.vapi.std.errors.already_exists", "value": {"messages": [...]}}`.
fn rest_fault(operation: &str, status: u16, text: &str) -> Error {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let error_type = body
        .as_ref()
        .and_then(|b| b.get("error_type").or_else(|| b.get("type")))
        .and_then(Value::as_str)
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_ascii_uppercase());
    let message = match &body {
        Some(b) => b
            .get("messages")
            .or_else(|| b.get("value").and_then(|v| v.get("messages")))
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter().find_map(|m| {
                    m.get("default_message")
                        .and_then(Value::as_str)
                        .or_else(|| m.as_str())
                })
            })
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        None => text
            .lines()
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('<'))
            .map(|l| l.chars().take(200).collect()),
    };
    Error::RestFault {
        operation: operation.into(),
        status,
        error_type,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_of_both_forms_are_read() {
        let rest = rest_fault(
            "x",
            400,
            r#"{"type":"com.vmware.vapi.std.errors.already_exists","value":{"messages":[{"default_message":"exists"}]}}"#,
        );
        assert!(rest.is_already_exists());
        assert_eq!(
            rest.to_string(),
            "x: vCenter answered HTTP 400 `ALREADY_EXISTS`: exists"
        );
        let api = rest_fault("x", 400, r#"{"error_type":"ALREADY_EXISTS","messages":[]}"#);
        assert!(api.is_already_exists());
        let plain = rest_fault("x", 404, "404 page not found\n");
        assert_eq!(
            plain.to_string(),
            "x: vCenter answered HTTP 404: 404 page not found"
        );
    }
}
