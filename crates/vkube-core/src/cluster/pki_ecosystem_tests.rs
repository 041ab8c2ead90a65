//! The rendered key material and admin kubeconfig, read by the programs
//! that read them on a real cluster: Go's `crypto/x509` and `crypto/tls`
//! (`tools/x509check`; kubeadm, kube-apiserver and kubectl are Go), OpenSSL
//! and kubectl itself. Each check skips with a note when its tool is missing
//! (see [`super::external_tools`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::external_tools::{run, run_ok, x509check, ScratchDir, KUBECTL, OPENSSL};
use super::pki::tests::{legacy_sec1_pem, now, pki, seeded, version, NOW_UNIX};
use super::{
    render_admin_kubeconfig, ClusterName, ClusterPki, ADMIN_VALIDITY, CA_VALIDITY,
    ETCD_CLIENT_NAME, ETCD_CLIENT_VALIDITY, NOT_BEFORE_BACKDATE,
};

/// Kubernetes versions on either side of the admin group change, with the
/// group each admin certificate must carry.
const ADMIN_VERSIONS: [(&str, &str); 3] = [
    ("v1.28.15", "system:masters"),
    ("v1.29.0", "kubeadm:cluster-admins"),
    ("v1.31.4", "kubeadm:cluster-admins"),
];
const ADMIN_USER: &str = "demo-admin";
const CA_CERTS: [&str; 3] = ["pki/ca.crt", "pki/etcd/ca.crt", "pki/front-proxy-ca.crt"];
const BACKDATE: u64 = NOT_BEFORE_BACKDATE.as_secs();

/// The PKI in kubeadm's layout under `pki/`, and one admin certificate and
/// key per entry of [`ADMIN_VERSIONS`] as `admin/<version>.{crt,key}`.
struct Rendered {
    dir: ScratchDir,
    pki: ClusterPki,
}

impl Rendered {
    fn new(label: &str) -> Rendered {
        let dir = ScratchDir::new(label);
        let pki = pki();
        for file in pki.kubeadm_files() {
            dir.write(&format!("pki/{}", file.path), file.pem);
        }
        for (index, (text, _)) in ADMIN_VERSIONS.iter().enumerate() {
            let admin = pki
                .admin_certificate(
                    ADMIN_USER,
                    &version(text),
                    now(),
                    ADMIN_VALIDITY,
                    &mut seeded(10 + index as u8),
                )
                .unwrap();
            dir.write(&format!("admin/{text}.crt"), &admin.cert_pem);
            dir.write(&format!("admin/{text}.key"), &admin.key_pem);
        }
        Rendered { dir, pki }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Every private key, relative to the directory.
    fn private_keys(&self) -> Vec<String> {
        let pki = self
            .pki
            .kubeadm_files()
            .map(|file| format!("pki/{}", file.path));
        let admin = ADMIN_VERSIONS.map(|(text, _)| format!("admin/{text}.key"));
        pki.into_iter()
            .chain(admin)
            .filter(|path| path.ends_with(".key"))
            .collect()
    }
}

/// Unix seconds `offset` from the time of issue, for `-at`/`-attime`.
fn at(offset: i64) -> String {
    (NOW_UNIX as i64 + offset).to_string()
}

/// x509check's name for the client-auth check at `offset` from the time of
/// issue (the time in RFC 3339, UTC).
fn client_auth_at(offset: i64) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp(NOW_UNIX as i64 + offset).unwrap();
    format!(
        "client auth at {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second()
    )
}

/// The detail of x509check's `ok` line for `file` and `check`.
fn ok_line<'a>(output: &'a str, file: &Path, check: &str) -> &'a str {
    let prefix = format!("ok   {}: {check}: ", file.display());
    output
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{output}"))
}

/// The value of `name=` in an x509check detail (up to the next space).
fn field<'a>(detail: &'a str, name: &str) -> &'a str {
    let start = detail
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name}= in {detail}"))
        + name.len()
        + 1;
    detail[start..].split(' ').next().unwrap()
}

