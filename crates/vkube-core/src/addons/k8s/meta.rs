//! Labels, `metadata`, and the envelope every object shares (`apiVersion`,
//! `kind`, `metadata`, then the kind's own fields).

use std::collections::BTreeMap;

use serde::Serialize;

/// On every object vkube renders, so the objects it owns can be listed and
/// pruned.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vkube");
/// Names the component an object belongs to.
pub(crate) const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Names the add-on an object is part of (when it has several components).
pub(crate) const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// A set of labels (or a label selector's `matchLabels`), sorted by key as
/// the API server prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Just `key: value`.
    pub(crate) fn of(key: &str, value: &str) -> Labels {
        Labels::default().with(key, value)
    }

    /// Just `app.kubernetes.io/name: component`: what `component`'s pods
    /// are selected by.
    pub(crate) fn named(component: &str) -> Labels {
        Labels::of(NAME_LABEL, component)
    }

    /// `app.kubernetes.io/managed-by: vkube` only.
    pub(crate) fn managed() -> Labels {
        Labels::of(MANAGED_BY.0, MANAGED_BY.1)
    }

    /// Managed by vkube, of `component` (`app.kubernetes.io/name`).
    pub(crate) fn component(component: &str) -> Labels {
        Labels::managed().with(NAME_LABEL, component)
    }

    /// Managed by vkube, part of the add-on `addon`
    /// (`app.kubernetes.io/part-of`).
    pub(crate) fn part_of(addon: &str) -> Labels {
        Labels::managed().with(PART_OF_LABEL, addon)
    }

    /// With `key: value` added (replacing an earlier value of `key`).
    pub(crate) fn with(mut self, key: &str, value: &str) -> Labels {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    /// These labels and `other`'s (`other` wins on a clash).
    pub(crate) fn merged(&self, other: &Labels) -> Labels {
        let mut merged = self.clone();
        merged
            .0
            .extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `metadata` of an object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Meta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Labels::is_empty")]
    labels: Labels,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Meta {
    /// A cluster-scoped object `name` with `labels`.
    pub(crate) fn cluster(name: &str, labels: &Labels) -> Meta {
        Meta {
            name: name.to_owned(),
            namespace: None,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
        }
    }

    /// Object `name` in `namespace` with `labels`.
    pub(crate) fn namespaced(name: &str, namespace: &str, labels: &Labels) -> Meta {
        Meta {
            namespace: Some(namespace.to_owned()),
            ..Meta::cluster(name, labels)
        }
    }

    /// With one more label.
    pub(crate) fn label(mut self, key: &str, value: &str) -> Meta {
        self.labels = self.labels.with(key, value);
        self
    }

    /// With one more annotation.
    pub(crate) fn annotation(mut self, key: &str, value: &str) -> Meta {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Whether the object lives in a namespace.
    pub(super) fn is_namespaced(&self) -> bool {
        self.namespace.is_some()
    }
}

/// One object: `apiVersion`, `kind`, `metadata` and the kind's own fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Object<B: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    #[serde(flatten)]
    body: B,
}

/// The fields of kinds whose only own field is `spec`.
#[derive(Debug, Serialize)]
pub(crate) struct SpecBody<S: Serialize> {
    /// The spec.
    pub(super) spec: S,
}

impl<B: Serialize> Object<B> {
    /// An object of `kind` in `api_version`.
    pub(super) fn new(
        api_version: &'static str,
        kind: &'static str,
        metadata: Meta,
        body: B,
    ) -> Self {
        Object {
            api_version,
            kind,
            metadata,
            body,
        }
    }

    /// With one more annotation on the object.
    pub(crate) fn annotation(mut self, key: &str, value: &str) -> Self {
        self.metadata = self.metadata.annotation(key, value);
        self
    }

    /// The object's kind.
    pub(super) fn kind(&self) -> &'static str {
        self.kind
    }
}
