//! `PATCH` other than server-side apply: JSON merge patch (RFC 7386) of a stored object, and
//! strategic merge patch where it means the same (maps only, no lists, no `$` directives).

use serde_json::{json, Value};

use super::{bad_request, object_not_found, Cluster, Location, Resource};
use crate::kube_api::reply::Reply;
use crate::kube_api::request::Recorded;

/// The merge patch content types the stand-in evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeKind {
    /// `application/merge-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl MergeKind {
    pub(crate) fn of(content_type: &str) -> Option<MergeKind> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(MergeKind::Json),
            "application/strategic-merge-patch+json" => Some(MergeKind::Strategic),
            _ => None,
        }
    }
}

impl Cluster {
    /// Merges the request's patch into the stored object: 200 with the result, 404 when it
    /// does not exist, 409 when the patch names another `resourceVersion`.
    pub(super) fn merge_patch(
        &mut self,
        request: &Recorded,
        location: &Location<'_>,
        resource: &Resource,
        name: &str,
    ) -> Reply {
        let kind = request
            .content_type
            .as_deref()
            .and_then(MergeKind::of)
            .expect("routed here for merge patches only");
        let patch = match serde_json::from_slice::<Value>(&request.body) {
            Ok(patch @ Value::Object(_)) => patch,
            _ => return bad_request("the patch body is not a JSON object"),
        };
        if kind == MergeKind::Strategic && !agrees_with_merge_patch(&patch) {
            return bad_request(
                "the stand-in evaluates strategic merge patches only where they equal a JSON \
                 merge patch (no lists, no $ directives); answer this route from the test",
            );
        }
        let Some(stored) = self.objects.get(&request.path).cloned() else {
            return object_not_found(&location.group_version, &resource.plural, name);
        };
        let stored_version = &stored["metadata"]["resourceVersion"];
        let wanted_version = &patch["metadata"]["resourceVersion"];
        if !wanted_version.is_null() && wanted_version != stored_version {
            return Reply::failure(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been \
                     modified; please apply your changes to the latest version and try again",
                    qualified_plural(&location.group_version, &resource.plural)
                ),
                json!({"name": name, "kind": resource.plural}),
            );
        }
        let mut patched = stored.clone();
        merge(&mut patched, &patch);
        // Identity and bookkeeping are the server's, whatever the patch says.
        for key in ["name", "namespace", "uid", "creationTimestamp"] {
            match stored["metadata"].get(key) {
                Some(value) => patched["metadata"][key] = value.clone(),
                None => {
                    if let Some(metadata) = patched["metadata"].as_object_mut() {
                        metadata.remove(key);
                    }
                }
            }
        }
        self.resource_version += 1;
        patched["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.remember_side_effects(&patched);
        self.objects.insert(request.path.clone(), patched.clone());
        Reply::value(200, &patched)
    }
}

/// RFC 7386: maps merge key by key, `null` removes a key, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Whether a strategic merge patch means what the same JSON merge patch means: no lists
/// (merged by key in strategic patches) and no `$patch`/`$retainKeys`-style directives.
fn agrees_with_merge_patch(patch: &Value) -> bool {
    match patch {
        Value::Array(_) => false,
        Value::Object(map) => map
            .iter()
            .all(|(key, value)| !key.starts_with('$') && agrees_with_merge_patch(value)),
        _ => true,
    }
}

fn qualified_plural(group_version: &str, plural: &str) -> String {
    match group_version.split_once('/') {
        Some((group, _)) => format!("{plural}.{group}"),
        None => plural.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut node =
            json!({"spec": {"unschedulable": true, "podCIDR": "10.244.1.0/24"}, "x": [1]});
        merge(
            &mut node,
            &json!({"spec": {"unschedulable": null, "taints": [{"key": "a"}]}, "x": 2}),
        );
        assert_eq!(
            node,
            json!({"spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "a"}]}, "x": 2})
        );
        let mut scalar = json!(1);
        merge(&mut scalar, &json!({"a": {"b": null, "c": 1}}));
        assert_eq!(scalar, json!({"a": {"c": 1}}));
    }

    #[test]
    fn strategic_patches_with_lists_or_directives_are_not_merge_patches() {
        assert!(agrees_with_merge_patch(
            &json!({"spec": {"unschedulable": true}})
        ));
        assert!(!agrees_with_merge_patch(&json!({"spec": {"taints": []}})));
        assert!(!agrees_with_merge_patch(
            &json!({"metadata": {"$patch": "replace"}})
        ));
        assert_eq!(
            MergeKind::of("application/merge-patch+json; charset=utf-8"),
            Some(MergeKind::Json)
        );
        assert_eq!(MergeKind::of("application/json-patch+json"), None);
    }
}
