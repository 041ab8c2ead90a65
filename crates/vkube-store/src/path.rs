//! Where the state file lives: `--state`, then `VKUBE_STATE`, then
//! `$XDG_DATA_HOME/vkube/state.db` (`~/.local/share/vkube/state.db`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Environment variable naming the state file.
pub const STATE_ENV: &str = "VKUBE_STATE";

/// `$XDG_DATA_HOME/vkube/state.db`, falling back to
/// `~/.local/share/vkube/state.db`; `None` without a home directory.
pub fn default_state_path() -> Option<PathBuf> {
    let from_env = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute());
    let data =
        from_env.or_else(|| dirs::home_dir().map(|home| home.join(".local").join("share")))?;
    Some(data.join("vkube").join("state.db"))
}

/// The state path to use: `explicit` (the `--state` flag) if given, else
/// `VKUBE_STATE` if set and non-empty, else [`default_state_path`].
pub fn resolve_state_path(explicit: Option<PathBuf>) -> Result<PathBuf> {
    explicit
        .or_else(|| {
            std::env::var_os(STATE_ENV)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .or_else(default_state_path)
        .ok_or(Error::NoStatePath)
}
