//! Starting and stopping a stand-in, and what a test asks of it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::cluster::{namespace_of_path, PodTermination};
use super::pki::{Issued, TestCa};
use super::reply::Reply;
use super::request::{AppliedObject, ClientCertificate, Recorded};
use super::server::{accept_loop, lock, tls_config, Shared};

/// How the stand-in proves itself and whom it lets in.
enum Identity {
    /// A server certificate issued by this CA for the listen address; clients need a
    /// certificate from the same CA.
    Ca(Box<TestCa>),
    /// A fixed server certificate; clients need a certificate from `client_ca_pem`.
    Certificate {
        server: Issued,
        client_ca_pem: String,
    },
}

/// Where and as whom a [`StandIn`] serves. Listens on `127.0.0.1` on a free port unless
/// [`listen`](Self::listen) says otherwise.
pub struct StandInOptions {
    listen: SocketAddr,
    identity: Identity,
    crd_establish_polls: u32,
}

impl StandInOptions {
    /// Serve as the cluster of this CA (certificate and PKCS#8 or SEC1 key, PEM), e.g. the
    /// cluster CA vkube generated: the server certificate is issued by it at start, with
    /// the listen IP as IP SAN, and clients must present a certificate it issued. Panics,
    /// failing the test, when the CA is unusable (see [`TestCa::from_pem`]).
    pub fn with_ca(ca_cert_pem: &str, ca_key_pem: &str) -> StandInOptions {
        Self::with_test_ca(TestCa::from_pem(ca_cert_pem, ca_key_pem))
    }

    /// [`with_ca`](Self::with_ca) for a CA already loaded or generated.
    pub fn with_test_ca(ca: TestCa) -> StandInOptions {
        StandInOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            identity: Identity::Ca(Box::new(ca)),
            crd_establish_polls: 0,
        }
    }

    /// Present `server` as it is (e.g. one from another CA, or without the right IP SAN)
    /// and accept client certificates issued by a CA in `client_ca_pem`.
    pub fn with_server_certificate(server: Issued, client_ca_pem: &str) -> StandInOptions {
        StandInOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            identity: Identity::Certificate {
                server,
                client_ca_pem: client_ca_pem.to_string(),
            },
            crd_establish_polls: 0,
        }
    }

    /// Listen on `address`, e.g. `127.0.8.5:6443` (on Linux every 127.0.0.0/8 address is
    /// local, so each test can have its own "VIP"); port 0 picks a free port.
    pub fn listen(mut self, address: SocketAddr) -> StandInOptions {
        self.listen = address;
        self
    }

    /// CRDs applied through the stand-in are served only after this many further discovery
    /// requests for their group version (0, the default: at once).
    pub fn crd_establish_polls(mut self, polls: u32) -> StandInOptions {
        self.crd_establish_polls = polls;
        self
    }
}

/// How the accept loop runs, and how it is stopped on drop.
enum Runner {
    /// On a runtime of its own, on a thread of its own.
    Thread {
        stop: Option<oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    },
    /// As a task of the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
}

/// A running stand-in kube-apiserver; stops serving (and closes every connection) when
/// dropped.
pub struct StandIn {
    addr: SocketAddr,
    server: Issued,
    shared: Arc<Mutex<Shared>>,
    runner: Runner,
}

/// A stand-in bound and configured, not yet serving.
struct Prepared {
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    server: Issued,
    shared: Arc<Mutex<Shared>>,
}

impl Prepared {
    fn new(options: StandInOptions) -> io::Result<Prepared> {
        let listener = std::net::TcpListener::bind(options.listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", options.listen),
            )
        })?;
        listener.set_nonblocking(true)?;
        let (server, client_ca_pem) = match options.identity {
            Identity::Ca(ca) => (
                ca.server_certificate(&serving_ips(options.listen.ip())),
                ca.cert_pem,
            ),
            Identity::Certificate {
                server,
                client_ca_pem,
            } => (server, client_ca_pem),
        };
        let config = tls_config(&server, &client_ca_pem)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        Ok(Prepared {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            server,
            shared: Arc::new(Mutex::new(Shared::new(options.crd_establish_polls))),
        })
    }
}

