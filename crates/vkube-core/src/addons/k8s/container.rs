//! Containers: image, command, environment, ports, probes, resources,
//! security and mounts, built up field by field.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pod::SecurityContext;

/// One container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    name: &'static str,
    image: String,
    image_pull_policy: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env_from: Vec<EnvFromSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    startup_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<SecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    termination_message_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volume_mounts: Vec<VolumeMount>,
}

impl Container {
    /// Container `name` running `image` (already mirrored). Pinned tags
    /// never change, so an image present on the node is used as is: nodes
    /// of an air-gapped cluster do not need the registry on every restart.
    pub(crate) fn new(name: &'static str, image: impl Into<String>) -> Container {
        Container {
            name,
            image: image.into(),
            image_pull_policy: "IfNotPresent",
            command: Vec::new(),
            args: Vec::new(),
            env_from: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            startup_probe: None,
            liveness_probe: None,
            readiness_probe: None,
            lifecycle: None,
            resources: None,
            security_context: None,
            termination_message_policy: None,
            volume_mounts: Vec::new(),
        }
    }

    /// Running `command` instead of the image's entry point.
    pub(crate) fn command<S: AsRef<str>>(mut self, command: &[S]) -> Container {
        self.command = owned(command);
        self
    }

    /// With these arguments.
    pub(crate) fn args<S: AsRef<str>>(mut self, args: &[S]) -> Container {
        self.args.extend(owned(args));
        self
    }

    /// With environment variable `name` set to `value`.
    pub(crate) fn env(self, name: &str, value: impl Into<String>) -> Container {
        self.env_var(EnvVar::value(name, value))
    }

    /// With environment variable `name` set from the pod's field `path`.
    pub(crate) fn env_field(self, name: &str, path: &'static str) -> Container {
        self.env_var(EnvVar::field(name, path))
    }

    /// With one more environment variable.
    pub(crate) fn env_var(mut self, var: EnvVar) -> Container {
        self.env.push(var);
        self
    }

    /// With these environment variables.
    pub(crate) fn env_vars(mut self, vars: impl IntoIterator<Item = EnvVar>) -> Container {
        self.env.extend(vars);
        self
    }

    /// With every key of ConfigMap `config_map` as an environment variable.
    pub(crate) fn env_from_config_map(mut self, config_map: &'static str) -> Container {
        self.env_from.push(EnvFromSource {
            config_map_ref: Reference { name: config_map },
        });
        self
    }

    /// Listening on TCP `port`, named `name`.
    pub(crate) fn port(mut self, name: &'static str, port: u16) -> Container {
        self.ports.push(ContainerPort {
            name,
            container_port: port,
            host_port: None,
            protocol: "TCP",
        });
        self
    }

    /// Listening on TCP `port` of the host (host network), named `name`.
    pub(crate) fn host_port(mut self, name: &'static str, port: u16) -> Container {
        self.ports.push(ContainerPort {
            name,
            container_port: port,
            host_port: Some(port),
            protocol: "TCP",
        });
        self
    }

    /// Not ready (and not probed for liveness) until `probe` succeeds once.
    pub(crate) fn startup(mut self, probe: Probe) -> Container {
        self.startup_probe = Some(probe);
        self
    }

    /// Restarted when `probe` fails.
    pub(crate) fn liveness(mut self, probe: Probe) -> Container {
        self.liveness_probe = Some(probe);
        self
    }

    /// Ready while `probe` succeeds.
    pub(crate) fn readiness(mut self, probe: Probe) -> Container {
        self.readiness_probe = Some(probe);
        self
    }

    /// Running `command` before the container is stopped.
    pub(crate) fn pre_stop(mut self, command: &[&str]) -> Container {
        self.lifecycle = Some(Lifecycle {
            pre_stop: Handler {
                exec: Exec::new(command),
            },
        });
        self
    }

    /// Requesting `cpu`.
    pub(crate) fn request_cpu(self, cpu: &'static str) -> Container {
        self.request("cpu", cpu)
    }

