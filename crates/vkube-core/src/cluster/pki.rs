//! Cluster key material: the cluster CA, etcd CA and front-proxy CA that
//! vkube generates (so every control-plane node gets the same CAs and can
//! join), the service-account key pair, and admin client certificates.
//!
//! Pure: the caller passes random bytes in ([`RandomSource`]) and the time
//! of issue. Keys are ECDSA P-256 scalars drawn from those bytes, and
//! signatures use RFC 6979 deterministic nonces, so the same bytes and time
//! always give the same PEM. Storing the material (it is secret) is
//! `vkube-store`'s job.
//!
//! What kubeadm expects of pre-placed CAs (`/etc/kubernetes/pki/{ca,
//! front-proxy-ca,etcd/ca}.{crt,key}`, see [`ClusterPki::kubeadm_files`]):
//! a certificate with basic constraints `CA:TRUE`, the `keyCertSign` key
//! usage and a subject key identifier, valid now by the node's clock, and a
//! private key that Go's `crypto/x509` reads; ECDSA P-256 is accepted for
//! every CA and for `sa.key` (kube-controller-manager's
//! `--service-account-private-key-file` reads PKCS#8 and SEC1 EC keys,
//! kube-apiserver's `--service-account-key-file` a PKIX `sa.pub`). Every
//! private key is written as PKCS#8 (`PRIVATE KEY`), which carries the curve
//! in its algorithm identifier.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, RemoteKeyPair, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::error::Error;
use super::spec::hex;
use super::values::{ClusterName, KubernetesVersion};

/// Where random bytes come from. Implemented for any `FnMut(&mut [u8])`,
/// e.g. `&mut |buf: &mut [u8]| getrandom::fill(buf).unwrap()` in the CLI,
/// or a fixed sequence in tests.
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// How long the CAs are valid: kubeadm's default of ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default validity of an admin client certificate: one year.
pub const ADMIN_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Common name of the etcd client certificates vkube issues for itself.
pub const ETCD_CLIENT_NAME: &str = "vkube-etcd-client";
/// Validity of an etcd client certificate: one hour. It grants full
/// access to etcd, so vkube issues one per membership operation.
pub const ETCD_CLIENT_VALIDITY: Duration = Duration::from_secs(3600);
/// How far `NotBefore` of the CAs and admin certificates lies before the
/// time of issue. The time comes from the machine running vkube, but the
/// certificates are checked by the guests (kubeadm refuses a CA that is
/// "not yet valid") and by the API server, whose clocks may be behind: an
/// ESXi host without NTP drifts by minutes, and a freshly cloned guest runs
/// on that clock until NTP or VMware Tools correct it. kubeadm backdates
/// its own certificates by five minutes, assuming synchronised nodes; one
/// hour also covers unsynchronised hosts while the dates still read as
/// "issued now". A larger margin would buy nothing: nodes further apart
/// than kubeadm's five minutes reject each other's kubeadm-issued
/// certificates anyway. Backdating costs no security: the key did not
/// exist before the time of issue, and `NotAfter` stays relative to it.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(3600);
/// Common name of the cluster CA (kubeadm's).
pub const CLUSTER_CA_NAME: &str = "kubernetes";
/// Common name of the etcd CA (kubeadm's).
pub const ETCD_CA_NAME: &str = "etcd-ca";
/// Common name of the front-proxy CA (kubeadm's).
pub const FRONT_PROXY_CA_NAME: &str = "front-proxy-ca";
/// Admin group from Kubernetes 1.29 on: `kubeadm init` binds it to the
/// `cluster-admin` ClusterRole (ClusterRoleBinding `kubeadm:cluster-admins`),
/// so the access can be revoked by deleting that binding.
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";
/// Admin group before Kubernetes 1.29: `system:masters`, which bypasses
/// RBAC and cannot be revoked short of replacing the CA.
pub const LEGACY_ADMIN_GROUP: &str = "system:masters";
/// First minor release of Kubernetes 1 whose kubeadm creates the
/// [`ADMIN_GROUP`] binding.
pub const ADMIN_GROUP_SINCE_MINOR: u64 = 29;