#[test]
fn go_x509_reads_every_key_and_certificate() {
    let Some(checker) = x509check() else { return };
    let rendered = Rendered::new("go-x509");
    let check = |offset: i64| {
        run(Command::new(&checker)
            .arg("-ca")
            .arg(rendered.path("pki/ca.crt"))
            .args(["-at", &at(offset)])
            .arg(rendered.dir.path()))
    };
    let outcome = check(0);
    let output = &outcome.output;
    assert!(outcome.success && !output.contains("FAIL"), "{output}");

    for key in rendered.private_keys() {
        let parsed = ok_line(output, &rendered.path(&key), "x509.ParsePKCS8PrivateKey");
        assert_eq!(parsed, "ECDSA P-256", "{key}");
    }
    ok_line(
        output,
        &rendered.path("pki/sa.pub"),
        "x509.ParsePKIXPublicKey",
    );
    ok_line(output, &rendered.path("pki/sa.{key,pub}"), "key pair");
    for ca in CA_CERTS {
        let detail = ok_line(output, &rendered.path(ca), "x509.ParseCertificate");
        assert!(detail.contains("ca=true"), "{detail}");
        assert_eq!(field(detail, "notBefore"), at(-(BACKDATE as i64)), "{ca}");
        assert_eq!(
            field(detail, "notAfter"),
            at(CA_VALIDITY.as_secs() as i64),
            "{ca}"
        );
        ok_line(output, &rendered.path(ca), "CA extensions");
        let stem = ca.trim_end_matches(".crt");
        ok_line(
            output,
            &rendered.path(&format!("{stem}.{{crt,key}}")),
            "tls.X509KeyPair",
        );
    }
    for (text, group) in ADMIN_VERSIONS {
        let cert = rendered.path(&format!("admin/{text}.crt"));
        let detail = ok_line(output, &cert, "x509.ParseCertificate");
        assert!(
            detail.starts_with(&format!(
                "subject=\"CN={ADMIN_USER},O={group}\" issuer=\"CN=kubernetes\" ca=false"
            )),
            "{text}: {detail}"
        );
        let not_before: u64 = field(detail, "notBefore").parse().unwrap();
        assert!(not_before < NOW_UNIX, "{text}: {detail}");
        assert_eq!(not_before, NOW_UNIX - BACKDATE, "{text}: {detail}");
        assert_eq!(
            field(detail, "notAfter"),
            at(ADMIN_VALIDITY.as_secs() as i64)
        );
        ok_line(output, &cert, &client_auth_at(0));
        ok_line(
            output,
            &rendered.path(&format!("admin/{text}.{{crt,key}}")),
            "tls.X509KeyPair",
        );
    }

    // A guest whose clock is behind by half the backdating accepts
    // everything; twice the backdating is too far.
    let behind = check(-(BACKDATE as i64) / 2);
    assert!(behind.success, "{}", behind.output);
    let too_far = check(-2 * BACKDATE as i64);
    assert!(!too_far.success, "{}", too_far.output);
    assert!(
        too_far.output.contains("not yet valid"),
        "{}",
        too_far.output
    );
}

/// The checker would have caught the SEC1 keys of earlier versions: Go
/// cannot tell their curve.
#[test]
fn go_x509_refuses_sec1_keys_without_the_curve() {
    let Some(checker) = x509check() else { return };
    let dir = ScratchDir::new("go-x509-sec1");
    let legacy = dir.write("ca.key", &legacy_sec1_pem(&pki().ca.pair.key_pem));
    let outcome = run(Command::new(&checker).arg(&legacy));
    assert!(!outcome.success, "{}", outcome.output);
    assert!(
        outcome
            .output
            .contains("x509.ParseECPrivateKey: x509: unknown elliptic curve"),
        "{}",
        outcome.output
    );
}

