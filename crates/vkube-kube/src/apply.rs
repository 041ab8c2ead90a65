//! Server-side apply of manifest streams: resolve each object's resource through discovery
//! (refreshing once for an unknown kind, and waiting for CRDs the same stream defined), settle
//! its namespace, and `PATCH` it with `application/apply-patch+yaml`, `fieldManager` and
//! `force=true`.

use std::collections::HashSet;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::api::{AppliedObject, ApplyOutcome};
use crate::client::{decode, KubeClient};
use crate::discovery::{self, GroupVersionResources, ServedResource};
use crate::error::{Error, Redactor, Result};
use crate::manifest::{self, DefinedKind, ManifestObject};

/// Namespace of namespaced objects that name none (kubectl's default context namespace).
const DEFAULT_NAMESPACE: &str = "default";

/// How often discovery is asked again while a CRD of the stream is being established.
const CRD_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Longest field manager the API server accepts.
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// One object to apply, addressed.
pub(crate) struct ApplyTarget<'a> {
    pub(crate) api_version: &'a str,
    pub(crate) resource: &'a ServedResource,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) body: &'a Value,
}

impl KubeClient {
    pub(crate) async fn apply_stream(
        &self,
        stream: &str,
        field_manager: &str,
    ) -> Result<Vec<AppliedObject>> {
        check_field_manager(field_manager)?;
        let objects = manifest::parse_stream(stream)?;
        let mut refreshed = HashSet::new();
        let mut defined: Vec<DefinedKind> = Vec::new();
        let mut applied = Vec::with_capacity(objects.len());
        for object in &objects {
            let resource = self.resolve(object, &defined, &mut refreshed).await?;
            applied.push(self.apply_object(object, &resource, field_manager).await?);
            if let Some(kind) = object.defined_kind() {
                // Its group versions change now: the next lookup may ask discovery again.
                for version in &kind.versions {
                    refreshed.remove(&format!("{}/{version}", kind.group));
                }
                defined.push(kind);
            }
        }
        Ok(applied)
    }

    async fn apply_object(
        &self,
        object: &ManifestObject,
        resource: &ServedResource,
        field_manager: &str,
    ) -> Result<AppliedObject> {
        let namespace = match (&object.namespace, resource.namespaced) {
            (Some(ns), true) => Some(ns.clone()),
            (None, true) => Some(DEFAULT_NAMESPACE.to_string()),
            (None, false) => None,
            (Some(ns), false) => {
                return Err(object.invalid(format!(
                    "{} is cluster-scoped but the manifest sets metadata.namespace `{ns}`",
                    object.kind
                )))
            }
        };
        let mut body = object.body.clone();
        if let Some(ns) = &namespace {
            body["metadata"]["namespace"] = Value::String(ns.clone());
        }
        let object_ref = object.object_ref(namespace.clone());
        let what = format!("apply of {object_ref} ({})", object.location());
        let redactor = Redactor::new(object.secret_values());
        let target = ApplyTarget {
            api_version: &object.api_version,
            resource,
            namespace: namespace.as_deref(),
            name: &object.name,
            body: &body,
        };
        let (outcome, resource_version) = self
            .server_side_apply(&target, field_manager, &what, &redactor)
            .await?;
        tracing::debug!(object = %object_ref, ?outcome, "applied");
        Ok(AppliedObject {
            object: object_ref,
            outcome,
            resource_version,
        })
    }

