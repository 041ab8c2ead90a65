//! Objects of the core `v1` API without pods: Namespace, ServiceAccount,
//! ConfigMap, Secret.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use super::meta::{Meta, Object};

/// Kinds without fields of their own (ServiceAccount, Namespace).
#[derive(Debug, Serialize)]
pub(crate) struct NoBody {}

/// `data` of a ConfigMap.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigMapBody {
    data: BTreeMap<String, String>,
}

/// An opaque Secret. `data` (base64), not `stringData`: a key dropped from
/// a later version is then also dropped by `kubectl apply`. No `Debug`: it
/// holds credentials.
#[derive(Serialize)]
pub(crate) struct SecretBody {
    #[serde(rename = "type")]
    kind: &'static str,
    data: BTreeMap<String, String>,
}

/// A Namespace.
pub(crate) fn namespace(meta: Meta) -> Object<NoBody> {
    Object::new("v1", "Namespace", meta, NoBody {})
}

/// A ServiceAccount.
pub(crate) fn service_account(meta: Meta) -> Object<NoBody> {
    Object::new("v1", "ServiceAccount", meta, NoBody {})
}

/// A ConfigMap with string `data`.
pub(crate) fn config_map<K, V>(
    meta: Meta,
    data: impl IntoIterator<Item = (K, V)>,
) -> Object<ConfigMapBody>
where
    K: Into<String>,
    V: Into<String>,
{
    let data = data
        .into_iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    Object::new("v1", "ConfigMap", meta, ConfigMapBody { data })
}

/// An opaque Secret holding `data` (plain values; encoded here).
pub(crate) fn secret(meta: Meta, data: &BTreeMap<String, String>) -> Object<SecretBody> {
    let data = data
        .iter()
        .map(|(key, value)| (key.clone(), STANDARD.encode(value)))
        .collect();
    Object::new(
        "v1",
        "Secret",
        meta,
        SecretBody {
            kind: "Opaque",
            data,
        },
    )
}
