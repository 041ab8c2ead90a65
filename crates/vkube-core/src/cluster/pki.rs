//! Cluster key material: the cluster CA, etcd CA and front-proxy CA that
//! vkube generates (so every control-plane node gets the same CAs and can
//! join), the service-account key pair, and admin client certificates.
//!
//! Pure: the caller passes random bytes in ([`RandomSource`]) and the time
//! (`not_before`). Keys are ECDSA P-256 scalars drawn from those bytes, and
//! signatures use RFC 6979 deterministic nonces, so the same bytes and time
//! always give the same PEM. kubeadm accepts ECDSA P-256 for every CA and
//! for `sa.key`. Storing the material (it is secret) is `vkube-store`'s job.

use std::time::{Duration, SystemTime};

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, RemoteKeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Error;
use super::spec::hex;
use super::values::ClusterName;

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
/// Common name of the cluster CA (kubeadm's).
pub const CLUSTER_CA_NAME: &str = "kubernetes";
/// Common name of the etcd CA (kubeadm's).
pub const ETCD_CA_NAME: &str = "etcd-ca";
/// Common name of the front-proxy CA (kubeadm's).
pub const FRONT_PROXY_CA_NAME: &str = "front-proxy-ca";

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

    /// Reads a PEM private key: SEC1 (`EC PRIVATE KEY`) or PKCS#8.
    pub fn from_pem(pem: &str, what: &str) -> Result<KeyPair, Error> {
        let bad = |reason: String| Error::KeyMaterial {
            what: what.to_owned(),
            reason,
        };
        let secret = if pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(pem).map_err(|e| bad(e.to_string()))?
        } else {
            p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| bad(e.to_string()))?
        };
        Ok(KeyPair {
            key: SigningKey::from(secret),
        })
    }

    /// The private key as SEC1 PEM (`EC PRIVATE KEY`), as kubeadm writes it.
    pub fn private_key_pem(&self) -> String {
        let secret = p256::SecretKey::from(self.key.clone());
        secret
            .to_sec1_pem(LineEnding::LF)
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

/// A certificate with its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAndKey {
    /// The certificate (`CERTIFICATE` PEM).
    pub cert_pem: String,
    /// The private key (`EC PRIVATE KEY` PEM).
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

    /// The CA as an rcgen issuer. Only the subject name, key identifier and
    /// key usages of the issuer end up in an issued certificate, so the CA
    /// certificate is rebuilt from its key instead of parsed.
    fn issuer(&self) -> Result<(rcgen::Certificate, rcgen::KeyPair), Error> {
        let key = KeyPair::from_pem(&self.pair.key_pem, &self.common_name)?;
        let params = ca_params(
            &self.common_name,
            &key,
            SystemTime::UNIX_EPOCH,
            SerialNumber::from_slice(&[1]),
        );
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

/// Everything a control plane shares: the three CAs and the
/// service-account signing key. Secret: store it encrypted or 0600.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPki {
    /// Cluster CA (`/etc/kubernetes/pki/ca.{crt,key}`).
    pub ca: CertificateAuthority,
    /// etcd CA (`/etc/kubernetes/pki/etcd/ca.{crt,key}`).
    pub etcd_ca: CertificateAuthority,
    /// Front-proxy CA (`/etc/kubernetes/pki/front-proxy-ca.{crt,key}`).
    pub front_proxy_ca: CertificateAuthority,
    /// Service-account signing key (`sa.key`, PEM).
    pub service_account_key_pem: String,
    /// Service-account public key (`sa.pub`, PEM).
    pub service_account_public_pem: String,
}

impl ClusterPki {
    /// Generates the CAs (valid ten years from `not_before`) and the
    /// service-account key for `cluster`. Pure: everything random comes
    /// from `random`; call it once per cluster and store the result.
    pub fn generate(
        cluster: &ClusterName,
        not_before: SystemTime,
        random: &mut dyn RandomSource,
    ) -> Result<ClusterPki, Error> {
        let _ = cluster; // kubeadm's CA names are fixed; the cluster shows in kubeconfigs.
        let mut ca = |name: &str| -> Result<CertificateAuthority, Error> {
            let key = KeyPair::generate(random);
            let serial = serial(random);
            let params = ca_params(name, &key, not_before, serial);
            let error = |source| Error::Certificate {
                what: name.to_owned(),
                source,
            };
            let cert = params
                .self_signed(&key.to_rcgen().map_err(error)?)
                .map_err(error)?;
            Ok(CertificateAuthority {
                common_name: name.to_owned(),
                pair: CertificateAndKey {
                    cert_pem: cert.pem(),
                    key_pem: key.private_key_pem(),
                },
            })
        };
        let cluster_ca = ca(CLUSTER_CA_NAME)?;
        let etcd_ca = ca(ETCD_CA_NAME)?;
        let front_proxy_ca = ca(FRONT_PROXY_CA_NAME)?;
        let service_account = KeyPair::generate(random);
        Ok(ClusterPki {
            ca: cluster_ca,
            etcd_ca,
            front_proxy_ca,
            service_account_key_pem: service_account.private_key_pem(),
            service_account_public_pem: service_account.public_key_pem(),
        })
    }

    /// A client certificate for `user` in group `system:masters`, signed by
    /// the cluster CA, valid for `validity` from `not_before`. Each call
    /// makes a new key from `random`.
    pub fn admin_certificate(
        &self,
        user: &str,
        not_before: SystemTime,
        validity: Duration,
        random: &mut dyn RandomSource,
    ) -> Result<CertificateAndKey, Error> {
        let (issuer, issuer_key) = self.ca.issuer()?;
        let key = KeyPair::generate(random);
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        // Group system:masters bypasses RBAC: this is a break-glass
        // credential that works before any binding exists.
        name.push(DnType::OrganizationName, "system:masters");
        name.push(DnType::CommonName, user);
        params.distinguished_name = name;
        params.not_before = to_time(not_before);
        params.not_after = to_time(not_before + validity);
        params.serial_number = Some(serial(random));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
        params.use_authority_key_identifier_extension = true;
        let error = |source| Error::Certificate {
            what: format!("admin `{user}`"),
            source,
        };
        let cert = params
            .signed_by(&key.to_rcgen().map_err(error)?, &issuer, &issuer_key)
            .map_err(error)?;
        Ok(CertificateAndKey {
            cert_pem: cert.pem(),
            key_pem: key.private_key_pem(),
        })
    }
}

fn ca_params(
    common_name: &str,
    key: &KeyPair,
    not_before: SystemTime,
    serial: SerialNumber,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = to_time(not_before);
    params.not_after = to_time(not_before + CA_VALIDITY);
    params.serial_number = Some(serial);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
    params
}

/// A positive 127-bit serial number (RFC 5280 allows up to 20 octets).
fn serial(random: &mut dyn RandomSource) -> SerialNumber {
    let mut bytes = [0u8; 16];
    random.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Certificates carry whole seconds.
fn to_time(at: SystemTime) -> time::OffsetDateTime {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
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

    pub(crate) fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    pub(crate) fn pki() -> ClusterPki {
        ClusterPki::generate(&ClusterName::new("demo").unwrap(), now(), &mut seeded(1)).unwrap()
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
        assert!(pki
            .ca
            .pair
            .cert_pem
            .starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pki
            .ca
            .pair
            .key_pem
            .starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(pki
            .service_account_public_pem
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = KeyPair::from_pem(&pki.ca.pair.key_pem, "ca.key").unwrap();
        assert_eq!(key.private_key_pem(), pki.ca.pair.key_pem);
        let hash = pki.ca.cert_hash().unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        assert!(KeyPair::from_pem("nonsense", "x").is_err());
        let json = serde_json::to_string(&pki).unwrap();
        assert_eq!(serde_json::from_str::<ClusterPki>(&json).unwrap(), pki);
    }

    /// Checks the certificates with openssl when it is installed: the admin
    /// certificate verifies against the CA, and the CA hash matches
    /// kubeadm's definition (SHA-256 of the DER SubjectPublicKeyInfo).
    #[test]
    fn openssl_verifies_chain_and_hash() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("note: openssl not installed, skipping certificate checks");
            return;
        }
        let pki = pki();
        let admin = pki
            .admin_certificate("vkube-admin", now(), ADMIN_VALIDITY, &mut seeded(3))
            .unwrap();
        let dir = std::env::temp_dir().join(format!("vkube-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.crt");
        let leaf = dir.join("admin.crt");
        std::fs::write(&ca, &pki.ca.pair.cert_pem).unwrap();
        std::fs::write(&leaf, &admin.cert_pem).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        // `-attime` pins the check to the certificates' validity window.
        let at = (1_750_000_000u64 + 3600).to_string();
        let verified = run(&[
            "verify",
            "-attime",
            &at,
            "-CAfile",
            ca.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ]);
        assert!(verified.contains(": OK"), "{verified}");
        let text = run(&[
            "x509",
            "-in",
            leaf.to_str().unwrap(),
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
        ]);
        assert!(
            text.contains("O = system:masters") && text.contains("CN = vkube-admin"),
            "{text}"
        );
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        let ca_text = run(&[
            "x509",
            "-in",
            ca.to_str().unwrap(),
            "-noout",
            "-subject",
            "-ext",
            "basicConstraints",
        ]);
        assert!(
            ca_text.contains("CN = kubernetes") && ca_text.contains("CA:TRUE"),
            "{ca_text}"
        );
        let spki = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r", ca.display()))
            .output()
            .unwrap();
        let digest = String::from_utf8(spki.stdout).unwrap();
        assert_eq!(
            format!("sha256:{}", &digest[..64]),
            pki.ca.cert_hash().unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
