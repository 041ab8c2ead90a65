//! Key material for the stand-in: a CA generated for a test or supplied by it (the cluster CA
//! vkube generated), and the server and client certificates it issues. Everything is EC P-256
//! with PKCS#8 keys, as kubeadm clusters and vkube's admin kubeconfig use.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::x509;

/// Names kube-apiserver's serving certificate carries besides the node's addresses.
pub const KUBERNETES_SERVICE_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// How far certificates are backdated, so a clock a little behind still accepts them.
const BACKDATE: Duration = Duration::from_secs(3600);
/// Validity of issued server and client certificates (kubeadm's one year).
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Validity of a generated CA (kubeadm's ten years).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A certificate with its key, as PEM and DER. `Debug` leaves the key out.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A CA that issues server and client certificates: generated ([`TestCa::new`]) or the
/// test's own ([`TestCa::from_pem`]).
pub struct TestCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA's private key, PEM.
    pub key_pem: String,
    /// rcgen's handle on the CA for signing: its subject and key identifier match the CA's.
    signer: rcgen::Certificate,
    key: KeyPair,
    /// The CA's subject as encoded in its certificate: issued certificates must name it so.
    subject_der: Vec<u8>,
    /// Whether issued certificates carry an authority key identifier (the CA has a subject
    /// key identifier for it to match).
    authority_key_id: bool,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TestCa {
    /// A new self-signed CA with this common name, valid from an hour ago for ten years.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        set_ca_constraints(&mut params);
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        let subject_der = x509::parse(cert.der())
            .expect("rcgen writes readable certificates")
            .subject_der;
        TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            signer: cert,
            key,
            subject_der,
            authority_key_id: true,
        }
    }

    /// The CA in `cert_pem` (its first certificate) with its private key `key_pem` (PKCS#8
    /// or SEC1 PEM), e.g. the cluster CA vkube generated and stored. Panics, failing the
    /// test, when either does not parse, the key is not the certificate's, or the subject
    /// cannot be reproduced byte for byte in issued certificates.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> TestCa {
        Self::try_from_pem(cert_pem, key_pem)
            .unwrap_or_else(|reason| panic!("cannot use the supplied CA: {reason}"))
    }

    fn try_from_pem(cert_pem: &str, key_pem: &str) -> Result<TestCa, String> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
        let parsed = x509::parse(&der)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| format!("the CA key is not a PKCS#8 or SEC1 PEM key: {e}"))?;
        if key.public_key_raw() != parsed.public_key.as_slice() {
            return Err("the key does not belong to the CA certificate".into());
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = x509::rcgen_name(&parsed.subject)?;
        set_ca_constraints(&mut params);
        if let Some(id) = &parsed.subject_key_id {
            params.key_identifier_method = KeyIdMethod::PreSpecified(id.clone());
        }
        // Only a signing handle: its subject and key identifier are the CA's; the
        // certificate itself is never shown to anyone.
        let signer = params.self_signed(&key).map_err(|e| e.to_string())?;
        let ca = TestCa {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            signer,
            key,
            subject_der: parsed.subject_der,
            authority_key_id: parsed.subject_key_id.is_some(),
        };
        // Prove once that the issuer name comes out byte for byte.
        ca.try_issue(CertificateParams::default())?;
        Ok(ca)
    }

    /// A kube-apiserver serving certificate: `ips` and the in-cluster service names
    /// ([`KUBERNETES_SERVICE_NAMES`]) as subject alternative names, CN `kube-apiserver`.
    pub fn server_certificate(&self, ips: &[IpAddr]) -> Issued {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in KUBERNETES_SERVICE_NAMES {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.try_into().expect("a DNS name")));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate like kubeadm's admin.conf: the user as CN, the group as O.
    pub fn client(&self, common_name: &str, organization: &str) -> Issued {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        self.try_issue(params)
            .unwrap_or_else(|reason| panic!("cannot issue a certificate: {reason}"))
    }

    fn try_issue(&self, mut params: CertificateParams) -> Result<Issued, String> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = self.authority_key_id;
        set_validity(&mut params, LEAF_VALIDITY);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let cert = params
            .signed_by(&key, &self.signer, &self.key)
            .map_err(|e| e.to_string())?;
        let issuer = x509_issuer(cert.der())?;
        if issuer != self.subject_der {
            return Err("issued certificates would not name the CA's subject exactly".into());
        }
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn x509_issuer(der: &[u8]) -> Result<Vec<u8>, String> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    cert.tbs_certificate
        .issuer
        .to_der()
        .map_err(|e| e.to_string())
}

fn set_ca_constraints(params: &mut CertificateParams) {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + validity).into();
}