#[test]
fn openssl_reads_every_key_and_verifies_the_chain() {
    if !OPENSSL.available() {
        return;
    }
    let rendered = Rendered::new("openssl");
    let openssl = |args: &[&str], files: &[&Path]| run(OPENSSL.command().args(args).args(files));
    let path = |relative: &str| rendered.path(relative);
    for key in rendered.private_keys() {
        for tool in ["pkey", "ec"] {
            let outcome = openssl(&[tool, "-noout", "-in"], &[&path(&key)]);
            assert!(outcome.success, "openssl {tool} {key}: {}", outcome.output);
        }
    }
    // The same check fails on the key format of earlier versions.
    let legacy = rendered.dir.write(
        "legacy.key",
        &legacy_sec1_pem(&rendered.pki.ca.pair.key_pem),
    );
    for tool in ["pkey", "ec"] {
        let outcome = openssl(&[tool, "-noout", "-in"], &[&legacy]);
        assert!(
            !outcome.success,
            "openssl {tool} read a SEC1 key without curve: {}",
            outcome.output
        );
    }
    let sa_pub = openssl(&["pkey", "-pubout", "-in"], &[&path("pki/sa.key")]);
    assert_eq!(sa_pub.output, rendered.pki.service_account_public_pem);
    let pubin = openssl(&["pkey", "-pubin", "-noout", "-in"], &[&path("pki/sa.pub")]);
    assert!(pubin.success, "{}", pubin.output);

    let ca = path("pki/ca.crt");
    let verify = |attime: &str, ca: &Path, cert: &Path, purpose: &str| {
        openssl(
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-attime",
                attime,
                "-CAfile",
            ],
            &[ca, cert],
        )
    };
    for name in CA_CERTS {
        let cert = path(name);
        let text = openssl(
            &[
                "x509",
                "-noout",
                "-ext",
                "basicConstraints,keyUsage,subjectKeyIdentifier",
                "-in",
            ],
            &[&cert],
        );
        for expected in [
            "X509v3 Basic Constraints: critical\n    CA:TRUE\n",
            "X509v3 Key Usage: critical\n    Digital Signature, Certificate Sign, CRL Sign\n",
            "X509v3 Subject Key Identifier:",
        ] {
            assert!(text.output.contains(expected), "{name}: {}", text.output);
        }
        for (offset, valid) in [
            (0, true),
            (-(BACKDATE as i64) / 2, true),
            (-2 * BACKDATE as i64, false),
        ] {
            let outcome = verify(&at(offset), &cert, &cert, "any");
            assert_eq!(
                outcome.success, valid,
                "{name} at {offset}: {}",
                outcome.output
            );
            if !valid {
                assert!(
                    outcome.output.contains("not yet valid"),
                    "{}",
                    outcome.output
                );
            }
        }
    }
    for (text, group) in ADMIN_VERSIONS {
        let cert = path(&format!("admin/{text}.crt"));
        let subject = run_ok(
            OPENSSL
                .command()
                .args(["x509", "-noout", "-subject", "-in"])
                .arg(&cert),
        );
        assert_eq!(
            subject.trim(),
            format!("subject=O = {group}, CN = {ADMIN_USER}"),
            "{text}"
        );
        for (offset, valid) in [
            (0, true),
            (-(BACKDATE as i64) / 2, true),
            (-2 * BACKDATE as i64, false),
        ] {
            let outcome = verify(&at(offset), &ca, &cert, "sslclient");
            assert_eq!(
                outcome.success, valid,
                "{text} at {offset}: {}",
                outcome.output
            );
        }
        // A client certificate only: no TLS server may present it.
        assert!(!verify(&at(0), &ca, &cert, "sslserver").success, "{text}");
    }

    // kubeadm's caCertHashes: SHA-256 of the CA's DER SubjectPublicKeyInfo.
    let spki = run_ok(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -in '{}' -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r",
        ca.display()
    )));
    assert_eq!(
        format!("sha256:{}", &spki[..64]),
        rendered.pki.ca.cert_hash().unwrap()
    );
}

/// The etcd client and server certificates, with the etcd CA and the
/// cluster CA, under `etcd/` and `pki/`.
fn render_etcd_certificates(dir: &ScratchDir) -> (PathBuf, PathBuf) {
    let pki = pki();
    let client = pki
        .etcd_client_certificate(
            ETCD_CLIENT_NAME,
            now(),
            ETCD_CLIENT_VALIDITY,
            &mut seeded(20),
        )
        .unwrap();
    let server = pki
        .etcd_server_certificate(
            "cp-1",
            &["10.20.0.11".parse().unwrap()],
            now(),
            ADMIN_VALIDITY,
            &mut seeded(21),
        )
        .unwrap();
    dir.write("pki/etcd/ca.crt", &pki.etcd_ca.pair.cert_pem);
    dir.write("pki/ca.crt", &pki.ca.pair.cert_pem);
    dir.write("etcd/client.key", &client.key_pem);
    dir.write("etcd/server.key", &server.key_pem);
    (
        dir.write("etcd/client.crt", &client.cert_pem),
        dir.write("etcd/server.crt", &server.cert_pem),
    )
}