    /// Requesting `memory`.
    pub(crate) fn request_memory(self, memory: &'static str) -> Container {
        self.request("memory", memory)
    }

    fn request(mut self, resource: &'static str, amount: &'static str) -> Container {
        self.resources
            .get_or_insert_with(Resources::default)
            .requests
            .insert(resource, amount);
        self
    }

    /// With this security context.
    pub(crate) fn security(mut self, context: SecurityContext) -> Container {
        self.security_context = Some(context);
        self
    }

    /// The end of its log as the termination message when it wrote none.
    pub(crate) fn log_termination_message(mut self) -> Container {
        self.termination_message_policy = Some("FallbackToLogsOnError");
        self
    }

    /// Mounting volume `name` at `path`.
    pub(crate) fn mount(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, false, None)
    }

    /// Mounting volume `name` at `path` read-only.
    pub(crate) fn mount_read_only(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, true, None)
    }

    /// Mounting volume `name` at `path`, seeing mounts the host makes
    /// below it later (`HostToContainer`).
    pub(crate) fn mount_from_host(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, false, Some("HostToContainer"))
    }

    /// Mounting volume `name` at `path` with mounts made inside propagated
    /// back to the host (`Bidirectional`; privileged containers only).
    pub(crate) fn mount_bidirectional(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, false, Some("Bidirectional"))
    }

    fn mount_with(
        mut self,
        name: &'static str,
        path: &'static str,
        read_only: bool,
        propagation: Option<&'static str>,
    ) -> Container {
        self.volume_mounts.push(VolumeMount {
            name,
            mount_path: path,
            read_only,
            mount_propagation: propagation,
        });
        self
    }
}

fn owned<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    items.iter().map(|item| item.as_ref().to_owned()).collect()
}

/// An environment variable.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvVar {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvSource>,
}

/// `valueFrom`: one of the sources (flattened, so that serde_yaml writes
/// the variant as a key, not as a YAML tag).
#[derive(Debug, Clone, Serialize)]
struct EnvSource {
    #[serde(flatten)]
    source: Source,
}

#[derive(Debug, Clone, Serialize)]
enum Source {
    #[serde(rename = "fieldRef", rename_all = "camelCase")]
    Field { field_path: &'static str },
    #[serde(rename = "configMapKeyRef")]
    ConfigMapKey {
        name: &'static str,
        key: &'static str,
        optional: bool,
    },
    #[serde(rename = "resourceFieldRef")]
    ResourceField {
        resource: &'static str,
        divisor: &'static str,
    },
}

impl EnvVar {
    /// `name` set to `value`.
    pub(crate) fn value(name: &str, value: impl Into<String>) -> EnvVar {
        EnvVar::with(name, Some(value.into()), None)
    }

    /// `name` set from the pod's field `path` (`spec.nodeName`, …).
    pub(crate) fn field(name: &str, path: &'static str) -> EnvVar {
        EnvVar::with(name, None, Some(Source::Field { field_path: path }))
    }

    /// `name` set from key `key` of ConfigMap `config_map`; when
    /// `optional`, left unset if the key is missing.
    pub(crate) fn config_map_key(
        name: &str,
        config_map: &'static str,
        key: &'static str,
        optional: bool,
    ) -> EnvVar {
        let source = Source::ConfigMapKey {
            name: config_map,
            key,
            optional,
        };
        EnvVar::with(name, None, Some(source))
    }

    /// `name` set from the container's own `resource` (e.g.
    /// `limits.memory`), in units of `divisor`.
    pub(crate) fn resource(name: &str, resource: &'static str, divisor: &'static str) -> EnvVar {
        EnvVar::with(
            name,
            None,
            Some(Source::ResourceField { resource, divisor }),
        )
    }

