//! Reading certificates: the subject, subject key identifier and public key of a CA the test
//! supplies, and the subject of a client certificate (the user and groups the API server would
//! authenticate).

use rcgen::TeletexString;
use rcgen::{BmpString, DistinguishedName, DnType, DnValue, Ia5String, PrintableString};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::Name;

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const LOCALITY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
const STATE_OR_PROVINCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.8");
const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const ORGANIZATIONAL_UNIT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// What the stand-in needs to know of a certificate.
pub(crate) struct ParsedCertificate {
    /// The subject, DER-encoded as in the certificate.
    pub subject_der: Vec<u8>,
    /// The subject, decoded.
    pub subject: Name,
    /// The subject key identifier extension's value, if present.
    pub subject_key_id: Option<Vec<u8>>,
    /// The subject public key (for EC keys, the encoded point).
    pub public_key: Vec<u8>,
}

/// Parses a DER certificate.
pub(crate) fn parse(der: &[u8]) -> Result<ParsedCertificate, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
    let tbs = cert.tbs_certificate;
    let subject_key_id = tbs
        .extensions
        .iter()
        .flatten()
        .find(|ext| ext.extn_id == SUBJECT_KEY_IDENTIFIER)
        .map(|ext| {
            SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .map(|id| id.0.as_bytes().to_vec())
                .map_err(|e| format!("unreadable subject key identifier: {e}"))
        })
        .transpose()?;
    Ok(ParsedCertificate {
        subject_der: tbs.subject.to_der().map_err(|e| e.to_string())?,
        public_key: tbs
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec(),
        subject: tbs.subject,
        subject_key_id,
    })
}

/// The common name and organisations of a subject: for a client certificate, the user name and
/// groups kube-apiserver's x509 authenticator derives from it.
pub(crate) fn user_and_groups(subject: &Name) -> (Option<String>, Vec<String>) {
    let mut common_name = None;
    let mut organizations = Vec::new();
    for attribute in subject.0.iter().flat_map(|rdn| rdn.0.iter()) {
        if attribute.oid == COMMON_NAME && common_name.is_none() {
            common_name = text(&attribute.value);
        } else if attribute.oid == ORGANIZATION {
            organizations.extend(text(&attribute.value));
        }
    }
    (common_name, organizations)
}

/// `subject` as rcgen writes it: one attribute per RDN, each with the string type it had, so
/// certificates issued by rcgen name the issuer with exactly the bytes of the CA's subject
/// (clients match issuer and subject byte for byte when building the chain).
pub(crate) fn rcgen_name(subject: &Name) -> Result<DistinguishedName, String> {
    let mut name = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in &subject.0 {
        let [attribute] = rdn.0.as_slice() else {
            return Err("a multi-valued RDN in the subject cannot be reproduced".into());
        };
        if seen.contains(&attribute.oid) {
            return Err(format!(
                "attribute {} appears twice in the subject, which rcgen cannot reproduce",
                attribute.oid
            ));
        }
        seen.push(attribute.oid);
        name.push(dn_type(attribute.oid), dn_value(&attribute.value)?);
    }
    Ok(name)
}

fn dn_type(oid: ObjectIdentifier) -> DnType {
    match oid {
        COMMON_NAME => DnType::CommonName,
        COUNTRY => DnType::CountryName,
        LOCALITY => DnType::LocalityName,
        STATE_OR_PROVINCE => DnType::StateOrProvinceName,
        ORGANIZATION => DnType::OrganizationName,
        ORGANIZATIONAL_UNIT => DnType::OrganizationalUnitName,
        other => DnType::CustomDnType(other.arcs().map(u64::from).collect()),
    }
}

fn dn_value(value: &Any) -> Result<DnValue, String> {
    let unsupported = || {
        format!(
            "a subject attribute of type {} cannot be reproduced",
            value.tag()
        )
    };
    let text = text(value).ok_or_else(unsupported)?;
    let bad = |e: rcgen::Error| format!("subject attribute {text:?}: {e}");
    Ok(match value.tag() {
        Tag::Utf8String => DnValue::Utf8String(text),
        Tag::PrintableString => {
            DnValue::PrintableString(PrintableString::try_from(text.as_str()).map_err(bad)?)
        }
        Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text.as_str()).map_err(bad)?),
        Tag::TeletexString => {
            DnValue::TeletexString(TeletexString::try_from(text.as_str()).map_err(bad)?)
        }
        Tag::BmpString => DnValue::BmpString(BmpString::try_from(text.as_str()).map_err(bad)?),
        _ => return Err(unsupported()),
    })
}

/// The text of a directory string, whatever its ASN.1 string type.
fn text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            String::from_utf8(value.value().to_vec()).ok()
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}
