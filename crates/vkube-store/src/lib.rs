//! vkube's persistent state behind one narrow [`Store`] trait: IP pools and
//! leases now; clusters, events and cloud accounts later.
//!
//! [`SqliteStore`] keeps everything in one SQLite file and is safe for many
//! processes sharing that file. A PostgreSQL implementation for several
//! vkube replicas can follow behind the same trait.
#![deny(missing_docs)]

mod error;
mod path;
mod sqlite;
mod store;

pub use error::{Error, Result};
pub use path::{default_state_path, resolve_state_path, STATE_ENV};
pub use sqlite::SqliteStore;
pub use store::{LeaseFilter, PoolRecord, Store};
