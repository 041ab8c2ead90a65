//! Reaching the API server: mutual TLS, kubeconfig text, and the errors for a wrong CA, a
//! refused client certificate, 401, a closed port and a silent server.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use base64::Engine;
use vkube_kube::{ClusterAccess, ClusterApi, Error, KubeClient};

use crate::stand_in_with_client;
use crate::support::TestPki;
use vkube_test_support::external_tool::OPENSSL;
use vkube_test_support::kube_api::fixtures::STATUS_401_UNAUTHORIZED;
use vkube_test_support::kube_api::{Reply, StandIn, StandInOptions, TestCa};

#[tokio::test]
async fn version_over_mutual_tls_from_stand_in_recorded_response() {
    let (pki, stand_in, client) = stand_in_with_client().await;
    let version = client.version().await.unwrap();
    assert_eq!(version.git_version, "v1.30.4");
    assert_eq!(version.major_minor(), Some((1, 30)));
    assert_eq!(version.platform, "linux/amd64");

    let requests = stand_in.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/version")
    );
    assert_eq!(
        certificate_ders(&stand_in),
        vec![pki.admin.cert_der.clone()],
        "the stand-in saw exactly the admin certificate"
    );
    let seen = &stand_in.client_certificates()[0];
    assert_eq!(seen.common_name.as_deref(), Some("kubernetes-admin"));
    assert_eq!(seen.organizations, ["kubeadm:cluster-admins"]);
    let shown = format!("{client:?}");
    assert!(
        shown.contains(&stand_in.endpoint()) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
}

#[tokio::test]
async fn kubeconfig_text_reaches_stand_in_with_recorded_version() {
    let pki = TestPki::new();
    let stand_in = pki.stand_in().await;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: demo
  cluster:
    server: {endpoint}
    certificate-authority-data: {ca}
users:
- name: demo-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: demo-admin@demo
  context:
    cluster: demo
    user: demo-admin
current-context: demo-admin@demo
",
        endpoint = stand_in.endpoint(),
        ca = b64(&pki.ca.cert_pem),
        cert = b64(&pki.admin.cert_pem),
        key = b64(&pki.admin.key_pem),
    );
    let client = KubeClient::from_kubeconfig_text(&kubeconfig, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(client.endpoint(), stand_in.endpoint());
    assert_eq!(client.version().await.unwrap().git_version, "v1.30.4");
    assert_eq!(
        certificate_ders(&stand_in),
        vec![pki.admin.cert_der.clone()]
    );
}

/// The stand-in on a VIP-like loopback address other than 127.0.0.1, serving a certificate
/// its cluster CA issued for that address: the client checks the IP SAN and gets through.
#[tokio::test]
async fn version_through_a_vip_address_of_a_stand_in_with_the_cluster_ca() {
    let pki = TestPki::new();
    let pid = std::process::id();
    let vip = Ipv4Addr::new(127, 42, (pid >> 8) as u8, pid as u8);
    let options = StandInOptions::with_ca(&pki.ca.cert_pem, &pki.ca.key_pem)
        .listen(std::net::SocketAddr::from((vip, 0)));
    let stand_in = StandIn::start_async(options).await;
    assert!(stand_in.endpoint().starts_with(&format!("https://{vip}:")));
    let client = KubeClient::new(&pki.admin_access(&stand_in.endpoint())).unwrap();
    assert_eq!(client.version().await.unwrap().git_version, "v1.30.4");
    assert_eq!(
        stand_in.client_certificates()[0].organizations,
        ["kubeadm:cluster-admins"]
    );
}

