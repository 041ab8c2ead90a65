//! IP address management: pool definitions, validation and address choice.
//!
//! Pure: no SQL, clock or randomness. `vkube-store` persists pools and
//! leases and calls [`next_free`] inside its own transaction.

mod address;
mod allocate;
mod error;
mod pool;

pub use address::{parse_address, AddressError, AddressRange, Cidr};
pub use allocate::{allocate, check_overlap, next_free, next_free_from, overlap, Lease};
pub use error::{Error, Problem};
pub use pool::{
    parse_pools_yaml, validate_pools, IpPool, PoolAddresses, PoolName, RawIpPool, RawRange,
};

#[cfg(test)]
mod tests;
