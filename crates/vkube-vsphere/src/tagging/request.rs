//! Every tagging call as a plain value ([`Call`]), in the `/api` or the
//! `/rest` form. Nothing here sends anything, so the shapes of both forms
//! are unit-tested without a server that speaks them.
//!
//! The two forms differ in more than the prefix: `/rest` names ids as
//! `id:<id>`, spells actions `~action=`, wraps create/update bodies in
//! `create_spec`/`update_spec` and answers inside `{"value": …}`; `/api`
//! does none of that.

use reqwest::Method;
use serde_json::{json, Value};

use super::model::{CategorySpec, DynamicId, TagSpec};

/// Which form of the API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// vSphere 7.0U2+ `/api/cis/...`.
    Api,
    /// vSphere 6.5+ `/rest/com/vmware/cis/...` (deprecated, but what the simulator serves).
    Rest,
}

/// One HTTP call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// JSON body.
    pub body: Option<Value>,
    /// What vkube is doing, for errors, e.g. "creating tag category `k8s-zone`".
    pub operation: String,
    /// The object concerned, for permission errors.
    pub object: String,
    /// The privilege the call needs, for permission errors.
    pub privilege: &'static str,
}

const READ: &str = "System.Read";

/// Percent-encode an id for a path segment (ids are URNs with `:`).
fn segment(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Flavor {
    fn base(self, what: &str) -> String {
        match self {
            Flavor::Api => format!("/api/cis/tagging/{what}"),
            Flavor::Rest => format!("/rest/com/vmware/cis/tagging/{what}"),
        }
    }

    fn item(self, what: &str, id: &str) -> String {
        match self {
            Flavor::Api => format!("{}/{}", self.base(what), segment(id)),
            Flavor::Rest => format!("{}/id:{}", self.base(what), segment(id)),
        }
    }

    fn action(self, path: String, action: &str) -> String {
        match self {
            Flavor::Api => format!("{path}?action={action}"),
            Flavor::Rest => format!("{path}?~action={action}"),
        }
    }

    fn spec(self, key: &str, spec: Value) -> Value {
        match self {
            Flavor::Api => spec,
            Flavor::Rest => json!({ key: spec }),
        }
    }

    /// The session endpoint (POST to log in, DELETE to log out).
    pub fn session_path(self) -> &'static str {
        match self {
            Flavor::Api => "/api/session",
            Flavor::Rest => "/rest/com/vmware/cis/session",
        }
    }

    /// Unwrap an answer body: `/rest` puts it under `value`.
    pub fn unwrap(self, body: Value) -> Value {
        match (self, body) {
            (Flavor::Rest, Value::Object(mut map)) => map.remove("value").unwrap_or(Value::Null),
            (Flavor::Rest, _) => Value::Null,
            (Flavor::Api, body) => body,
        }
    }

    /// List category ids.
    pub fn list_categories(self) -> Call {
        call(
            Method::GET,
            self.base("category"),
            None,
            "listing tag categories".into(),
            "tag categories".into(),
            READ,
        )
    }

    /// Get a category.
    pub fn get_category(self, id: &str) -> Call {
        call(
            Method::GET,
            self.item("category", id),
            None,
            format!("reading tag category `{id}`"),
            format!("tag category `{id}`"),
            READ,
        )
    }

    /// Create a category; answers its id.
    pub fn create_category(self, spec: &CategorySpec) -> Call {
        let body = self.spec(
            "create_spec",
            serde_json::to_value(spec).expect("serializable"),
        );
        call(
            Method::POST,
            self.base("category"),
            Some(body),
            format!("creating tag category `{}`", spec.name),
            format!("tag category `{}`", spec.name),
            "InventoryService.Tagging.CreateCategory",
        )
    }

    /// Replace a category's associable types (vCenter only accepts appending).
    pub fn set_associable_types(self, id: &str, name: &str, types: &[String]) -> Call {
        let body = self.spec("update_spec", json!({ "associable_types": types }));
        call(
            Method::PATCH,
            self.item("category", id),
            Some(body),
            format!("updating the associable types of tag category `{name}`"),
            format!("tag category `{name}`"),
            "InventoryService.Tagging.EditCategory",
        )
    }

    /// List the ids of a category's tags.
    pub fn list_tags_for_category(self, category_id: &str) -> Call {
        let (path, body) = match self {
            Flavor::Api => (
                self.action(self.base("tag"), "list-tags-for-category"),
                Some(json!({ "category_id": category_id })),
            ),
            Flavor::Rest => (
                self.action(self.item("tag", category_id), "list-tags-for-category"),
                None,
            ),
        };
        call(
            Method::POST,
            path,
            body,
            format!("listing the tags of category `{category_id}`"),
            format!("tag category `{category_id}`"),
            READ,
        )
    }

    /// Get a tag.
    pub fn get_tag(self, id: &str) -> Call {
        call(
            Method::GET,
            self.item("tag", id),
            None,
            format!("reading tag `{id}`"),
            format!("tag `{id}`"),
            READ,
        )
    }

    /// Create a tag; answers its id.
    pub fn create_tag(self, spec: &TagSpec) -> Call {
        let body = self.spec(
            "create_spec",
            serde_json::to_value(spec).expect("serializable"),
        );
        call(
            Method::POST,
            self.base("tag"),
            Some(body),
            format!("creating tag `{}`", spec.name),
            format!("tag `{}`", spec.name),
            "InventoryService.Tagging.CreateTag",
        )
    }

    /// Attach a tag to an object.
    pub fn attach(self, tag_id: &str, object: &DynamicId) -> Call {
        call(
            Method::POST,
            self.action(self.item("tag-association", tag_id), "attach"),
            Some(json!({ "object_id": object })),
            format!(
                "attaching tag `{tag_id}` to {} `{}`",
                object.type_name, object.id
            ),
            format!("{} `{}`", object.type_name, object.id),
            "InventoryService.Tagging.AttachTag",
        )
    }

    /// Detach a tag from an object.
    pub fn detach(self, tag_id: &str, object: &DynamicId) -> Call {
        call(
            Method::POST,
            self.action(self.item("tag-association", tag_id), "detach"),
            Some(json!({ "object_id": object })),
            format!(
                "detaching tag `{tag_id}` from {} `{}`",
                object.type_name, object.id
            ),
            format!("{} `{}`", object.type_name, object.id),
            "InventoryService.Tagging.AttachTag",
        )
    }

    /// Objects one tag is attached to.
    pub fn list_attached_objects(self, tag_id: &str) -> Call {
        call(
            Method::POST,
            self.action(
                self.item("tag-association", tag_id),
                "list-attached-objects",
            ),
            // The simulator (like govmomi's client) expects a JSON body here.
            match self {
                Flavor::Rest => Some(json!({})),
                Flavor::Api => None,
            },
            format!("listing the objects tag `{tag_id}` is attached to"),
            format!("tag `{tag_id}`"),
            READ,
        )
    }

    /// Objects each of several tags is attached to, in one call.
    pub fn list_attached_objects_on_tags(self, tag_ids: &[String]) -> Call {
        call(
            Method::POST,
            self.action(
                self.base("tag-association"),
                "list-attached-objects-on-tags",
            ),
            Some(json!({ "tag_ids": tag_ids })),
            "listing the objects of tags".into(),
            "tags".into(),
            READ,
        )
    }

    /// Tag ids attached to an object.
    pub fn list_attached_tags(self, object: &DynamicId) -> Call {
        call(
            Method::POST,
            self.action(self.base("tag-association"), "list-attached-tags"),
            Some(json!({ "object_id": object })),
            format!("listing the tags of {} `{}`", object.type_name, object.id),
            format!("{} `{}`", object.type_name, object.id),
            READ,
        )
    }
}

