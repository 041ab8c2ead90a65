//! CustomResourceDefinitions whose schema is structural but open.

use serde::Serialize;

use super::meta::{Labels, Meta, Object, SpecBody};

/// Whether a CustomResourceDefinition's objects are namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Scope {
    /// One object per namespace and name.
    Namespaced,
    /// One object per name, cluster-wide.
    Cluster,
}

/// What a CustomResourceDefinition is made from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrdSpec<'a> {
    /// API group, e.g. `crd.projectcalico.org`.
    pub group: &'a str,
    /// The one served and stored version, e.g. `v1`.
    pub version: &'a str,
    /// Kind, e.g. `IPPool`.
    pub kind: &'a str,
    /// Plural resource name, e.g. `ippools`.
    pub plural: &'a str,
    /// Namespaced or cluster-wide.
    pub scope: Scope,
    /// Whether the kind has a `status` subresource.
    pub status_subresource: bool,
}

/// `spec` of a CustomResourceDefinition.
#[derive(Debug, Serialize)]
pub(crate) struct Definition {
    group: String,
    names: Names,
    scope: Scope,
    versions: Vec<Version>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Names {
    kind: String,
    list_kind: String,
    plural: String,
    singular: String,
}

#[derive(Debug, Serialize)]
struct Version {
    name: String,
    served: bool,
    storage: bool,
    schema: Schema,
    #[serde(skip_serializing_if = "Option::is_none")]
    subresources: Option<Subresources>,
}

#[derive(Debug, Serialize)]
struct Schema {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: OpenObject,
}

/// An object whose fields the API server keeps as they are.
#[derive(Debug, Serialize)]
struct OpenObject {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields")]
    preserve_unknown_fields: bool,
}

#[derive(Debug, Serialize)]
struct Subresources {
    status: Empty,
}

#[derive(Debug, Serialize)]
struct Empty {}

/// A CustomResourceDefinition named `<plural>.<group>` whose schema is an
/// object the API server keeps as it is
/// (`x-kubernetes-preserve-unknown-fields`). For kinds that controllers
/// write and read themselves, where the full upstream schema would only be
/// a copy.
pub(crate) fn open_crd(spec: &CrdSpec<'_>, labels: &Labels) -> Object<SpecBody<Definition>> {
    let name = format!("{}.{}", spec.plural, spec.group);
    let version = Version {
        name: spec.version.to_owned(),
        served: true,
        storage: true,
        schema: Schema {
            open_api_v3_schema: OpenObject {
                kind: "object",
                preserve_unknown_fields: true,
            },
        },
        subresources: spec
            .status_subresource
            .then_some(Subresources { status: Empty {} }),
    };
    let definition = Definition {
        group: spec.group.to_owned(),
        names: Names {
            kind: spec.kind.to_owned(),
            list_kind: format!("{}List", spec.kind),
            plural: spec.plural.to_owned(),
            singular: spec.kind.to_ascii_lowercase(),
        },
        scope: spec.scope,
        versions: vec![version],
    };
    Object::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        Meta::cluster(&name, labels),
        SpecBody { spec: definition },
    )
}
