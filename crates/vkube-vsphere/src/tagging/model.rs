//! The tagging API's data types, as both `/api` and `/rest` spell them.

use serde::{Deserialize, Serialize};

/// An inventory object as the tagging API names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DynamicId {
    /// Managed object type, e.g. `Datacenter`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Managed object id, e.g. `datacenter-2`.
    pub id: String,
}

/// A tag category.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Category {
    /// Category id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `SINGLE` or `MULTIPLE`.
    #[serde(default)]
    pub cardinality: String,
    /// Object types its tags may be attached to; empty means all.
    #[serde(default)]
    pub associable_types: Vec<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    /// Tag id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Id of its category.
    pub category_id: String,
}

/// What a new category looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategorySpec {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `SINGLE` or `MULTIPLE`.
    pub cardinality: String,
    /// Object types its tags may be attached to.
    pub associable_types: Vec<String>,
}

/// What a new tag looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagSpec {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Id of its category.
    pub category_id: String,
}

/// Objects a tag is attached to (batch answer).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AttachedObjects {
    pub(crate) tag_id: String,
    #[serde(default)]
    pub(crate) object_ids: Option<Vec<DynamicId>>,
}