fn call(
    method: Method,
    path: String,
    body: Option<Value>,
    operation: String,
    object: String,
    privilege: &'static str,
) -> Call {
    Call {
        method,
        path,
        body,
        operation,
        object,
        privilege,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> DynamicId {
        DynamicId {
            type_name: "Datastore".into(),
            id: "/tmp/x@group-s5".into(),
        }
    }

    #[test]
    fn rest_form_matches_the_6_5_api() {
        let f = Flavor::Rest;
        assert_eq!(
            f.list_categories().path,
            "/rest/com/vmware/cis/tagging/category"
        );
        assert_eq!(
            f.get_category("urn:c:1").path,
            "/rest/com/vmware/cis/tagging/category/id:urn:c:1"
        );
        let spec = CategorySpec {
            name: "k8s-zone".into(),
            description: "d".into(),
            cardinality: "SINGLE".into(),
            associable_types: vec!["Datastore".into()],
        };
        let create = f.create_category(&spec);
        assert_eq!(create.body.unwrap()["create_spec"]["cardinality"], "SINGLE");
        assert_eq!(
            f.list_tags_for_category("urn:c:1").path,
            "/rest/com/vmware/cis/tagging/tag/id:urn:c:1?~action=list-tags-for-category"
        );
        let attach = f.attach("urn:t:1", &object());
        assert_eq!(
            attach.path,
            "/rest/com/vmware/cis/tagging/tag-association/id:urn:t:1?~action=attach"
        );
        assert_eq!(
            attach.body.unwrap(),
            json!({"object_id": {"type": "Datastore", "id": "/tmp/x@group-s5"}})
        );
        assert_eq!(attach.privilege, "InventoryService.Tagging.AttachTag");
        assert_eq!(
            f.list_attached_objects_on_tags(&["a".into()]).path,
            "/rest/com/vmware/cis/tagging/tag-association?~action=list-attached-objects-on-tags"
        );
        assert_eq!(
            f.set_associable_types("c", "k", &["Datastore".into()])
                .body
                .unwrap(),
            json!({"update_spec": {"associable_types": ["Datastore"]}})
        );
        assert_eq!(f.unwrap(json!({"value": ["a"]})), json!(["a"]));
    }

    #[test]
    fn api_form_matches_the_7_0_api() {
        let f = Flavor::Api;
        assert_eq!(f.session_path(), "/api/session");
        assert_eq!(f.get_tag("urn:t:1").path, "/api/cis/tagging/tag/urn:t:1");
        let call = f.list_tags_for_category("urn:c:1");
        assert_eq!(
            call.path,
            "/api/cis/tagging/tag?action=list-tags-for-category"
        );
        assert_eq!(call.body.unwrap(), json!({"category_id": "urn:c:1"}));
        let spec = TagSpec {
            name: "az1".into(),
            description: "d".into(),
            category_id: "urn:c:1".into(),
        };
        assert_eq!(f.create_tag(&spec).body.unwrap()["name"], "az1");
        assert_eq!(
            f.detach("urn:t:1", &object()).path,
            "/api/cis/tagging/tag-association/urn:t:1?action=detach"
        );
        assert_eq!(f.unwrap(json!(["a"])), json!(["a"]));
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