    /// `PATCH` one object with server-side apply, forcing ownership of its fields.
    pub(crate) async fn server_side_apply(
        &self,
        target: &ApplyTarget<'_>,
        field_manager: &str,
        what: &str,
        redactor: &Redactor,
    ) -> Result<(ApplyOutcome, Option<String>)> {
        let collection =
            discovery::collection_path(target.api_version, target.resource, target.namespace);
        let params = PatchParams::apply(field_manager).force();
        let request = kube::core::Request::new(collection)
            .patch(target.name, &params, &Patch::Apply(target.body))
            .map_err(|e| Error::InvalidInput(format!("{what}: {e}")))?;
        let answer = self.call(what, request, redactor).await?;
        let returned: Value = decode(what, &answer.body)?;
        let outcome = if answer.status == 201 {
            ApplyOutcome::Created
        } else {
            ApplyOutcome::Configured
        };
        let resource_version = returned["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        Ok((outcome, resource_version))
    }

    /// The resource serving `object`'s kind: from the cache, else by asking discovery again
    /// (once per group version and stream), else — if a CRD earlier in the stream defines the
    /// kind — by waiting for the API server to serve it.
    async fn resolve(
        &self,
        object: &ManifestObject,
        defined: &[DefinedKind],
        refreshed: &mut HashSet<String>,
    ) -> Result<ServedResource> {
        let api_version = object.api_version.as_str();
        if let Some(found) = self
            .discovery
            .get(api_version)
            .and_then(|c| c.find(&object.kind).cloned())
        {
            return Ok(found);
        }
        if refreshed.insert(api_version.to_string()) {
            if let Some(found) = self.discover(api_version).await?.find(&object.kind) {
                return Ok(found.clone());
            }
        }
        if defined
            .iter()
            .any(|d| defines(d, api_version, &object.kind))
        {
            let deadline = tokio::time::Instant::now() + self.crd_establish_wait;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(CRD_POLL_INTERVAL).await;
                if let Some(found) = self.discover(api_version).await?.find(&object.kind) {
                    return Ok(found.clone());
                }
            }
        }
        Err(Error::UnknownKind {
            document: object.document,
            location: object.location(),
            object: object.written_ref().to_string(),
            api_version: api_version.to_string(),
            kind: object.kind.clone(),
        })
    }

    /// Ask the API server which resources `api_version` serves, and cache the answer.
    async fn discover(&self, api_version: &str) -> Result<std::sync::Arc<GroupVersionResources>> {
        let path = discovery::discovery_path(api_version);
        let what = format!("API discovery of {api_version} (GET {path})");
        let request = http::Request::get(path.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::InvalidInput(format!("{what}: {e}")))?;
        let resources = match self.call(&what, request, &Redactor::default()).await {
            Ok(answer) => GroupVersionResources::Served(
                discovery::parse_resource_list(&answer.body).map_err(|e| Error::Decode {
                    what: what.clone(),
                    reason: e.to_string(),
                })?,
            ),
            Err(Error::NotFound { .. }) => GroupVersionResources::NotServed,
            Err(other) => return Err(other),
        };
        Ok(self.discovery.put(api_version, resources))
    }
}

fn defines(defined: &DefinedKind, api_version: &str, kind: &str) -> bool {
    let Some((group, version)) = api_version.split_once('/') else {
        return false;
    };
    defined.group == group && defined.kind == kind && defined.versions.iter().any(|v| v == version)
}

fn check_field_manager(field_manager: &str) -> Result<()> {
    if field_manager.trim().is_empty() || field_manager.len() > MAX_FIELD_MANAGER_LEN {
        return Err(Error::InvalidInput(format!(
            "the field manager must be 1 to {MAX_FIELD_MANAGER_LEN} characters, got {:?}",
            field_manager
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_kinds_match_on_group_served_version_and_kind() {
        let widget = DefinedKind {
            group: "example.vkube.io".into(),
            versions: vec!["v1".into()],
            kind: "Widget".into(),
        };
        assert!(defines(&widget, "example.vkube.io/v1", "Widget"));
        assert!(!defines(&widget, "example.vkube.io/v2", "Widget"));
        assert!(!defines(&widget, "example.vkube.io/v1", "Gadget"));
        assert!(!defines(&widget, "v1", "Widget"));
    }

    #[test]
    fn field_managers_must_be_short_and_non_empty() {
        assert!(check_field_manager("vkube").is_ok());
        assert!(check_field_manager(" ").is_err());
        assert!(check_field_manager(&"x".repeat(129)).is_err());
    }
}