/// The group an admin client certificate carries for a cluster running
/// `version`: [`ADMIN_GROUP`] from 1.29 on, [`LEGACY_ADMIN_GROUP`] before.
pub fn admin_group(version: &KubernetesVersion) -> &'static str {
    if (version.major(), version.minor()) >= (1, ADMIN_GROUP_SINCE_MINOR) {
        ADMIN_GROUP
    } else {
        LEGACY_ADMIN_GROUP
    }
}

/// An ECDSA P-256 key pair.
#[derive(Clone)]
pub struct KeyPair {
    key: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(P-256, secret hidden)")
    }
}

impl PartialEq for KeyPair {
    fn eq(&self, other: &KeyPair) -> bool {
        self.key == other.key
    }
}

impl Eq for KeyPair {}

impl KeyPair {
    /// A new key from `random`: 32 bytes, redrawn in the (2^-32 likely)
    /// case they are not a valid scalar.
    pub fn generate(random: &mut dyn RandomSource) -> KeyPair {
        loop {
            let mut bytes = [0u8; 32];
            random.fill_bytes(&mut bytes);
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return KeyPair { key };
            }
        }
    }

    /// Reads a P-256 private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`, with or without the curve parameter; vkube before
    /// PKCS#8 wrote it without). `KeyPair::from_pem(old)?.private_key_pem()`
    /// turns any of them into PKCS#8. `what` names the key in the error.
    pub fn from_pem(pem: &str, what: &str) -> Result<KeyPair, Error> {
        let bad = |reason: String| Error::KeyMaterial {
            what: what.to_owned(),
            reason,
        };
        let secret = if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(pem).map_err(|e| bad(format!("SEC1 PEM: {e}")))?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| bad(format!("PKCS#8 PEM: {e}")))?
        } else {
            return Err(bad(
                "not a PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1)".to_owned(),
            ));
        };
        Ok(KeyPair {
            key: SigningKey::from(secret),
        })
    }

    /// The private key as PKCS#8 PEM (`PRIVATE KEY`), which names the curve
    /// in its algorithm identifier. kubeadm, kube-apiserver,
    /// kube-controller-manager, kubectl (Go's `x509.ParsePKCS8PrivateKey`)
    /// and OpenSSL all read it. (SEC1 as `p256` writes it leaves the curve
    /// out, and Go then fails with `x509: unknown elliptic curve`.)
    pub fn private_key_pem(&self) -> String {
        p256::SecretKey::from(self.key.clone())
            .to_pkcs8_pem(LineEnding::LF)
            .expect("P-256 key encodes")
            .to_string()
    }

    /// The public key as SubjectPublicKeyInfo PEM (`PUBLIC KEY`), as in `sa.pub`.
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("P-256 key encodes")
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .expect("P-256 key encodes")
            .into_vec()
    }

    /// kubeadm's `caCertHashes` entry for a CA with this key:
    /// `sha256:` and the hex SHA-256 of the SubjectPublicKeyInfo.
    pub fn spki_hash(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.public_key_der())))
    }

    fn point(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// RFC 7093 method 1 key identifier: SHA-256 of the public key, 160 bits.
    fn key_id(&self) -> Vec<u8> {
        Sha256::digest(self.point())[..20].to_vec()
    }

    fn to_rcgen(&self) -> Result<rcgen::KeyPair, rcgen::Error> {
        rcgen::KeyPair::from_remote(Box::new(Rfc6979Signer {
            key: self.key.clone(),
            point: self.point(),
        }))
    }
}

/// rcgen's signing hook: deterministic ECDSA instead of a crypto backend
/// with its own randomness.
struct Rfc6979Signer {
    key: SigningKey,
    point: Vec<u8>,
}

impl RemoteKeyPair for Rfc6979Signer {
    fn public_key(&self) -> &[u8] {
        &self.point
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// Reads a stored private key PEM and returns it as PKCS#8, so key
/// material stored by earlier vkube versions (SEC1 without the curve,
/// unreadable by Go) is written out in the readable form from then on.
fn normalized_key_pem<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let pem = String::deserialize(deserializer)?;
    KeyPair::from_pem(&pem, "stored private key")
        .map(|key| key.private_key_pem())
        .map_err(serde::de::Error::custom)
}

/// A certificate with its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAndKey {
    /// The certificate (`CERTIFICATE` PEM).
    pub cert_pem: String,
    /// The private key (`PRIVATE KEY` PEM, PKCS#8; a stored SEC1 key is
    /// converted when read).
    #[serde(deserialize_with = "normalized_key_pem")]
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A certificate authority: its common name (needed to sign with it again)
/// plus certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    /// Subject common name, e.g. `kubernetes`.
    pub common_name: String,
    /// Certificate and key.
    #[serde(flatten)]
    pub pair: CertificateAndKey,
}

