//! A stand-in for kube-apiserver: HTTPS on a loopback port with a certificate from the test CA,
//! client certificates required (verified against a CA of the test's choice), serving the
//! recorded answers in `fixtures/` and behaving like the API server where the client relies
//! on it:
//!
//! - discovery per group version, including CRDs applied through it (served after a
//!   configurable number of further discovery requests, as establishing takes a moment);
//! - server-side apply: `PATCH` needs `application/apply-patch+yaml` (else the recorded 415)
//!   and a `fieldManager`; the body's apiVersion, kind, name and namespace must match the URL
//!   (else 400 as the server words it); namespaced objects need an existing namespace (else
//!   404 `namespaces "x" not found`); 201 on create, 200 on update, the object returned with
//!   uid, resourceVersion, creationTimestamp and managedFields;
//! - scripted failures (a recorded 403, 409, …) for one path, and a mode answering everything
//!   with one status (401).
//!
//! Every request is recorded (method, path, query, content type, body) for assertions, and so
//! is every client certificate presented.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pki::{Issued, TestPki};

const VERSION: &str = include_str!("../fixtures/version-1.30.json");
const DISCOVERY: [(&str, &str); 5] = [
    ("v1", include_str!("../fixtures/discovery-core-v1.json")),
    (
        "apps/v1",
        include_str!("../fixtures/discovery-apps-v1.json"),
    ),
    (
        "rbac.authorization.k8s.io/v1",
        include_str!("../fixtures/discovery-rbac.authorization.k8s.io-v1.json"),
    ),
    (
        "storage.k8s.io/v1",
        include_str!("../fixtures/discovery-storage.k8s.io-v1.json"),
    ),
    (
        "apiextensions.k8s.io/v1",
        include_str!("../fixtures/discovery-apiextensions.k8s.io-v1.json"),
    ),
];
pub const STATUS_403_FORBIDDEN: &str =
    include_str!("../fixtures/status-403-forbidden-clusterrole.json");
pub const STATUS_409_CONFLICT: &str =
    include_str!("../fixtures/status-409-conflict-configmap.json");
pub const STATUS_401_UNAUTHORIZED: &str = include_str!("../fixtures/status-401-unauthorized.json");
const STATUS_404_NOT_FOUND: &str = include_str!("../fixtures/status-404-not-found.json");
const STATUS_415_MEDIA_TYPE: &str =
    include_str!("../fixtures/status-415-unsupported-media-type.json");

const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[derive(Debug, Clone)]
struct Resource {
    plural: String,
    kind: String,
    namespaced: bool,
}

#[derive(Debug)]
struct Crd {
    group: String,
    versions: Vec<String>,
    resource: Resource,
    singular: String,
    has_status: bool,
    /// Discovery requests still answered 404 before the CRD counts as established.
    pending_polls: u32,
}

#[derive(Debug)]
struct Scripted {
    method: String,
    path: String,
    status: u16,
    body: String,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Recorded>,
    client_certificates: Vec<Vec<u8>>,
    handshake_failures: usize,
    builtin: HashMap<String, Vec<Resource>>,
    crds: Vec<Crd>,
    crd_establish_polls: u32,
    namespaces: BTreeSet<String>,
    objects: BTreeMap<String, Value>,
    scripted: Vec<Scripted>,
    answer_everything: Option<(u16, String)>,
    resource_version: u64,
}

/// The running stand-in; stops accepting when dropped.
pub struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl StandIn {
    /// A stand-in for the cluster of `pki`: its server certificate, its CA for clients.
    pub async fn start(pki: &TestPki) -> StandIn {
        Self::start_with(&pki.server, &pki.ca.cert_pem).await
    }

    /// A stand-in presenting `server` and accepting client certificates issued by
    /// `client_ca_pem`.
    pub async fn start_with(server: &Issued, client_ca_pem: &str) -> StandIn {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(server, client_ca_pem)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            builtin: builtin_resources(),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .into_iter()
                .map(str::to_string)
                .collect(),
            ..State::default()
        }));
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&accept_state);
                tokio::spawn(serve_connection(acceptor, tcp, state));
            }
        });
        StandIn {
            addr,
            state,
            accept,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests with this method whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// DER of every client certificate presented, one per TLS connection.
    pub fn client_certificates(&self) -> Vec<Vec<u8>> {
        self.lock().client_certificates.clone()
    }

    /// TLS handshakes the stand-in refused or that failed.
    pub fn handshake_failures(&self) -> usize {
        self.lock().handshake_failures
    }

    /// The stored object at an API path, as the last apply left it.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    /// CRDs applied from now on are served only after this many further discovery requests
    /// for their group version.
    pub fn set_crd_establish_polls(&self, polls: u32) {
        self.lock().crd_establish_polls = polls;
    }

    /// Answer `method path` with `status` and `body` (a recorded Status) from now on.
    pub fn fail(&self, method: &str, path: &str, status: u16, body: &str) {
        self.lock().scripted.push(Scripted {
            method: method.to_string(),
            path: path.to_string(),
            status,
            body: body.to_string(),
        });
    }

    /// Answer every request with `status` and `body`.
    pub fn answer_everything_with(&self, status: u16, body: &str) {
        self.lock().answer_everything = Some((status, body.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn server_config(server: &Issued, client_ca_pem: &str) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der.clone())],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            state.lock().unwrap().handshake_failures += 1;
            return;
        }
    };
    if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        state
            .lock()
            .unwrap()
            .client_certificates
            .push(cert.to_vec());
    }
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(state, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let mut state = state.lock().unwrap();
    state.requests.push(recorded.clone());
    let (status, body) = route(&mut state, &recorded);
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn builtin_resources() -> HashMap<String, Vec<Resource>> {
    DISCOVERY
        .iter()
        .map(|(group_version, body)| {
            let list: Value = serde_json::from_str(body).unwrap();
            let resources = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| !r["name"].as_str().unwrap().contains('/'))
                .map(|r| Resource {
                    plural: r["name"].as_str().unwrap().to_string(),
                    kind: r["kind"].as_str().unwrap().to_string(),
                    namespaced: r["namespaced"].as_bool().unwrap(),
                })
                .collect();
            (group_version.to_string(), resources)
        })
        .collect()
}