    fn with(name: &str, value: Option<String>, source: Option<Source>) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value,
            value_from: source.map(|source| EnvSource { source }),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvFromSource {
    config_map_ref: Reference,
}

#[derive(Debug, Serialize)]
struct Reference {
    name: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    name: &'static str,
    container_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_port: Option<u16>,
    protocol: &'static str,
}

#[derive(Debug, Default, Serialize)]
struct Resources {
    requests: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Lifecycle {
    pre_stop: Handler,
}

#[derive(Debug, Serialize)]
struct Handler {
    exec: Exec,
}

#[derive(Debug, Serialize)]
struct Exec {
    command: Vec<String>,
}

impl Exec {
    fn new(command: &[&str]) -> Exec {
        Exec {
            command: owned(command),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMount {
    name: &'static str,
    mount_path: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_propagation: Option<&'static str>,
}

/// A startup, liveness or readiness probe; timings the probe does not set
/// are Kubernetes' defaults.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<Exec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_get: Option<HttpGet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_delay_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_threshold: Option<u32>,
}

impl Probe {
    /// Running `command` in the container.
    pub(crate) fn exec(command: &[&str]) -> Probe {
        Probe::with(Some(Exec::new(command)), None)
    }

    /// `GET path` on the container's port `port` (a name or a number).
    pub(crate) fn http(path: &'static str, port: impl Into<Port>) -> Probe {
        Probe::get(HttpGet::new(path, port))
    }

    /// The HTTP request `get`.
    pub(crate) fn get(get: HttpGet) -> Probe {
        Probe::with(None, Some(get))
    }

    fn with(exec: Option<Exec>, http_get: Option<HttpGet>) -> Probe {
        Probe {
            exec,
            http_get,
            initial_delay_seconds: None,
            timeout_seconds: None,
            period_seconds: None,
            success_threshold: None,
            failure_threshold: None,
        }
    }

    /// First check `seconds` after the container started.
    pub(crate) fn initial_delay(mut self, seconds: u32) -> Probe {
        self.initial_delay_seconds = Some(seconds);
        self
    }

    /// A check taking longer than `seconds` fails.
    pub(crate) fn timeout(mut self, seconds: u32) -> Probe {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// A check every `seconds`.
    pub(crate) fn period(mut self, seconds: u32) -> Probe {
        self.period_seconds = Some(seconds);
        self
    }

    /// `count` successes in a row after a failure make it pass again.
    pub(crate) fn successes(mut self, count: u32) -> Probe {
        self.success_threshold = Some(count);
        self
    }

    /// `count` failures in a row make it fail.
    pub(crate) fn failures(mut self, count: u32) -> Probe {
        self.failure_threshold = Some(count);
        self
    }
}

/// An HTTP probe's request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpGet {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'static str>,
    path: &'static str,
    port: Port,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_headers: Vec<Header>,
}

impl HttpGet {
    /// `GET path` on port `port` of the pod's address.
    pub(crate) fn new(path: &'static str, port: impl Into<Port>) -> HttpGet {
        HttpGet {
            host: None,
            path,
            port: port.into(),
            scheme: None,
            http_headers: Vec::new(),
        }
    }

    /// Sent to `host` instead of the pod's address (e.g. `127.0.0.1` on
    /// the host network), over `scheme` (`HTTP`, stated explicitly).
    pub(crate) fn to(mut self, host: &'static str, scheme: &'static str) -> HttpGet {
        self.host = Some(host);
        self.scheme = Some(scheme);
        self
    }

    /// With header `name: value`.
    pub(crate) fn header(mut self, name: &'static str, value: &'static str) -> HttpGet {
        self.http_headers.push(Header { name, value });
        self
    }
}

#[derive(Debug, Serialize)]
struct Header {
    name: &'static str,
    value: &'static str,
}

/// A container port, by name or number.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub(crate) enum Port {
    /// A port the container names.
    Name(&'static str),
    /// A port number.
    Number(u16),
}

impl From<&'static str> for Port {
    fn from(name: &'static str) -> Port {
        Port::Name(name)
    }
}

impl From<u16> for Port {
    fn from(number: u16) -> Port {
        Port::Number(number)
    }
}