impl CertificateAuthority {
    /// kubeadm's `caCertHashes` entry for this CA.
    pub fn cert_hash(&self) -> Result<String, Error> {
        Ok(KeyPair::from_pem(&self.pair.key_pem, &self.common_name)?.spki_hash())
    }

    /// A new self-signed CA named `common_name` (see [`ca_params`]).
    fn generate(
        common_name: &str,
        issued_at: SystemTime,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAuthority, Error> {
        let key = KeyPair::generate(random);
        let mut params = ca_params(common_name, &key);
        params.serial_number = Some(serial(random));
        (params.not_before, params.not_after) = validity_window(issued_at, CA_VALIDITY);
        let error = |source| Error::Certificate {
            what: common_name.to_owned(),
            source,
        };
        let cert = params
            .self_signed(&key.to_rcgen().map_err(error)?)
            .map_err(error)?;
        Ok(CertificateAuthority {
            common_name: common_name.to_owned(),
            pair: CertificateAndKey {
                cert_pem: cert.pem(),
                key_pem: key.private_key_pem(),
            },
        })
    }

    /// The CA as an rcgen issuer. Only the subject name, key identifier and
    /// key usages of the issuer end up in an issued certificate, so the CA
    /// certificate is rebuilt from its key instead of parsed.
    fn issuer(&self) -> Result<(rcgen::Certificate, rcgen::KeyPair), Error> {
        let key = KeyPair::from_pem(&self.pair.key_pem, &self.common_name)?;
        let mut params = ca_params(&self.common_name, &key);
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        let rcgen_key = key.to_rcgen().map_err(|source| self.cert_error(source))?;
        let cert = params
            .self_signed(&rcgen_key)
            .map_err(|source| self.cert_error(source))?;
        Ok((cert, rcgen_key))
    }

    fn cert_error(&self, source: rcgen::Error) -> Error {
        Error::Certificate {
            what: self.common_name.clone(),
            source,
        }
    }
}

/// One file of kubeadm's PKI directory (`/etc/kubernetes/pki`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PkiFile<'a> {
    /// Path relative to the PKI directory, e.g. `etcd/ca.key`.
    pub path: &'static str,
    /// PEM contents.
    pub pem: &'a str,
    /// File mode: 0600 for private keys, 0644 otherwise.
    pub mode: u32,
}

impl std::fmt::Debug for PkiFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish_non_exhaustive()
    }
}