/// A `Status` failure body in the API server's shape.
fn status(code: u16, reason: &str, message: &str, details: Value) -> String {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    })
    .to_string()
}

fn bad_request(message: &str) -> (u16, String) {
    (400, status(400, "BadRequest", message, json!({})))
}

/// Where a request points: group version, and below it the resource path.
struct Target<'a> {
    group_version: String,
    rest: Vec<&'a str>,
}

fn parse_target(path: &str) -> Option<Target<'_>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", version, rest @ ..] => Some(Target {
            group_version: version.to_string(),
            rest: rest.to_vec(),
        }),
        ["apis", group, version, rest @ ..] => Some(Target {
            group_version: format!("{group}/{version}"),
            rest: rest.to_vec(),
        }),
        _ => None,
    }
}

fn route(state: &mut State, request: &Recorded) -> (u16, String) {
    if let Some((code, body)) = &state.answer_everything {
        return (*code, body.clone());
    }
    if let Some(scripted) = state
        .scripted
        .iter()
        .find(|s| s.method == request.method && s.path == request.path)
    {
        return (scripted.status, scripted.body.clone());
    }
    if request.method == "GET" && request.path == "/version" {
        return (200, VERSION.to_string());
    }
    let not_found = (404, STATUS_404_NOT_FOUND.to_string());
    let Some(target) = parse_target(&request.path) else {
        return not_found;
    };
    match (request.method.as_str(), target.rest.as_slice()) {
        ("GET", []) => discovery(state, &target.group_version).unwrap_or(not_found),
        ("PATCH", [plural, name]) => {
            apply(state, request, &target.group_version, None, plural, name)
        }
        ("PATCH", ["namespaces", ns, plural, name]) => apply(
            state,
            request,
            &target.group_version,
            Some(ns),
            plural,
            name,
        ),
        ("GET", [_, _] | ["namespaces", _, _, _]) => match state.objects.get(&request.path) {
            Some(object) => (200, object.to_string()),
            None => not_found,
        },
        _ => not_found,
    }
}

