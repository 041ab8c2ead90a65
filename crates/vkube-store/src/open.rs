//! Choosing the backend: `--state` (or `VKUBE_STATE`) names a SQLite file
//! or a `postgres://` URL, and [`open`] returns the matching store behind
//! [`StateStore`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::StateStore;
use crate::error::{Error, Result};
use crate::path::{default_state_path, STATE_ENV};
use crate::postgres::{is_postgres_url, key_path_for_url, redact_url, PgStore};
use crate::sealing::key_path_for;
use crate::sqlite::SqliteStore;

/// Where the state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database, by URL (which may hold a password: shown
    /// only without it, by `Display` and `Debug`).
    Postgres(String),
}

impl StateLocation {
    /// A `postgres://` or `postgresql://` URL, else a file path.
    pub fn parse(state: &str) -> StateLocation {
        if is_postgres_url(state) {
            StateLocation::Postgres(state.to_owned())
        } else {
            StateLocation::File(PathBuf::from(state))
        }
    }

    /// The state to use: `explicit` (the `--state` flag) if given, else
    /// `VKUBE_STATE` if set and non-empty, else the default file
    /// (`$XDG_DATA_HOME/vkube/state.db`).
    pub fn resolve(explicit: Option<&str>) -> Result<StateLocation> {
        if let Some(state) = explicit.filter(|state| !state.is_empty()) {
            return Ok(StateLocation::parse(state));
        }
        if let Some(state) = std::env::var_os(STATE_ENV).filter(|value| !value.is_empty()) {
            return Ok(StateLocation::parse(&state.to_string_lossy()));
        }
        default_state_path()
            .map(StateLocation::File)
            .ok_or(Error::NoStatePath)
    }

    /// The key file secrets are sealed with (`VKUBE_STATE_KEY`, or the
    /// backend's default: see [`key_path_for`] and [`key_path_for_url`]).
    pub fn key_file(&self) -> Result<PathBuf> {
        match self {
            StateLocation::File(path) => Ok(key_path_for(path)),
            StateLocation::Postgres(url) => key_path_for_url(url),
        }
    }

    /// Opens the store, migrating its schema.
    pub async fn open(&self) -> Result<Arc<dyn StateStore>> {
        Ok(match self {
            StateLocation::File(path) => Arc::new(SqliteStore::open(path).await?),
            StateLocation::Postgres(url) => Arc::new(PgStore::connect(url).await?),
        })
    }
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::File(path) => path.display().fmt(f),
            StateLocation::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::File(path) => f.debug_tuple("File").field(path).finish(),
            StateLocation::Postgres(url) => {
                f.debug_tuple("Postgres").field(&redact_url(url)).finish()
            }
        }
    }
}

/// Opens the state `state` names: a `postgres://` URL or a SQLite file
/// path (see [`StateLocation::parse`]).
pub async fn open(state: &str) -> Result<Arc<dyn StateStore>> {
    StateLocation::parse(state).open().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(
            StateLocation::parse("/var/lib/vkube/state.db"),
            StateLocation::File("/var/lib/vkube/state.db".into())
        );
        let url = "postgres://vkube:s3cret@127.0.0.1:5432/state";
        let location = StateLocation::parse(url);
        assert_eq!(location, StateLocation::Postgres(url.into()));
        assert_eq!(
            location.to_string(),
            "postgres://vkube@127.0.0.1:5432/state"
        );
        assert!(!format!("{location:?}").contains("s3cret"));
        assert_eq!(
            StateLocation::resolve(Some("postgresql://u@localhost/db")).unwrap(),
            StateLocation::Postgres("postgresql://u@localhost/db".into())
        );
    }
}