/// Everything a control plane shares: the three CAs and the
/// service-account signing key. Secret: store it encrypted or 0600.
///
/// Deserializing converts stored SEC1 keys to PKCS#8 (see
/// [`KeyPair::from_pem`]), so state written by earlier versions renders
/// readable keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPki {
    /// Cluster CA (`/etc/kubernetes/pki/ca.{crt,key}`).
    pub ca: CertificateAuthority,
    /// etcd CA (`/etc/kubernetes/pki/etcd/ca.{crt,key}`).
    pub etcd_ca: CertificateAuthority,
    /// Front-proxy CA (`/etc/kubernetes/pki/front-proxy-ca.{crt,key}`).
    pub front_proxy_ca: CertificateAuthority,
    /// Service-account signing key (`sa.key`, PKCS#8 PEM).
    #[serde(deserialize_with = "normalized_key_pem")]
    pub service_account_key_pem: String,
    /// Service-account public key (`sa.pub`, SubjectPublicKeyInfo PEM).
    pub service_account_public_pem: String,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("ca", &self.ca)
            .field("etcd_ca", &self.etcd_ca)
            .field("front_proxy_ca", &self.front_proxy_ca)
            .field(
                "service_account_public_pem",
                &self.service_account_public_pem,
            )
            .finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Generates the CAs and the service-account key for `cluster`. The CAs
    /// are valid from [`NOT_BEFORE_BACKDATE`] before `issued_at` until
    /// [`CA_VALIDITY`] after it. Pure: everything random comes from
    /// `random`; call it once per cluster and store the result.
    pub fn generate(
        cluster: &ClusterName,
        issued_at: SystemTime,
        random: &mut dyn RandomSource,
    ) -> Result<ClusterPki, Error> {
        let _ = cluster; // kubeadm's CA names are fixed; the cluster shows in kubeconfigs.
        let ca = CertificateAuthority::generate(CLUSTER_CA_NAME, issued_at, random)?;
        let etcd_ca = CertificateAuthority::generate(ETCD_CA_NAME, issued_at, random)?;
        let front_proxy_ca =
            CertificateAuthority::generate(FRONT_PROXY_CA_NAME, issued_at, random)?;
        let service_account = KeyPair::generate(random);
        Ok(ClusterPki {
            ca,
            etcd_ca,
            front_proxy_ca,
            service_account_key_pem: service_account.private_key_pem(),
            service_account_public_pem: service_account.public_key_pem(),
        })
    }

    /// The files kubeadm expects in `/etc/kubernetes/pki` when the CAs are
    /// placed before `kubeadm init` or `kubeadm join --control-plane`.
    pub fn kubeadm_files(&self) -> [PkiFile<'_>; 8] {
        fn file<'a>(path: &'static str, pem: &'a str, mode: u32) -> PkiFile<'a> {
            PkiFile { path, pem, mode }
        }
        [
            file("ca.crt", &self.ca.pair.cert_pem, 0o644),
            file("ca.key", &self.ca.pair.key_pem, 0o600),
            file("etcd/ca.crt", &self.etcd_ca.pair.cert_pem, 0o644),
            file("etcd/ca.key", &self.etcd_ca.pair.key_pem, 0o600),
            file(
                "front-proxy-ca.crt",
                &self.front_proxy_ca.pair.cert_pem,
                0o644,
            ),
            file(
                "front-proxy-ca.key",
                &self.front_proxy_ca.pair.key_pem,
                0o600,
            ),
            file("sa.key", &self.service_account_key_pem, 0o600),
            file("sa.pub", &self.service_account_public_pem, 0o644),
        ]
    }

    /// A client certificate for `user` in the admin group of `version`
    /// ([`admin_group`]: `kubeadm:cluster-admins` from 1.29 on,
    /// `system:masters` before), signed by the cluster CA, valid from
    /// [`NOT_BEFORE_BACKDATE`] before `issued_at` until `validity` after
    /// it. Each call makes a new key from `random`.
    pub fn admin_certificate(
        &self,
        user: &str,
        version: &KubernetesVersion,
        issued_at: SystemTime,
        validity: Duration,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAndKey, Error> {
        let request = LeafRequest {
            organizations: &[admin_group(version)],
            ..LeafRequest::client(user)
        };
        self.ca.issue(&request, issued_at, validity, random)
    }

    /// A client certificate for etcd, signed by the etcd CA: what vkube
    /// presents to reach etcd's client port (kubeadm's etcd runs with
    /// `--client-cert-auth` and trusts exactly the etcd CA). CN
    /// `common_name` (e.g. [`ETCD_CLIENT_NAME`]), no group: kubeadm's etcd
    /// has no authentication of its own enabled, so the certificate alone
    /// grants full access; keep `validity` short ([`ETCD_CLIENT_VALIDITY`]).
    pub fn etcd_client_certificate(
        &self,
        common_name: &str,
        issued_at: SystemTime,
        validity: Duration,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAndKey, Error> {
        self.etcd_ca.issue(
            &LeafRequest::client(common_name),
            issued_at,
            validity,
            random,
        )
    }

    /// A serving certificate for the etcd member on `node`, signed by the
    /// etcd CA and shaped like kubeadm's `etcd/server.crt` (also usable as
    /// `etcd/peer.crt`): CN `node`, DNS names `node` and `localhost`, IP
    /// addresses `ips` plus `127.0.0.1` and `::1`, server and client
    /// authentication (etcd members dial each other with it). vkube lets
    /// kubeadm issue these on the nodes; tests use it to run a real etcd.
    pub fn etcd_server_certificate(
        &self,
        node: &str,
        ips: &[IpAddr],
        issued_at: SystemTime,
        validity: Duration,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAndKey, Error> {
        let mut addresses = ips.to_vec();
        for loopback in [
            IpAddr::from(Ipv4Addr::LOCALHOST),
            Ipv6Addr::LOCALHOST.into(),
        ] {
            if !addresses.contains(&loopback) {
                addresses.push(loopback);
            }
        }
        let request = LeafRequest {
            common_name: node,
            organizations: &[],
            dns_names: &[node, "localhost"],
            ip_addresses: &addresses,
            usage: CertificateUsage::ServerAndClient,
        };
        self.etcd_ca.issue(&request, issued_at, validity, random)
    }
}

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateUsage {
    /// TLS client authentication.
    Client,
    /// TLS server authentication.
    Server,
    /// Both, as etcd's server and peer certificates carry.
    ServerAndClient,
}

/// A leaf certificate to issue from a [`CertificateAuthority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRequest<'a> {
    /// Subject common name (the user name for client certificates).
    pub common_name: &'a str,
    /// Subject organisations (the groups for Kubernetes client
    /// certificates), in order.
    pub organizations: &'a [&'a str],
    /// DNS subject alternative names.
    pub dns_names: &'a [&'a str],
    /// IP address subject alternative names.
    pub ip_addresses: &'a [IpAddr],
    /// Extended key usage.
    pub usage: CertificateUsage,
}

