//! Splitting a multi-document YAML stream into Kubernetes objects and checking each one before
//! anything is sent: it must be a mapping with `apiVersion`, `kind` and `metadata.name`, and
//! its name and namespace must be usable in a URL path. `kind: List` documents are expanded
//! into their items, as kubectl does. Pure: no I/O.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::api::ObjectRef;
use crate::error::{Error, Result};

/// One object of the stream, checked.
#[derive(Debug, Clone)]
pub(crate) struct ManifestObject {
    /// 1-based number of the document in the stream.
    pub(crate) document: usize,
    /// 1-based position within a `List` document.
    pub(crate) item: Option<usize>,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
    /// The object as JSON, sent as the apply body.
    pub(crate) body: Value,
}

/// What a CustomResourceDefinition in the stream will make the API server serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefinedKind {
    pub(crate) group: String,
    pub(crate) versions: Vec<String>,
    pub(crate) kind: String,
}

impl ManifestObject {
    /// `document 3`, or `document 3, item 2` inside a `List`.
    pub(crate) fn location(&self) -> String {
        location(self.document, self.item)
    }

    /// The object's identity once its namespace is settled.
    pub(crate) fn object_ref(&self, namespace: Option<String>) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace,
            name: self.name.clone(),
        }
    }

    /// The object's identity as written in the manifest.
    pub(crate) fn written_ref(&self) -> ObjectRef {
        self.object_ref(self.namespace.clone())
    }

    /// An [`Error::InvalidManifest`] about this object.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidManifest {
            document: self.document,
            location: self.location(),
            reason: format!("{}: {}", self.written_ref(), reason.into()),
        }
    }

    /// The kind this object defines, if it is a CustomResourceDefinition.
    pub(crate) fn defined_kind(&self) -> Option<DefinedKind> {
        if self.api_version != "apiextensions.k8s.io/v1" || self.kind != "CustomResourceDefinition"
        {
            return None;
        }
        let spec = self.body.get("spec")?;
        let versions = spec
            .get("versions")?
            .as_array()?
            .iter()
            .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(|v| v.get("name")?.as_str().map(str::to_string))
            .collect();
        Some(DefinedKind {
            group: spec.get("group")?.as_str()?.to_string(),
            versions,
            kind: spec.get("names")?.get("kind")?.as_str()?.to_string(),
        })
    }

    /// For a Secret: its values, encoded and decoded, so that they can be scrubbed from any
    /// message the server echoes back.
    pub(crate) fn secret_values(&self) -> Vec<String> {
        if self.api_version != "v1" || self.kind != "Secret" {
            return Vec::new();
        }
        let strings = |field: &str| -> Vec<String> {
            self.body
                .get(field)
                .and_then(Value::as_object)
                .map(|map| {
                    map.values()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut values = strings("stringData");
        for encoded in strings("data") {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&encoded) {
                values.push(String::from_utf8_lossy(&decoded).into_owned());
            }
            values.push(encoded);
        }
        values
    }
}

fn location(document: usize, item: Option<usize>) -> String {
    match item {
        Some(item) => format!("document {document}, item {item}"),
        None => format!("document {document}"),
    }
}

fn invalid_at(document: usize, item: Option<usize>, reason: impl Into<String>) -> Error {
    Error::InvalidManifest {
        document,
        location: location(document, item),
        reason: reason.into(),
    }
}

/// Parse every document of `stream`; empty documents are skipped but counted, so document
/// numbers match what the author sees when counting `---` separators.
pub(crate) fn parse_stream(stream: &str) -> Result<Vec<ManifestObject>> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(stream).enumerate() {
        let number = index + 1;
        let yaml = serde_yaml::Value::deserialize(document)
            .map_err(|e| invalid_at(number, None, format!("not valid YAML: {e}")))?;
        if yaml.is_null() {
            continue;
        }
        let json = serde_json::to_value(&yaml)
            .map_err(|e| invalid_at(number, None, format!("not representable as JSON: {e}")))?;
        if is_list(&json) {
            let items = json
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid_at(number, None, "a List needs an `items` array"))?;
            for (position, item) in items.iter().enumerate() {
                objects.push(check_object(number, Some(position + 1), item.clone())?);
            }
        } else {
            objects.push(check_object(number, None, json)?);
        }
    }
    Ok(objects)
}