fn discovery(state: &mut State, group_version: &str) -> Option<(u16, String)> {
    if let Some(body) = DISCOVERY.iter().find(|(gv, _)| *gv == group_version) {
        return Some((200, body.1.to_string()));
    }
    let (group, version) = group_version.split_once('/')?;
    let mut served = Vec::new();
    for crd in state
        .crds
        .iter_mut()
        .filter(|c| c.group == group && c.versions.iter().any(|v| v == version))
    {
        if crd.pending_polls > 0 {
            crd.pending_polls -= 1;
            continue;
        }
        served.push(json!({
            "name": crd.resource.plural,
            "singularName": crd.singular,
            "namespaced": crd.resource.namespaced,
            "kind": crd.resource.kind,
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        }));
        if crd.has_status {
            served.push(json!({
                "name": format!("{}/status", crd.resource.plural),
                "singularName": "",
                "namespaced": crd.resource.namespaced,
                "kind": crd.resource.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if served.is_empty() {
        return None;
    }
    let list = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": served,
    });
    Some((200, list.to_string()))
}

fn find_resource(state: &State, group_version: &str, plural: &str) -> Option<Resource> {
    if let Some(found) = state
        .builtin
        .get(group_version)
        .and_then(|list| list.iter().find(|r| r.plural == plural))
    {
        return Some(found.clone());
    }
    let (group, version) = group_version.split_once('/')?;
    state
        .crds
        .iter()
        .find(|c| {
            c.pending_polls == 0
                && c.group == group
                && c.versions.iter().any(|v| v == version)
                && c.resource.plural == plural
        })
        .map(|c| c.resource.clone())
}

fn apply(
    state: &mut State,
    request: &Recorded,
    group_version: &str,
    namespace: Option<&str>,
    plural: &str,
    name: &str,
) -> (u16, String) {
    let Some(resource) = find_resource(state, group_version, plural) else {
        return (404, STATUS_404_NOT_FOUND.to_string());
    };
    if resource.namespaced != namespace.is_some() {
        return (404, STATUS_404_NOT_FOUND.to_string());
    }
    if request.content_type.as_deref() != Some(APPLY_PATCH) {
        return (415, STATUS_415_MEDIA_TYPE.to_string());
    }
    let query = request.query_pairs();
    let Some(field_manager) = query
        .iter()
        .find(|(k, _)| k == "fieldManager")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
    else {
        return bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
    };
    let Ok(mut object) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("error decoding YAML: the apply body is not a Kubernetes object");
    };
    if object["apiVersion"] != group_version || object["kind"] != resource.kind.as_str() {
        return bad_request(&format!(
            "the API version in the data ({}) does not match the expected API version ({group_version})",
            object["apiVersion"].as_str().unwrap_or("")
        ));
    }
    if object["metadata"]["name"] != name {
        return bad_request(&format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object["metadata"]["name"].as_str().unwrap_or("")
        ));
    }
    if let Some(ns) = namespace {
        match object["metadata"]["namespace"].as_str() {
            Some(body_ns) if body_ns != ns => {
                return bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            }
            _ => {}
        }
        if !state.namespaces.contains(ns) {
            return (
                404,
                status(
                    404,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    json!({"name": ns, "kind": "namespaces"}),
                ),
            );
        }
    }

    let previous = state.objects.get(&request.path).cloned();
    state.resource_version += 1;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let fields = managed_fields_of(&object);
    let metadata = object["metadata"].as_object_mut().unwrap();
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    let (uid, created) = match &previous {
        Some(old) => (
            old["metadata"]["uid"].clone(),
            old["metadata"]["creationTimestamp"].clone(),
        ),
        None => (
            json!(format!(
                "6f1c2a4e-0000-4000-8000-{:012x}",
                state.resource_version
            )),
            json!(now),
        ),
    };
    metadata.insert("uid".into(), uid);
    metadata.insert(
        "resourceVersion".into(),
        json!(state.resource_version.to_string()),
    );
    metadata.insert("creationTimestamp".into(), created);
    metadata.insert(
        "managedFields".into(),
        json!([{
            "manager": field_manager,
            "operation": "Apply",
            "apiVersion": group_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }]),
    );
    remember_side_effects(state, &object);
    state.objects.insert(request.path.clone(), object.clone());
    let code = if previous.is_some() { 200 } else { 201 };
    (code, object.to_string())
}

/// Namespaces make namespaced applies possible; CRDs add served kinds.
fn remember_side_effects(state: &mut State, object: &Value) {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match (object["apiVersion"].as_str(), object["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => {
            state.namespaces.insert(name);
        }
        (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
            let spec = &object["spec"];
            let versions = spec["versions"].as_array().cloned().unwrap_or_default();
            let crd = Crd {
                group: spec["group"].as_str().unwrap_or_default().to_string(),
                versions: versions
                    .iter()
                    .filter_map(|v| v["name"].as_str().map(str::to_string))
                    .collect(),
                resource: Resource {
                    plural: spec["names"]["plural"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    kind: spec["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    namespaced: spec["scope"] == "Namespaced",
                },
                singular: spec["names"]["singular"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        spec["names"]["kind"]
                            .as_str()
                            .unwrap_or_default()
                            .to_lowercase()
                    }),
                has_status: versions
                    .iter()
                    .any(|v| v["subresources"].get("status").is_some()),
                pending_polls: state.crd_establish_polls,
            };
            state
                .crds
                .retain(|c| c.group != crd.group || c.resource.plural != crd.resource.plural);
            state.crds.push(crd);
        }
        _ => {}
    }
}

/// `fieldsV1` of the applied fields. Simplified: lists are owned whole (the real server keys
/// the items of associative lists); the client under test does not read this.
fn managed_fields_of(object: &Value) -> Value {
    fn fields(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (format!("f:{k}"), fields(v)))
                    .collect::<Map<String, Value>>(),
            ),
            _ => json!({}),
        }
    }
    let mut owned = object.clone();
    let map = owned.as_object_mut().unwrap();
    map.remove("apiVersion");
    map.remove("kind");
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("name");
        metadata.remove("namespace");
        if metadata.is_empty() {
            map.remove("metadata");
        }
    }
    fields(&owned)
}