impl<'a> LeafRequest<'a> {
    /// A client certificate for `common_name`, without groups or names.
    pub fn client(common_name: &'a str) -> LeafRequest<'a> {
        LeafRequest {
            common_name,
            organizations: &[],
            dns_names: &[],
            ip_addresses: &[],
            usage: CertificateUsage::Client,
        }
    }
}

impl CertificateAuthority {
    /// Issues `request` with a new key from `random`, valid from
    /// [`NOT_BEFORE_BACKDATE`] before `issued_at` until `validity` after
    /// it: not a CA, `digitalSignature` (the only key usage an ECDSA key
    /// has in TLS), the request's extended key usage, subject and
    /// authority key identifiers, a random 127-bit serial. Pure, like
    /// everything here.
    pub fn issue(
        &self,
        request: &LeafRequest<'_>,
        issued_at: SystemTime,
        validity: Duration,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAndKey, Error> {
        let what = || format!("`{}` from CA `{}`", request.common_name, self.common_name);
        let error = |source| Error::Certificate {
            what: what(),
            source,
        };
        let (issuer, issuer_key) = self.issuer()?;
        let key = KeyPair::generate(random);
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for organization in request.organizations {
            name.push(DnType::OrganizationName, *organization);
        }
        name.push(DnType::CommonName, request.common_name);
        params.distinguished_name = name;
        params.subject_alt_names = request
            .dns_names
            .iter()
            .map(|dns| {
                rcgen::Ia5String::try_from(*dns)
                    .map(SanType::DnsName)
                    .map_err(error)
            })
            .collect::<Result<_, _>>()?;
        params.subject_alt_names.extend(
            request
                .ip_addresses
                .iter()
                .map(|ip| SanType::IpAddress(*ip)),
        );
        (params.not_before, params.not_after) = validity_window(issued_at, validity);
        params.serial_number = Some(serial(random));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match request.usage {
            CertificateUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            CertificateUsage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            CertificateUsage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key.to_rcgen().map_err(error)?, &issuer, &issuer_key)
            .map_err(error)?;
        Ok(CertificateAndKey {
            cert_pem: cert.pem(),
            key_pem: key.private_key_pem(),
        })
    }
}

/// A root CA's name and extensions, as kubeadm makes its own: basic
/// constraints `CA:TRUE` (critical, no path length, like kubeadm's),
/// `keyCertSign` (plus `digitalSignature` and `cRLSign`; key encipherment
/// has no meaning for an EC key), and a subject key identifier. Serial and
/// validity are the caller's.
fn ca_params(common_name: &str, key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
    params
}

/// `NotBefore` and `NotAfter` for a certificate issued at `issued_at`:
/// backdated by [`NOT_BEFORE_BACKDATE`], ending `validity` after `issued_at`.
fn validity_window(
    issued_at: SystemTime,
    validity: Duration,
) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let not_before = issued_at
        .checked_sub(NOT_BEFORE_BACKDATE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let not_after = issued_at.checked_add(validity);
    (to_time(not_before), not_after.map_or(LATEST_TIME, to_time))
}

/// A positive 127-bit serial number (RFC 5280 allows up to 20 octets).
fn serial(random: &mut dyn RandomSource) -> SerialNumber {
    let mut bytes = [0u8; 16];
    random.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// RFC 5280's "no well-defined expiration date", 9999-12-31T23:59:59Z: the
/// latest time a certificate can carry.
const LATEST_TIME: time::OffsetDateTime =
    match time::OffsetDateTime::from_unix_timestamp(253_402_300_799) {
        Ok(latest) => latest,
        Err(_) => panic!("9999-12-31 is representable"),
    };

/// Certificates carry whole seconds, from 1970 (earlier clamps to it) to
/// [`LATEST_TIME`] (later clamps to it).
fn to_time(at: SystemTime) -> time::OffsetDateTime {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .map_or(LATEST_TIME, |at| at.min(LATEST_TIME))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic random source: a counter run through SHA-256.
    pub(crate) fn seeded(seed: u8) -> impl FnMut(&mut [u8]) {
        let mut counter = 0u64;
        move |dest: &mut [u8]| {
            for chunk in dest.chunks_mut(32) {
                counter += 1;
                let block = Sha256::digest([&[seed][..], &counter.to_le_bytes()].concat());
                chunk.copy_from_slice(&block[..chunk.len()]);
            }
        }
    }

    /// The time of issue in the tests.
    pub(crate) const NOW_UNIX: u64 = 1_750_000_000;

    pub(crate) fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
    }

    pub(crate) fn pki() -> ClusterPki {
        ClusterPki::generate(&ClusterName::new("demo").unwrap(), now(), &mut seeded(1)).unwrap()
    }

    pub(crate) fn version(text: &str) -> KubernetesVersion {
        crate::cluster::values::unchecked::parse(text)
    }

    /// The key as vkube wrote it before PKCS#8: SEC1 without the curve.
    pub(crate) fn legacy_sec1_pem(pem: &str) -> String {
        p256::SecretKey::from_pkcs8_pem(pem)
            .unwrap()
            .to_sec1_pem(LineEnding::LF)
            .unwrap()
            .to_string()
    }

    #[test]
    fn deterministic_for_the_same_bytes_and_time() {
        assert_eq!(pki(), pki());
        let other = ClusterPki::generate(&ClusterName::new("demo").unwrap(), now(), &mut seeded(2))
            .unwrap();
        assert_ne!(pki().ca, other.ca);
    }

    #[test]
    fn pem_shapes_and_round_trip() {
        let pki = pki();
        for file in pki.kubeadm_files() {
            let expected = match file.path.rsplit_once('.').unwrap().1 {
                "crt" => "-----BEGIN CERTIFICATE-----\n",
                "key" => "-----BEGIN PRIVATE KEY-----\n",
                _ => "-----BEGIN PUBLIC KEY-----\n",
            };
            assert!(
                file.pem.starts_with(expected),
                "{}: {}",
                file.path,
                file.pem
            );
            let private = file.path.ends_with(".key");
            assert_eq!(
                file.mode,
                if private { 0o600 } else { 0o644 },
                "{}",
                file.path
            );
            if private {
                let key = KeyPair::from_pem(file.pem, file.path).unwrap();
                assert_eq!(key.private_key_pem(), file.pem);
            }
        }
        let sa = KeyPair::from_pem(&pki.service_account_key_pem, "sa.key").unwrap();
        assert_eq!(sa.public_key_pem(), pki.service_account_public_pem);
        let hash = pki.ca.cert_hash().unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        let json = serde_json::to_string(&pki).unwrap();
        assert_eq!(serde_json::from_str::<ClusterPki>(&json).unwrap(), pki);
    }

    #[test]
    fn unreadable_keys_are_refused_by_name() {
        let error = KeyPair::from_pem("nonsense", "ca.key")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`ca.key`") && error.contains("PKCS#8"),
            "{error}"
        );
        let broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let error = KeyPair::from_pem(broken, "sa.key").unwrap_err().to_string();
        assert!(error.contains("`sa.key`"), "{error}");
        let json = serde_json::to_string(&pki()).unwrap().replacen(
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\\nAA",
            1,
        );
        let error = serde_json::from_str::<ClusterPki>(&json)
            .unwrap_err()
            .to_string();
        assert!(error.contains("stored private key"), "{error}");
    }

