//! Test key material: a cluster CA, a server certificate for 127.0.0.1 and an admin client
//! certificate, all EC P-256 with PKCS#8 keys — what a kubeadm cluster and vkube's admin
//! kubeconfig use.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use vkube_kube::ClusterAccess;

/// A certificate with its key, as PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
}

/// A CA that can issue server and client certificates.
pub struct TestCa {
    pub cert_pem: String,
    pub key_pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert,
            key,
        }
    }

    /// A kube-apiserver serving certificate for `127.0.0.1` and the usual service names.
    pub fn server(&self) -> Issued {
        let names = vec![
            "kubernetes".to_string(),
            "kubernetes.default.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate like kubeadm's admin.conf: CN and organisation (group).
    pub fn client(&self, common_name: &str, organization: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Issued {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The material of one test cluster.
pub struct TestPki {
    pub ca: TestCa,
    pub server: Issued,
    pub admin: Issued,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca = TestCa::new("kubernetes");
        let server = ca.server();
        let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
        TestPki { ca, server, admin }
    }

    /// Access to `endpoint` as the admin.
    pub fn admin_access(&self, endpoint: &str) -> ClusterAccess {
        ClusterAccess {
            endpoint: endpoint.to_string(),
            ca_pem: self.ca.cert_pem.clone(),
            client_cert_pem: self.admin.cert_pem.clone(),
            client_key_pem: self.admin.key_pem.clone(),
            timeout: Duration::from_secs(5),
        }
    }
}