/// The IP SANs of a server listening on `ip`: the wildcard addresses serve loopback.
fn serving_ips(ip: IpAddr) -> Vec<IpAddr> {
    if ip.is_unspecified() {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else {
        vec![ip]
    }
}

impl StandIn {
    /// Starts a stand-in on a runtime and thread of its own, for synchronous tests (and
    /// usable from async ones). Panics, failing the test, when it cannot listen or the TLS
    /// material is unusable.
    pub fn start(options: StandInOptions) -> StandIn {
        Self::try_start(options).unwrap_or_else(|e| panic!("the stand-in API server: {e}"))
    }

    /// [`start`](Self::start), returning the error (e.g. the address is in use).
    pub fn try_start(options: StandInOptions) -> io::Result<StandIn> {
        let prepared = Prepared::new(options)?;
        let addr = prepared.listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (listener, acceptor, shared) = (
            prepared.listener,
            prepared.acceptor,
            Arc::clone(&prepared.shared),
        );
        let thread = std::thread::Builder::new()
            .name(format!("kube-api-stand-in-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("a tokio listener");
                    tokio::select! {
                        _ = accept_loop(listener, acceptor, shared) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels every connection task.
            })?;
        Ok(StandIn {
            addr,
            server: prepared.server,
            shared: prepared.shared,
            runner: Runner::Thread {
                stop: Some(stop),
                thread: Some(thread),
            },
        })
    }

    /// Starts a stand-in as a task of the current tokio runtime. Panics like
    /// [`start`](Self::start), and outside a runtime.
    pub async fn start_async(options: StandInOptions) -> StandIn {
        let prepared =
            Prepared::new(options).unwrap_or_else(|e| panic!("the stand-in API server: {e}"));
        let addr = prepared.listener.local_addr().expect("the listen address");
        let listener = TcpListener::from_std(prepared.listener).expect("a tokio listener");
        let task = tokio::spawn(accept_loop(
            listener,
            prepared.acceptor,
            Arc::clone(&prepared.shared),
        ));
        StandIn {
            addr,
            server: prepared.server,
            shared: prepared.shared,
            runner: Runner::Task(task),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`, e.g. `https://127.0.8.5:6443`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The certificate it presents.
    pub fn server_certificate(&self) -> &Issued {
        &self.server
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// The objects server-side applied and accepted (200 or 201), in order, repeats
    /// included.
    pub fn applied_objects(&self) -> Vec<AppliedObject> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_apply() && matches!(r.status, 200 | 201))
            .filter_map(applied_object)
            .collect()
    }

    /// Every client certificate presented, one per TLS connection, with the user (CN) and
    /// groups (O) the API server would see.
    pub fn client_certificates(&self) -> Vec<ClientCertificate> {
        self.lock().client_certificates.clone()
    }

    /// TLS handshakes refused or failed (e.g. a client certificate from another CA).
    pub fn handshake_failures(&self) -> usize {
        self.lock().handshake_failures
    }

    /// The stored object at an API path, e.g. `/api/v1/nodes/w-1`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.lock().cluster.object(path)
    }

    /// Stores `object` (e.g. a recorded Node) as if it existed in the cluster, filling in
    /// uid, resourceVersion and creationTimestamp where missing; returns its API path.
    /// Panics when its kind is not served (built-in group versions and CRDs applied so far).
    pub fn put_object(&self, object: Value) -> String {
        self.lock()
            .cluster
            .put(object)
            .unwrap_or_else(|reason| panic!("put_object: {reason}"))
    }

    /// Stores every item of a list answer (e.g. [`super::fixtures::NODE_LIST`]) with
    /// [`put_object`](Self::put_object), giving each the list's `apiVersion` and its kind
    /// (`NodeList` → `Node`), as list items come without them; returns their API paths.
    /// Panics when the text is not a list.
    pub fn put_items(&self, list_json: &str) -> Vec<String> {
        let list: Value =
            serde_json::from_str(list_json).unwrap_or_else(|e| panic!("put_items: not JSON: {e}"));
        let kind = list["kind"]
            .as_str()
            .and_then(|kind| kind.strip_suffix("List"))
            .unwrap_or_else(|| panic!("put_items: not a list: {}", list["kind"]));
        let items = list["items"]
            .as_array()
            .expect("put_items: a list has items");
        items
            .iter()
            .map(|item| {
                let mut object =
                    serde_json::json!({"apiVersion": list["apiVersion"], "kind": kind});
                object
                    .as_object_mut()
                    .unwrap()
                    .extend(item.as_object().cloned().unwrap_or_default());
                self.put_object(object)
            })
            .collect()
    }

    /// What deleting or evicting a pod does from now on (at once, the default, or
    /// terminating until [`remove_object`](Self::remove_object)).
    pub fn set_pod_termination(&self, termination: PodTermination) {
        self.lock().cluster.pod_termination = termination;
    }

    /// Removes the object at `path`, as if deleted behind the client's back.
    pub fn remove_object(&self, path: &str) -> Option<Value> {
        self.lock().cluster.remove(path)
    }

    /// CRDs applied from now on are served only after this many further discovery requests
    /// for their group version.
    pub fn set_crd_establish_polls(&self, polls: u32) {
        self.lock().cluster.crd_establish_polls = polls;
    }

    /// Answers `method path` (exact path, any query) with `reply` from now on, in place of
    /// the stand-in's own answer; replaces an earlier answer set for the route.
    pub fn respond(&self, method: &str, path: &str, reply: Reply) {
        self.lock().overrides.always(method, path, reply);
    }

    /// Answers `method path` with `replies` in turn, the last one for every later request
    /// (e.g. an Eviction answered 429 twice, then 201).
    pub fn respond_sequence(&self, method: &str, path: &str, replies: Vec<Reply>) {
        self.lock().overrides.sequence(method, path, replies);
    }

    /// Answers `method path` with what `handler` returns; `None` lets the stand-in answer as
    /// it would. The handler runs with the stand-in's state locked: it must not call this
    /// `StandIn`.
    pub fn respond_with(
        &self,
        method: &str,
        path: &str,
        handler: impl FnMut(&Recorded) -> Option<Reply> + Send + 'static,
    ) {
        self.lock()
            .overrides
            .handler(method, path, Box::new(handler));
    }

    /// Drops the answer set for `method path`.
    pub fn clear_response(&self, method: &str, path: &str) {
        self.lock().overrides.clear(method, path);
    }

    /// Answers every request with `reply` (e.g. the recorded 401), until
    /// [`answer_normally`](Self::answer_normally).
    pub fn answer_everything_with(&self, reply: Reply) {
        self.lock().answer_everything = Some(reply);
    }

    /// Ends [`answer_everything_with`](Self::answer_everything_with).
    pub fn answer_normally(&self) {
        self.lock().answer_everything = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Thread { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            Runner::Task(task) => task.abort(),
        }
    }
}

fn applied_object(request: &Recorded) -> Option<AppliedObject> {
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    let text = |value: &Value| value.as_str().map(str::to_string);
    Some(AppliedObject {
        api_version: text(&body["apiVersion"])?,
        kind: text(&body["kind"])?,
        namespace: namespace_of_path(&request.path),
        name: text(&body["metadata"]["name"])?,
        field_manager: request.query_value("fieldManager").unwrap_or_default(),
        body,
    })
}
