//! Connection helpers shared by the integration tests.

use std::time::Duration;

use vkube_test_support::Simulator;
use vkube_vsphere::{
    ConnectOptions, Endpoint, Secret, Session, Timeouts, TlsPolicy, TransportChoice,
};

/// Options that log in to `sim` with its credentials, skipping TLS verification.
pub fn options(sim: &Simulator) -> ConnectOptions {
    ConnectOptions {
        endpoint: Endpoint::parse(sim.url()).expect("simulator url"),
        username: sim.username().to_string(),
        password: Secret::new(sim.password()),
        tls: TlsPolicy::Insecure,
        transport: TransportChoice::Auto,
        wire_log: false,
        connect_timeout: Duration::from_secs(5),
        timeouts: Timeouts::default(),
    }
}

/// A logged-in session.
pub async fn connect(sim: &Simulator) -> Session {
    Session::connect(options(sim))
        .await
        .expect("login to the simulator")
}