fn is_list(json: &Value) -> bool {
    json.get("kind").and_then(Value::as_str) == Some("List")
        && json.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

fn check_object(document: usize, item: Option<usize>, body: Value) -> Result<ManifestObject> {
    let fail = |reason: String| invalid_at(document, item, reason);
    if !body.is_object() {
        return Err(fail(
            "not a mapping (a Kubernetes object is a YAML mapping)".into(),
        ));
    }
    let text = |value: Option<&Value>, field: &str| -> Result<String> {
        match value {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => Err(fail(format!("`{field}` is missing"))),
            Some(_) => Err(fail(format!("`{field}` must be a string"))),
        }
    };
    let api_version = text(body.get("apiVersion"), "apiVersion")?;
    let kind = text(body.get("kind"), "kind")?;
    let metadata = body.get("metadata");
    let name = text(metadata.and_then(|m| m.get("name")), "metadata.name").map_err(|_| {
        fail(format!(
            "{kind} ({api_version}) has no `metadata.name`; server-side apply needs one \
             (generateName cannot be applied)"
        ))
    })?;
    let namespace = match metadata.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => None,
        Some(value) => Some(text(Some(value), "metadata.namespace")?),
    };
    for (field, value) in [
        ("metadata.name", Some(&name)),
        ("metadata.namespace", namespace.as_ref()),
    ] {
        if let Some(value) = value {
            check_path_segment(value)
                .map_err(|why| fail(format!("{kind} `{field}` `{value}` {why}")))?;
        }
    }
    Ok(ManifestObject {
        document,
        item,
        api_version,
        kind,
        namespace,
        name,
        body,
    })
}

/// Names go into the request path verbatim, so anything that would change the path is refused
/// here rather than sent somewhere unexpected.
fn check_path_segment(value: &str) -> std::result::Result<(), &'static str> {
    if value == "." || value == ".." {
        return Err("is not a valid name");
    }
    if value
        .chars()
        .any(|c| matches!(c, '/' | '%' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err("contains a character not allowed in Kubernetes names");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_numbered_by_position_and_empty_ones_skipped() {
        let stream = "\
apiVersion: v1
kind: Namespace
metadata:
  name: cilium
---
# only a comment
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cilium
  namespace: kube-system
";
        let objects = parse_stream(stream).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(
            (objects[0].document, objects[0].kind.as_str()),
            (1, "Namespace")
        );
        assert_eq!(objects[0].namespace, None);
        assert_eq!(
            (objects[1].document, objects[1].kind.as_str()),
            (3, "ServiceAccount")
        );
        assert_eq!(objects[1].namespace.as_deref(), Some("kube-system"));
        assert_eq!(objects[1].body["metadata"]["name"], "cilium");
    }

    #[test]
    fn lists_are_expanded_with_item_positions() {
        let stream = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: x}}
- {apiVersion: v1, kind: ConfigMap, metadata: {namespace: x}}
"#;
        let err = parse_stream(stream).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidManifest { document: 1, .. }));
        assert!(text.contains("document 1, item 2"), "{text}");
        assert!(
            text.contains("ConfigMap (v1) has no `metadata.name`"),
            "{text}"
        );
    }

    #[test]
    fn missing_fields_and_broken_yaml_name_the_document() {
        let cases = [
            (
                "kind: Pod\nmetadata: {name: a}\n",
                "`apiVersion` is missing",
            ),
            ("apiVersion: v1\nmetadata: {name: a}\n", "`kind` is missing"),
            (
                "apiVersion: v1\nkind: 5\nmetadata: {name: a}\n",
                "`kind` must be a string",
            ),
            ("- just\n- a list\n", "not a mapping"),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: [}\n",
                "not valid YAML",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: ../../secrets/x}\n",
                "not allowed in Kubernetes names",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: ..}\n",
                "is not a valid name",
            ),
        ];
        for (yaml, expected) in cases {
            let stream =
                format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: ok}}\n---\n{yaml}");
            let err = parse_stream(&stream).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, Error::InvalidManifest { document: 2, .. }),
                "{yaml}: {text}"
            );
            assert!(text.contains("document 2"), "{text}");
            assert!(
                text.contains(expected),
                "{yaml}: expected `{expected}` in `{text}`"
            );
        }
    }

    #[test]
    fn crds_report_the_kind_and_served_versions_they_define() {
        let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.vkube.io}
spec:
  group: example.vkube.io
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true}
  - {name: v1alpha1, served: false, storage: false}
"#;
        let objects = parse_stream(crd).unwrap();
        assert_eq!(
            objects[0].defined_kind(),
            Some(DefinedKind {
                group: "example.vkube.io".into(),
                versions: vec!["v1".into()],
                kind: "Widget".into(),
            })
        );
    }

    #[test]
    fn secret_values_include_encoded_and_decoded_data() {
        let secret = r#"
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: kube-system}
data: {password: aHVudGVyMg==}
stringData: {user: "vkube@vsphere.local"}
"#;
        let objects = parse_stream(secret).unwrap();
        let mut values = objects[0].secret_values();
        values.sort();
        assert_eq!(values, ["aHVudGVyMg==", "hunter2", "vkube@vsphere.local"]);
    }
}