/// etcd (Go) verifies its clients against the etcd CA and clients verify
/// the server's IP SANs: the certificates pass OpenSSL's checks for
/// exactly those uses, and not against the cluster CA.
#[test]
fn openssl_verifies_etcd_certificates_against_the_etcd_ca_only() {
    if !OPENSSL.available() {
        return;
    }
    let dir = ScratchDir::new("openssl-etcd");
    let (client, server) = render_etcd_certificates(&dir);
    let etcd_ca = dir.path().join("pki/etcd/ca.crt");
    let cluster_ca = dir.path().join("pki/ca.crt");
    let verify = |ca: &Path, cert: &Path, purpose: &str, extra: &[&str]| {
        let mut command = OPENSSL.command();
        command
            .args(["verify", "-x509_strict", "-purpose", purpose])
            .args(["-attime", &at(0)])
            .args(extra)
            .arg("-CAfile")
            .arg(ca)
            .arg(cert);
        run(&mut command)
    };
    let ok = |outcome: super::external_tools::Outcome, what: &str| {
        assert!(outcome.success, "{what}: {}", outcome.output);
    };
    let refused = |outcome: super::external_tools::Outcome, what: &str| {
        assert!(!outcome.success, "{what} was accepted: {}", outcome.output);
    };
    ok(verify(&etcd_ca, &client, "sslclient", &[]), "client");
    refused(
        verify(&etcd_ca, &client, "sslserver", &[]),
        "client as server",
    );
    refused(
        verify(&cluster_ca, &client, "sslclient", &[]),
        "client via cluster CA",
    );
    for ip in ["10.20.0.11", "127.0.0.1", "::1"] {
        ok(
            verify(&etcd_ca, &server, "sslserver", &["-verify_ip", ip]),
            ip,
        );
    }
    ok(
        verify(
            &etcd_ca,
            &server,
            "sslserver",
            &["-verify_hostname", "cp-1"],
        ),
        "cp-1",
    );
    ok(
        verify(&etcd_ca, &server, "sslclient", &[]),
        "server as peer client",
    );
    refused(
        verify(
            &etcd_ca,
            &server,
            "sslserver",
            &["-verify_ip", "10.20.0.12"],
        ),
        "another node's address",
    );
    let subject = run_ok(
        OPENSSL
            .command()
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&client),
    );
    assert_eq!(subject.trim(), format!("subject=CN = {ETCD_CLIENT_NAME}"));
    let sans = run_ok(
        OPENSSL
            .command()
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&server),
    );
    assert!(
        sans.contains("DNS:cp-1, DNS:localhost, IP Address:10.20.0.11, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{sans}"
    );
}

/// Go's crypto/x509 (etcd's own parser) loads the etcd certificates and
/// keys as pairs and verifies both for client authentication against the
/// etcd CA (the server certificate doubles as the peer client).
#[test]
fn go_x509_loads_etcd_certificates() {
    let Some(checker) = x509check() else { return };
    let dir = ScratchDir::new("go-x509-etcd");
    let (client, server) = render_etcd_certificates(&dir);
    let outcome = run(Command::new(&checker)
        .arg("-ca")
        .arg(dir.path().join("pki/etcd/ca.crt"))
        .args(["-at", &at(0)])
        .arg(dir.path().join("etcd")));
    assert!(outcome.success, "{}", outcome.output);
    for cert in [&client, &server] {
        ok_line(&outcome.output, cert, &client_auth_at(0));
    }
    ok_line(
        &outcome.output,
        &dir.path().join("etcd/client.{crt,key}"),
        "tls.X509KeyPair",
    );
    let detail = ok_line(&outcome.output, &client, "x509.ParseCertificate");
    assert!(
        detail.starts_with(&format!(
            "subject=\"CN={ETCD_CLIENT_NAME}\" issuer=\"CN=etcd-ca\" ca=false"
        )),
        "{detail}"
    );
    assert_eq!(
        field(detail, "notAfter"),
        at(ETCD_CLIENT_VALIDITY.as_secs() as i64)
    );
}