#[tokio::test]
async fn server_certificate_from_another_ca_fails_tls_against_stand_in() {
    let pki = TestPki::new();
    let impostor = TestCa::new("kubernetes");
    let impostor_server = impostor.server_certificate(&[Ipv4Addr::LOCALHOST.into()]);
    let stand_in = StandIn::start_async(StandInOptions::with_server_certificate(
        impostor_server,
        &pki.ca.cert_pem,
    ))
    .await;
    let client = KubeClient::new(&pki.admin_access(&stand_in.endpoint())).unwrap();
    let err = client.version().await.unwrap_err();
    match &err {
        Error::Tls { endpoint, reason } => {
            assert_eq!(endpoint, &stand_in.endpoint());
            assert!(reason.contains("not signed by the cluster CA"), "{reason}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(
        stand_in.requests().is_empty(),
        "nothing was sent to an unverified server"
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_by_stand_in() {
    let pki = TestPki::new();
    let stand_in = pki.stand_in().await;
    let stranger = TestCa::new("someone-else").client("kubernetes-admin", "kubeadm:cluster-admins");
    let access = ClusterAccess {
        client_cert_pem: stranger.cert_pem,
        client_key_pem: stranger.key_pem,
        ..pki.admin_access(&stand_in.endpoint())
    };
    let err = KubeClient::new(&access)
        .unwrap()
        .version()
        .await
        .unwrap_err();
    match &err {
        Error::Tls { reason, .. } => {
            assert!(
                reason.contains("refused the client certificate"),
                "{reason}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(stand_in.handshake_failures() >= 1);
    assert!(stand_in.requests().is_empty());
}

#[tokio::test]
async fn recorded_401_from_stand_in_is_unauthorized() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.answer_everything_with(Reply::json(401, STATUS_401_UNAUTHORIZED));
    let err = client.version().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { endpoint } if *endpoint == stand_in.endpoint()),
        "{err:?}"
    );
    assert!(err.to_string().contains("401 Unauthorized"), "{err}");
}

#[tokio::test]
async fn closed_port_is_unreachable_within_a_short_timeout() {
    let pki = TestPki::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("https://127.0.0.1:{port}");
    let access = ClusterAccess {
        timeout: Duration::from_millis(500),
        ..pki.admin_access(&endpoint)
    };
    let started = Instant::now();
    let err = KubeClient::new(&access)
        .unwrap()
        .version()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        Error::Unreachable {
            endpoint: e,
            reason,
        } => {
            assert_eq!(e, &endpoint);
            assert_eq!(reason, "connection refused");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        format!("the Kubernetes API at {endpoint} is unreachable: connection refused")
    );
}

#[tokio::test]
async fn silent_server_is_unreachable_after_the_timeout() {
    let pki = TestPki::new();
    // Accepts TCP connections and never says a word, like a half-dead VIP holder.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let access = ClusterAccess {
        timeout: Duration::from_millis(300),
        ..pki.admin_access(&endpoint)
    };
    let started = Instant::now();
    let err = KubeClient::new(&access)
        .unwrap()
        .version()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    match &err {
        Error::Unreachable { reason, .. } => assert!(
            reason == "no answer within 300ms" || reason == "connection timed out",
            "{reason}"
        ),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    hold.abort();
}

#[tokio::test]
async fn key_of_another_certificate_is_refused_before_connecting() {
    let pki = TestPki::new();
    let other = pki.ca.client("someone", "group");
    let access = ClusterAccess {
        client_key_pem: other.key_pem.clone(),
        ..pki.admin_access("https://127.0.0.1:6443")
    };
    let err = KubeClient::new(&access).unwrap_err();
    assert!(
        err.to_string()
            .contains("the client key does not belong to the client certificate"),
        "{err}"
    );
    let key_body = other.key_pem.lines().nth(1).unwrap();
    assert!(!err.to_string().contains(key_body));
}

/// A SEC1 key as `openssl ecparam -genkey` writes it (with an `EC PARAMETERS` block first),
/// certified by the cluster CA with openssl: the client normalises the key PEM and the
/// stand-in accepts the certificate.
#[tokio::test]
async fn sec1_key_from_openssl_authenticates_to_stand_in() {
    if !OPENSSL.available() {
        return;
    }
    let pki = TestPki::new();
    let dir = std::env::temp_dir().join(format!("vkube-kube-sec1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &pki.ca.cert_pem).unwrap();
    std::fs::write(dir.join("ca.key"), &pki.ca.key_pem).unwrap();
    std::fs::write(dir.join("ext.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    let openssl = |args: &[&str]| {
        let out = OPENSSL
            .command()
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "admin.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "admin.key",
        "-subj",
        "/O=kubeadm:cluster-admins/CN=sec1-admin",
        "-out",
        "admin.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "admin.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "admin.crt",
    ]);
    let key_pem = std::fs::read_to_string(dir.join("admin.key")).unwrap();
    assert!(key_pem.contains("BEGIN EC PARAMETERS") && key_pem.contains("BEGIN EC PRIVATE KEY"));
    let cert_pem = std::fs::read_to_string(dir.join("admin.crt")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let stand_in = pki.stand_in().await;
    let access = ClusterAccess {
        client_cert_pem: cert_pem,
        client_key_pem: key_pem,
        ..pki.admin_access(&stand_in.endpoint())
    };
    let version = KubeClient::new(&access).unwrap().version().await.unwrap();
    assert_eq!(version.git_version, "v1.30.4");
    assert_eq!(stand_in.client_certificates().len(), 1);
}

/// DER of every client certificate the stand-in saw.
fn certificate_ders(stand_in: &StandIn) -> Vec<Vec<u8>> {
    stand_in
        .client_certificates()
        .into_iter()
        .map(|c| c.der)
        .collect()
}