    /// State stored by earlier versions holds SEC1 keys without the curve:
    /// they are read, and come out as the same keys in PKCS#8.
    #[test]
    fn legacy_sec1_keys_are_read_as_pkcs8() {
        let pki = pki();
        let legacy = legacy_sec1_pem(&pki.ca.pair.key_pem);
        assert!(legacy.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let key = KeyPair::from_pem(&legacy, "ca.key").unwrap();
        assert_eq!(
            key,
            KeyPair::from_pem(&pki.ca.pair.key_pem, "ca.key").unwrap()
        );
        assert_eq!(key.private_key_pem(), pki.ca.pair.key_pem);

        let mut stored = pki.clone();
        for pem in [
            &mut stored.ca.pair.key_pem,
            &mut stored.etcd_ca.pair.key_pem,
            &mut stored.front_proxy_ca.pair.key_pem,
            &mut stored.service_account_key_pem,
        ] {
            *pem = legacy_sec1_pem(pem);
        }
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.contains("BEGIN EC PRIVATE KEY"));
        assert_eq!(serde_json::from_str::<ClusterPki>(&json).unwrap(), pki);
    }

    #[test]
    fn admin_group_follows_the_kubernetes_version() {
        for (text, group) in [
            ("v1.26.0", "system:masters"),
            ("v1.28.15", "system:masters"),
            ("v1.29.0", "kubeadm:cluster-admins"),
            ("v1.30.2", "kubeadm:cluster-admins"),
            ("v1.33.1", "kubeadm:cluster-admins"),
        ] {
            assert_eq!(admin_group(&version(text)), group, "{text}");
        }
    }