/// A closed loopback port: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The admin kubeconfig for a cluster at `endpoint`, written to `dir`, for
/// the v1.30 admin group; `legacy` puts a key in the SEC1 form of earlier
/// versions in it.
fn write_kubeconfig(dir: &ScratchDir, endpoint: &str, legacy: bool) -> PathBuf {
    let pki = pki();
    let mut admin = pki
        .admin_certificate(
            ADMIN_USER,
            &version("v1.30.2"),
            now(),
            ADMIN_VALIDITY,
            &mut seeded(9),
        )
        .unwrap();
    if legacy {
        admin.key_pem = legacy_sec1_pem(&admin.key_pem);
    }
    let cluster = ClusterName::new("demo").unwrap();
    let text = render_admin_kubeconfig(&cluster, endpoint, &pki, &admin);
    dir.write(
        if legacy {
            "legacy.kubeconfig"
        } else {
            "admin.kubeconfig"
        },
        &text,
    )
}

/// kubectl reads vkube's kubeconfig and its key and gets as far as dialing
/// the API server (a closed port here); never a parse error.
#[test]
fn kubectl_loads_the_admin_kubeconfig() {
    if !KUBECTL.available() {
        return;
    }
    let dir = ScratchDir::new("kubectl");
    let endpoint = format!("127.0.0.1:{}", closed_port());
    let kubectl = |kubeconfig: &Path| {
        let mut command = KUBECTL.command();
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["get", "--raw", "/", "--request-timeout=2s"])
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG");
        for proxy in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            command.env_remove(proxy);
        }
        run(&mut command)
    };
    let parse_errors = [
        "failed to parse private key",
        "error loading config",
        "tls:",
        "unable to load",
    ];

    let outcome = kubectl(&write_kubeconfig(&dir, &endpoint, false));
    assert!(
        !outcome.success,
        "nothing listens on {endpoint}: {}",
        outcome.output
    );
    // kubectl words a refused dial as "The connection to the server
    // HOST:PORT was refused"; with -v it shows Go's "dial tcp ...:
    // connect: connection refused".
    let refused = format!("The connection to the server {endpoint} was refused");
    assert!(
        [refused.as_str(), "connection refused", "dial tcp"]
            .iter()
            .any(|error| outcome.output.contains(error)),
        "{}",
        outcome.output
    );
    for error in parse_errors {
        assert!(
            !outcome.output.contains(error),
            "{error}: {}",
            outcome.output
        );
    }

    // The same check fails on the key format of earlier versions.
    let legacy = kubectl(&write_kubeconfig(&dir, &endpoint, true));
    assert!(
        !legacy.success && legacy.output.contains("failed to parse private key"),
        "{}",
        legacy.output
    );
}

/// Go loads the kubeconfig's credentials as client-go does (CA pool and
/// tls.X509KeyPair) and the client certificate verifies against the CA.
#[test]
fn go_loads_the_admin_kubeconfig_like_client_go() {
    let Some(checker) = x509check() else { return };
    let dir = ScratchDir::new("go-kubeconfig");
    let kubeconfig = write_kubeconfig(&dir, "10.20.0.5:6443", false);
    let check = |file: &Path| {
        run(Command::new(&checker)
            .args(["-at", &at(0), "-kubeconfig"])
            .arg(file))
    };
    let outcome = check(&kubeconfig);
    assert!(
        outcome.success && !outcome.output.contains("FAIL"),
        "{}",
        outcome.output
    );
    ok_line(&outcome.output, &kubeconfig, "kubeconfig");
    let detail = ok_line(&outcome.output, &kubeconfig, "tls.X509KeyPair");
    assert!(
        detail.starts_with(&format!(
            "subject=\"CN={ADMIN_USER},O=kubeadm:cluster-admins\""
        )),
        "{detail}"
    );
    ok_line(&outcome.output, &kubeconfig, &client_auth_at(0));

    let legacy = check(&write_kubeconfig(&dir, "10.20.0.5:6443", true));
    assert!(
        !legacy.success && legacy.output.contains("tls.X509KeyPair"),
        "{}",
        legacy.output
    );
    // The key spelling of earlier versions is refused too.
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let misspelt = dir.write(
        "misspelt.kubeconfig",
        &text.replace("apiVersion:", "api-version:"),
    );
    let outcome = check(&misspelt);
    assert!(
        !outcome.success && outcome.output.contains("apiVersion"),
        "{}",
        outcome.output
    );
}
