//! The stand-in judged by the ecosystem's own TLS stacks: a CA made by OpenSSL (mixed string
//! types in its subject, its own key identifiers) supplied as PEM, the server certificate
//! checked by `openssl verify` and read by `openssl x509`, and kubectl (Go's crypto/tls)
//! reaching the stand-in with an OpenSSL-issued admin certificate — and refused with one from
//! another CA.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use vkube_test_support::external_tool::{KUBECTL, OPENSSL};
use vkube_test_support::kube_api::{Issued, StandIn, StandInOptions};

use crate::client::Client;
use crate::own_loopback_ip;

fn run(mut command: Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let mut command = OPENSSL.command();
    command.args(args).current_dir(dir);
    run(command)
}

/// A P-256 CA made by OpenSSL, written as `<name>.crt` and `<name>.key` (PKCS#8).
fn openssl_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "1",
            "-subj",
            &format!("/C=DE/O=vkube test/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A client certificate issued by OpenSSL from CA `ca`, as kubeadm's admin.conf has it.
fn openssl_client(dir: &Path, ca: &str, name: &str, group: &str) -> Issued {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    std::fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/O={group}/CN={name}"),
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "client.ext",
            "-out",
            &crt,
        ],
    );
    let der_file = format!("{name}.der");
    openssl(
        dir,
        &["x509", "-in", &crt, "-outform", "DER", "-out", &der_file],
    );
    Issued {
        cert_pem: std::fs::read_to_string(dir.join(&crt)).unwrap(),
        cert_der: std::fs::read(dir.join(&der_file)).unwrap(),
        key_pem: std::fs::read_to_string(dir.join(&key)).unwrap(),
    }
}

/// A kubeconfig `file` in `dir` for `endpoint`, trusting `dir/cluster-ca.crt` and
/// authenticating with `dir/<user>.{crt,key}`; returns its path.
pub(crate) fn kubeconfig(dir: &Path, file: &str, endpoint: &str, user: &str) -> String {
    let path = dir.join(file);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: stand-in
  cluster:
    server: {endpoint}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: admin@stand-in
  context: {{cluster: stand-in, user: admin}}
current-context: admin@stand-in
",
        ca = dir.join("cluster-ca.crt").display(),
        cert = dir.join(format!("{user}.crt")).display(),
        key = dir.join(format!("{user}.key")).display(),
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn openssl_made_ca_supplied_as_pem_is_verified_by_openssl_and_kubectl() {
    if !OPENSSL.available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    openssl_ca(dir, "cluster-ca");
    let ca_pem = std::fs::read_to_string(dir.join("cluster-ca.crt")).unwrap();
    let ca_key = std::fs::read_to_string(dir.join("cluster-ca.key")).unwrap();
    assert!(ca_key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    let ip = own_loopback_ip();
    let stand_in =
        StandIn::start(StandInOptions::with_ca(&ca_pem, &ca_key).listen(SocketAddr::from((ip, 0))));

    // OpenSSL verifies the chain and reads the listen IP from the server certificate.
    std::fs::write(
        dir.join("server.crt"),
        &stand_in.server_certificate().cert_pem,
    )
    .unwrap();
    let verified = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "cluster-ca.crt",
            "-purpose",
            "sslserver",
            "-verify_ip",
            &ip.to_string(),
            "server.crt",
        ],
    );
    assert_eq!(verified.trim(), "server.crt: OK");
    let text = openssl(dir, &["x509", "-in", "server.crt", "-noout", "-text"]);
    assert!(text.contains(&format!("IP Address:{ip}")), "{text}");
    assert!(text.contains("DNS:kubernetes.default.svc"), "{text}");
    assert!(
        text.contains("Issuer: C = DE, O = vkube test, CN = cluster-ca"),
        "{text}"
    );
    let ca_text = openssl(
        dir,
        &[
            "x509",
            "-in",
            "cluster-ca.crt",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
    );
    let ski = ca_text.lines().nth(1).unwrap().trim().to_string();
    let aki = openssl(
        dir,
        &[
            "x509",
            "-in",
            "server.crt",
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
    );
    assert!(
        aki.contains(&ski),
        "the AKI names the CA's key {ski}: {aki}"
    );

    // An OpenSSL-issued admin certificate gets in and is recorded with its group.
    let admin = openssl_client(dir, "cluster-ca", "openssl-admin", "kubeadm:cluster-admins");
    let answer = Client::new(stand_in.addr(), &ca_pem, &admin)
        .get("/version")
        .unwrap();
    assert_eq!(answer.status, 200);
    let seen = stand_in.client_certificates();
    assert_eq!(seen[0].der, admin.cert_der);
    assert_eq!(seen[0].common_name.as_deref(), Some("openssl-admin"));
    assert_eq!(seen[0].organizations, ["kubeadm:cluster-admins"]);

    if !KUBECTL.available() {
        return;
    }
    let kubectl = |config: &str| {
        let mut command = KUBECTL.command();
        command
            .args(["--kubeconfig", config, "--cache-dir"])
            .arg(dir.join("kube-cache"))
            .args(["--request-timeout", "10s", "get", "--raw", "/version"])
            .env("HOME", dir);
        command.output().unwrap()
    };
    let config = kubeconfig(dir, "admin.conf", &stand_in.endpoint(), "openssl-admin");
    let out = kubectl(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(version["gitVersion"], "v1.30.4");
    let from_kubectl = stand_in.client_certificates().pop().unwrap();
    assert_eq!(from_kubectl.organizations, ["kubeadm:cluster-admins"]);
    assert_eq!(stand_in.requests().last().unwrap().path, "/version");

    // A certificate from another CA is refused during the handshake.
    openssl_ca(dir, "other-ca");
    openssl_client(dir, "other-ca", "intruder", "kubeadm:cluster-admins");
    let requests_before = stand_in.requests().len();
    let failures_before = stand_in.handshake_failures();
    let config = kubeconfig(dir, "intruder.conf", &stand_in.endpoint(), "intruder");
    let out = kubectl(&config);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls:") || stderr.contains("certificate"),
        "{stderr}"
    );
    assert!(stand_in.handshake_failures() > failures_before);
    assert_eq!(stand_in.requests().len(), requests_before);
}
