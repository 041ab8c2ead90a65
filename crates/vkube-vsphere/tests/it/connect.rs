//! The connection matrix: every way a connection can fail gives one precise error.

use std::time::Duration;

use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::{Endpoint, Error, Secret, Session, Thumbprint, TlsPolicy, TransportChoice};

use crate::support::{connect, options};

#[tokio::test(flavor = "multi_thread")]
async fn logs_in_over_soap_and_reports_about() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let about = session.about();
    assert_eq!(about.api_type, "VirtualCenter");
    assert_eq!(about.transport, "soap", "the simulator serves no VI/JSON");
    assert!(about.instance_uuid.is_some());
    assert_eq!(about.thumbprint_sha256.len(), 32 * 3 - 1);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_invalid_login() {
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.password = Secret::new("wrong");
    let err = Session::connect(opts).await.err().expect("login must fail");
    assert!(matches!(err, Error::InvalidLogin { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong user name or password"));
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_names_both_thumbprints() {
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.tls = TlsPolicy::Verify { ca_file: None };
    let err = Session::connect(opts)
        .await
        .err()
        .expect("self-signed must be refused");
    let Error::UntrustedCertificate { sha256, sha1, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((sha256.len(), sha1.len()), (95, 59));
    assert!(err.hint().unwrap().contains("--thumbprint"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_thumbprint_is_accepted_and_a_wrong_one_refused() {
    let sim = Simulator::start_default();
    let sha1 = connect(&sim).await.certificate().sha1.clone();
    let mut opts = options(&sim);
    opts.tls = TlsPolicy::Pinned(Thumbprint::parse(&sha1).unwrap());
    let session = Session::connect(opts.clone())
        .await
        .expect("pinned thumbprint accepted");
    session.close().await;
    opts.tls = TlsPolicy::Pinned(Thumbprint::parse(&"AB".repeat(32)).unwrap());
    let err = Session::connect(opts)
        .await
        .err()
        .expect("wrong pin refused");
    assert!(matches!(err, Error::ThumbprintMismatch { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_names_the_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap();
    let err = Session::connect(opts).await.err().unwrap();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_server_times_out_cleanly() {
    // A port that accepts TCP but never speaks TLS: what a hung vCenter or a
    // wrong firewall looks like. (Unrouted addresses are not used: tests send
    // traffic to loopback only.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap();
    opts.connect_timeout = Duration::from_millis(300);
    let err = Session::connect(opts).await.err().unwrap();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_is_reported() {
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.endpoint = Endpoint::parse("no-such-host.invalid").unwrap();
    let err = Session::connect(opts).await.err().unwrap();
    assert!(matches!(err, Error::UnknownHost { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_session_is_renewed_once_transparently() {
    let sim = Simulator::start(SimulatorConfig {
        session_idle_timeout: Some(Duration::from_millis(400)),
        ..Default::default()
    });
    let session = connect(&sim).await;
    let root = session.content().root_folder.clone();
    let client = session.client();
    let folder = vim_rs::mo::Folder::new(client.clone(), &root.value);
    folder.name().await.expect("first call");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    folder
        .name()
        .await
        .expect("call after expiry succeeds after re-login");
    assert_eq!(session.relogins(), 1);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_transport_forced_on_a_soap_only_server_fails_clearly() {
    let sim = Simulator::start_default();
    let mut opts = options(&sim);
    opts.transport = TransportChoice::Json;
    let err = Session::connect(opts).await.err().unwrap();
    assert!(matches!(err, Error::NotVcenter { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn esxi_host_is_not_a_vcenter() {
    let sim = Simulator::start(SimulatorConfig {
        extra_args: vec!["-esx".into()],
        ..Default::default()
    });
    let err = Session::connect(options(&sim))
        .await
        .err()
        .expect("ESXi refused");
    assert!(matches!(err, Error::NotVcenter { .. }), "{err:?}");
    assert!(err.to_string().contains("HostAgent"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn web_server_without_the_api_is_not_a_vcenter() {
    let sim = Simulator::start(SimulatorConfig {
        extra_args: vec!["-not-vcenter".into()],
        ..Default::default()
    });
    let err = Session::connect(options(&sim))
        .await
        .err()
        .expect("plain web server refused");
    assert!(matches!(err, Error::NotVcenter { .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_file_makes_the_certificate_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let sim = Simulator::start(SimulatorConfig {
        extra_args: vec!["-ca-out".into(), ca.display().to_string()],
        ..Default::default()
    });
    let mut opts = options(&sim);
    opts.tls = TlsPolicy::Verify { ca_file: Some(ca) };
    let session = Session::connect(opts)
        .await
        .expect("trusted through the CA file");
    session.close().await;
    let mut opts = options(&sim);
    opts.tls = TlsPolicy::Verify {
        ca_file: Some(dir.path().join("missing.pem")),
    };
    let err = Session::connect(opts).await.err().unwrap();
    assert!(matches!(err, Error::CaFile { .. }), "{err:?}");
}
