//! The one error type of the role catalog: every variant names the file,
//! line, role, slot or id it concerns.
//!
//! Rendering (`error:` / `Caused by:` / `hint:`) is left to `vkube-cli`.

use super::Slot;

/// Everything that can go wrong while parsing catalogs, privilege lists and
/// slot bindings, or while rendering an export.
///
/// `file` is the source name the caller passed in (a path, or
/// `builtin:<profile>`); `line` is 1-based and absent when the text could not
/// be located, e.g. in flow-style YAML.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The YAML is malformed, has a wrong type or an unknown field.
    #[error("cannot read role catalog{}", at(Some(.file), .line))]
    Syntax {
        /// Source name of the catalog.
        file: String,
        /// Line reported by the YAML parser.
        line: Option<usize>,
        /// The parser's own message.
        #[source]
        source: serde_yaml::Error,
    },

    /// A privilege id that is not shaped like `Group.Name`.
    #[error("invalid privilege id `{id}`{}: it {problem}", at(.file.as_ref(), .line))]
    InvalidPrivilegeId {
        /// Source name, when the id came from a file.
        file: Option<String>,
        /// Line of the id.
        line: Option<usize>,
        /// The id as written.
        id: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A well-formed privilege id that vSphere does not know.
    #[error(
        "unknown privilege `{id}`{}{}",
        at(.file.as_ref(), .line),
        did_you_mean(.suggestion.as_deref())
    )]
    UnknownPrivilege {
        /// Source name, when the id came from a file.
        file: Option<String>,
        /// Line of the id.
        line: Option<usize>,
        /// The id as written.
        id: String,
        /// The closest known id, if one is close.
        suggestion: Option<String>,
    },

    /// A slot name that is not one of [`Slot::ALL`].
    #[error(
        "unknown slot `{value}`{}{}; slots are {}",
        at(.file.as_ref(), .line),
        did_you_mean(.suggestion.as_deref()),
        Slot::names()
    )]
    UnknownSlot {
        /// Source name, when the slot came from a file.
        file: Option<String>,
        /// Line of the slot.
        line: Option<usize>,
        /// The slot as written.
        value: String,
        /// The closest slot name, if one is close.
        suggestion: Option<&'static str>,
    },

    /// A role name that govc and vCenter would not accept.
    #[error("invalid role name `{name}`{}: it {problem}", at(Some(.file), .line))]
    InvalidRoleName {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// Two roles with the same name in one catalog.
    #[error(
        "duplicate role `{name}`{}{}",
        at(Some(.file), .line),
        .first_line.map(|l| format!(" (first defined at line {l})")).unwrap_or_default()
    )]
    DuplicateRole {
        /// Source name of the catalog.
        file: String,
        /// Line of the second definition.
        line: Option<usize>,
        /// Line of the first definition.
        first_line: Option<usize>,
        /// The role name.
        name: String,
    },

    /// The same privilege listed twice in one role.
    #[error("privilege `{id}` is listed twice in role `{role}`{}", at(Some(.file), .line))]
    DuplicatePrivilege {
        /// Source name of the catalog.
        file: String,
        /// Line of the second listing.
        line: Option<usize>,
        /// The role.
        role: String,
        /// The privilege.
        id: String,
    },

    /// The same slot listed twice in one role's grants.
    #[error("slot `{slot}` is granted twice in role `{role}`{}", at(Some(.file), .line))]
    DuplicateGrant {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The role.
        role: String,
        /// The slot.
        slot: Slot,
    },

    /// A role that vkube would have to create has no privileges.
    #[error(
        "role `{role}`{} has no privileges; list them under `privileges`, or mark a predefined role `builtin: true`",
        at(Some(.file), .line)
    )]
    EmptyPrivileges {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The role.
        role: String,
    },

    /// A role to create under the name of one of vCenter's system roles.
    #[error(
        "role `{role}`{} has the name of a vCenter system role; mark it `builtin: true` to grant the predefined role, or choose another name",
        at(Some(.file), .line)
    )]
    SystemRoleName {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The role.
        role: String,
    },

    /// A `builtin: true` role that also lists privileges.
    #[error(
        "builtin role `{role}`{} lists privileges; predefined roles are granted, never created",
        at(Some(.file), .line)
    )]
    BuiltinWithPrivileges {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The role.
        role: String,
    },

    /// A role that is never granted anywhere.
    #[error("role `{role}`{} has no `grants`", at(Some(.file), .line))]
    NoGrants {
        /// Source name of the catalog.
        file: String,
        /// Line of the role.
        line: Option<usize>,
        /// The role.
        role: String,
    },

    /// A catalog with `require_reasons: true` has a privilege without `reason`.
    #[error(
        "privilege `{id}` in role `{role}`{} has no `reason`; this catalog requires one per privilege",
        at(Some(.file), .line)
    )]
    MissingReason {
        /// Source name of the catalog.
        file: String,
        /// Line of the privilege.
        line: Option<usize>,
        /// The role.
        role: String,
        /// The privilege.
        id: String,
    },

    /// No embedded catalog has this profile name.
    #[error("unknown role profile `{name}`; profiles are {known}")]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The embedded profile names, comma-separated and backticked.
        known: String,
    },

    /// A `SLOT=PATH` binding that cannot be parsed.
    #[error("invalid slot binding `{input}`: {problem}")]
    InvalidBinding {
        /// The binding as given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A `builtin: true` role that this vCenter does not have.
    #[error("predefined role `{role}` of profile `{profile}` does not exist in this vCenter")]
    MissingBuiltinRole {
        /// The role.
        role: String,
        /// The catalog's profile.
        profile: String,
    },

    /// Two grants would put different permissions for one principal on one
    /// object, where vCenter keeps only one.
    #[error(
        "roles {first} and {second} are both granted on `{path}`; vCenter keeps one permission per principal and object"
    )]
    ConflictingGrants {
        /// The inventory path both grants go to.
        path: String,
        /// The first grant, e.g. "`a` (propagate=true)".
        first: String,
        /// The second grant.
        second: String,
    },

    /// Serializing the JSON export failed.
    #[error("cannot render role catalog `{profile}` as JSON")]
    Render {
        /// The catalog's profile.
        profile: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Formats " in `file` line N" with whatever parts are known.
fn at(file: Option<&String>, line: &Option<usize>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!(" in `{file}` line {line}"),
        (Some(file), None) => format!(" in `{file}`"),
        (None, Some(line)) => format!(" at line {line}"),
        (None, None) => String::new(),
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}