    #[test]
    fn validity_is_backdated_and_clamped() {
        let (not_before, not_after) = validity_window(now(), ADMIN_VALIDITY);
        assert_eq!(not_before.unix_timestamp() as u64, NOW_UNIX - 3600);
        assert_eq!(
            not_after.unix_timestamp() as u64,
            NOW_UNIX + ADMIN_VALIDITY.as_secs()
        );
        let (not_before, _) = validity_window(SystemTime::UNIX_EPOCH, ADMIN_VALIDITY);
        assert_eq!(not_before.unix_timestamp(), 0);
        let (_, not_after) = validity_window(now(), Duration::from_secs(u64::MAX / 4));
        assert_eq!(not_after, LATEST_TIME);
        assert_eq!(LATEST_TIME.year(), 9999);
    }

    #[test]
    fn etcd_certificates_come_from_the_etcd_ca_and_are_deterministic() {
        let pki = pki();
        let client = |seed| {
            pki.etcd_client_certificate(
                ETCD_CLIENT_NAME,
                now(),
                ETCD_CLIENT_VALIDITY,
                &mut seeded(seed),
            )
            .unwrap()
        };
        assert_eq!(client(4), client(4));
        assert_ne!(client(4), client(5));
        let ip: IpAddr = "10.20.0.11".parse().unwrap();
        let server = pki
            .etcd_server_certificate("cp-1", &[ip], now(), ADMIN_VALIDITY, &mut seeded(6))
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        // The key is the certificate's and readable as PKCS#8.
        KeyPair::from_pem(&server.key_pem, "etcd server key").unwrap();
    }

    #[test]
    fn names_a_certificate_cannot_carry_are_refused_naming_the_request() {
        let request = LeafRequest {
            dns_names: &["nöde"],
            ..LeafRequest::client("cp-1")
        };
        let error = pki()
            .etcd_ca
            .issue(&request, now(), ADMIN_VALIDITY, &mut seeded(7))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`cp-1` from CA `etcd-ca`"), "{error}");
    }

    #[test]
    fn debug_hides_keys() {
        let pki = pki();
        let admin = pki
            .admin_certificate(
                "vkube-admin",
                &version("v1.30.2"),
                now(),
                ADMIN_VALIDITY,
                &mut seeded(3),
            )
            .unwrap();
        let shown = format!("{pki:?} {admin:?} {:?}", pki.kubeadm_files());
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(
            shown.contains("etcd/ca.key") && shown.contains("600"),
            "{shown}"
        );
    }
}
