//! Connection settings: flags first, then `VKUBE_*`, then govc's variables
//! (`GOVC_URL`, `GOVC_USERNAME`, …), then credentials inside the URL, then
//! a prompt. Parsing flags only records what the user typed (clap); turning
//! that into `ConnectOptions` happens here, with the environment injected so
//! the precedence is unit-tested.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use vkube_vsphere::{
    ConnectOptions, Endpoint, Secret, Thumbprint, Timeouts, TlsPolicy, TransportChoice,
};

/// A problem with the connection settings (user-fixable, exit 1).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No URL anywhere.
    #[error("no vCenter given: pass `--url` or set `VKUBE_URL` (or `GOVC_URL`)")]
    NoUrl,
    /// No user name anywhere.
    #[error("no user name given: pass `--username` or set `VKUBE_USERNAME` (or `GOVC_USERNAME`)")]
    NoUsername,
    /// No password and no terminal to ask on.
    #[error("no password given: pass `--password-file`, set `VKUBE_PASSWORD` (or `GOVC_PASSWORD`), or run in a terminal to be asked")]
    NoPassword,
    /// The password file is unreadable.
    #[error("cannot read password file `{path}`")]
    PasswordFile {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The known-hosts file is unreadable.
    #[error("cannot read `GOVC_TLS_KNOWN_HOSTS` file `{path}`")]
    KnownHosts {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A timeout that is not a duration.
    #[error("{name}: `{value}` is not a duration: {problem} (e.g. `30s`, `1500ms`, `10m`; a plain number is seconds)")]
    Duration {
        /// The flag or variable.
        name: String,
        /// What was given.
        value: String,
        /// Why it is not one.
        problem: String,
    },
    /// A URL or thumbprint that does not parse.
    #[error(transparent)]
    Invalid(#[from] vkube_vsphere::Error),
}

/// Wire protocol flag values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TransportArg {
    /// VI/JSON if offered, else SOAP.
    Auto,
    /// VI/JSON only (vCenter 8.0U1 and later).
    Json,
    /// SOAP only.
    Soap,
}

/// Connection flags shared by every command that talks to vCenter.
#[derive(Debug, Clone, Args, Default)]
pub struct ConnectionArgs {
    /// vCenter URL or host [env: VKUBE_URL, GOVC_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// User name [env: VKUBE_USERNAME, GOVC_USERNAME]
    #[arg(long, short = 'u', global = true)]
    pub username: Option<String>,
    /// Read the password from this file's first line [env: VKUBE_PASSWORD, GOVC_PASSWORD]
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Skip TLS certificate verification (the server's thumbprint is shown) [env: VKUBE_INSECURE, GOVC_INSECURE]
    #[arg(long, short = 'k', global = true)]
    pub insecure: bool,
    /// Trust exactly the certificate with this SHA-1 or SHA-256 thumbprint [env: VKUBE_THUMBPRINT, GOVC_TLS_KNOWN_HOSTS]
    #[arg(long, global = true, value_name = "HEX")]
    pub thumbprint: Option<String>,
    /// Also trust CAs from this PEM file [env: VKUBE_CA_FILE, GOVC_TLS_CA_CERTS]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Wire protocol
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub transport: Option<TransportArg>,
    /// Log a summary line per API request (never credentials)
    #[arg(long, global = true)]
    pub wire_log: bool,
    /// Default datacenter for relative lookups [env: VKUBE_DATACENTER, GOVC_DATACENTER]
    #[arg(long, global = true)]
    pub datacenter: Option<String>,
    /// Seconds to wait for the TCP connect and TLS handshake
    #[arg(long, global = true, default_value = "10", value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,
    /// Longest wait for one vCenter request, e.g. 30s, 2m [env: VKUBE_REQUEST_TIMEOUT; default: 30s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Give up on a vCenter task whose progress has not changed this long [env: VKUBE_TASK_STALL_TIMEOUT; default: 10m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub task_stall_timeout: Option<String>,
}

/// Resolved settings: what to connect to and how.
pub struct Resolved {
    /// Ready for `Session::connect`.
    pub options: ConnectOptions,
    /// Default datacenter, if any.
    pub datacenter: Option<String>,
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl ConnectionArgs {
    /// Resolve flags + environment (`env` looks a variable up) into options.
    /// `prompt` asks for a password when nothing else gave one.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        prompt: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Resolved, SettingsError> {
        let first = |flag: Option<String>, names: &[&str]| {
            flag.or_else(|| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty())))
        };
        let url =
            first(self.url.clone(), &["VKUBE_URL", "GOVC_URL"]).ok_or(SettingsError::NoUrl)?;
        let endpoint = Endpoint::parse(&url)?;
        let username = first(self.username.clone(), &["VKUBE_USERNAME", "GOVC_USERNAME"])
            .or_else(|| endpoint.username.clone())
            .ok_or(SettingsError::NoUsername)?;
        let password = match &self.password_file {
            Some(path) => Some(read_password_file(path)?),
            None => first(None, &["VKUBE_PASSWORD", "GOVC_PASSWORD"])
                .map(Secret::new)
                .or_else(|| endpoint.password.clone()),
        };
        let password = match password {
            Some(p) => p,
            None => Secret::new(
                prompt(&format!(
                    "Password for {username} at {}: ",
                    endpoint.address()
                ))
                .ok_or(SettingsError::NoPassword)?,
            ),
        };
        let insecure = self.insecure
            || first(None, &["VKUBE_INSECURE", "GOVC_INSECURE"]).is_some_and(|v| truthy(&v));
        let pinned = match first(self.thumbprint.clone(), &["VKUBE_THUMBPRINT"]) {
            Some(t) => Some(t),
            None => match env("GOVC_TLS_KNOWN_HOSTS").filter(|v| !v.is_empty()) {
                Some(file) => known_host_thumbprint(Path::new(&file), &endpoint)?,
                None => None,
            },
        };
        let ca_file = self
            .ca_file
            .clone()
            .or_else(|| first(None, &["VKUBE_CA_FILE", "GOVC_TLS_CA_CERTS"]).map(PathBuf::from));
        // A pinned thumbprint is stricter than --insecure, so it wins.
        let tls = match (pinned, insecure) {
            (Some(t), _) => TlsPolicy::Pinned(Thumbprint::parse(&t)?),
            (None, true) => TlsPolicy::Insecure,
            (None, false) => TlsPolicy::Verify { ca_file },
        };
        let transport = match self.transport.unwrap_or(TransportArg::Auto) {
            TransportArg::Auto => TransportChoice::Auto,
            TransportArg::Json => TransportChoice::Json,
            TransportArg::Soap => TransportChoice::Soap,
        };
        Ok(Resolved {
            options: ConnectOptions {
                endpoint,
                username,
                password,
                tls,
                transport,
                wire_log: self.wire_log,
                connect_timeout: Duration::from_secs(self.connect_timeout.unwrap_or(10).max(1)),
                timeouts: timeouts(
                    self.request_timeout.clone(),
                    self.task_stall_timeout.clone(),
                    env,
                )?,
            },
            datacenter: first(
                self.datacenter.clone(),
                &["VKUBE_DATACENTER", "GOVC_DATACENTER"],
            ),
        })
    }
}

/// A duration as people write one: `30s`, `1500ms`, `10m`, `1h`, or a plain
/// number of seconds. Zero is refused: a request that may take no time at
/// all always fails.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "it does not start with a whole number".to_string())?;
    let duration = match unit.trim() {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" | "min" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        other => return Err(format!("unknown unit `{other}`")),
    };
    if duration.is_zero() {
        return Err("it must be more than zero".into());
    }
    Ok(duration)
}

/// How long to wait for vCenter: each flag, else its variable, else the default.
fn timeouts(
    request: Option<String>,
    task_stall: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Timeouts, SettingsError> {
    let pick = |flag: Option<String>, flag_name: &str, var: &str| {
        let (name, value) = match flag {
            Some(value) => (format!("--{flag_name}"), value),
            None => match env(var).filter(|v| !v.is_empty()) {
                Some(value) => (var.to_string(), value),
                None => return Ok(None),
            },
        };
        parse_duration(&value)
            .map(Some)
            .map_err(|problem| SettingsError::Duration {
                name,
                value,
                problem,
            })
    };
    let defaults = Timeouts::default();
    Ok(Timeouts {
        request: pick(request, "request-timeout", "VKUBE_REQUEST_TIMEOUT")?
            .unwrap_or(defaults.request),
        task_stall: pick(task_stall, "task-stall-timeout", "VKUBE_TASK_STALL_TIMEOUT")?
            .unwrap_or(defaults.task_stall),
        slow_notice: defaults.slow_notice,
    })
}

fn read_password_file(path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::PasswordFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Secret::new(text.lines().next().unwrap_or("").to_string()))
}

/// govc's known_hosts: lines of `host thumbprint`.
fn known_host_thumbprint(
    path: &Path,
    endpoint: &Endpoint,
) -> Result<Option<String>, SettingsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SettingsError::KnownHosts {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let candidates = [endpoint.host.clone(), endpoint.address()];
    Ok(text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let host = parts.next()?;
        let thumb = parts.next()?;
        candidates
            .iter()
            .any(|c| c == host)
            .then(|| thumb.to_string())
    }))
}

/// Ask on the terminal without echo; `None` when stdin is not a terminal.
pub fn terminal_prompt(message: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    rpassword::prompt_password(message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: ConnectionArgs, vars: &[(&str, &str)]) -> Result<Resolved, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        args.resolve(&|k| map.get(k).cloned(), &|_| None)
    }

    #[test]
    fn flags_beat_vkube_variables_beat_govc_variables() {
        let vars = [
            ("VKUBE_URL", "vkube-vc"),
            ("GOVC_URL", "govc-vc"),
            ("GOVC_USERNAME", "govc-user"),
            ("GOVC_PASSWORD", "govc-pass"),
        ];
        let r = resolve(ConnectionArgs::default(), &vars).unwrap();
        assert_eq!(r.options.endpoint.host, "vkube-vc");
        assert_eq!(r.options.username, "govc-user");
        assert_eq!(r.options.password.expose(), "govc-pass");
        let args = ConnectionArgs {
            url: Some("flag-vc:8443".into()),
            username: Some("flag-user".into()),
            ..Default::default()
        };
        let r = resolve(args, &vars).unwrap();
        assert_eq!(
            (r.options.endpoint.host.as_str(), r.options.endpoint.port),
            ("flag-vc", 8443)
        );
        assert_eq!(r.options.username, "flag-user");
    }

    #[test]
    fn govc_url_may_carry_credentials() {
        let r = resolve(
            ConnectionArgs::default(),
            &[("GOVC_URL", "https://admin:pw@vc/sdk")],
        )
        .unwrap();
        assert_eq!(r.options.username, "admin");
        assert_eq!(r.options.password.expose(), "pw");
    }

    #[test]
    fn tls_policy_follows_insecure_and_thumbprint() {
        let base = [("GOVC_URL", "u:p@vc")];
        let r = resolve(ConnectionArgs::default(), &base).unwrap();
        assert!(matches!(r.options.tls, TlsPolicy::Verify { .. }));
        let r = resolve(
            ConnectionArgs::default(),
            &[base[0], ("GOVC_INSECURE", "1")],
        )
        .unwrap();
        assert_eq!(r.options.tls, TlsPolicy::Insecure);
        let thumb = "AB:".repeat(19) + "AB";
        let args = ConnectionArgs {
            insecure: true,
            thumbprint: Some(thumb),
            ..Default::default()
        };
        assert!(matches!(
            resolve(args, &base).unwrap().options.tls,
            TlsPolicy::Pinned(_)
        ));
    }

    #[test]
    fn govc_known_hosts_pins_the_thumbprint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let thumb = "01:".repeat(19) + "01";
        std::fs::write(
            &file,
            format!(
                "other.example {}\nvc.example {thumb}\n",
                "02:".repeat(19) + "02"
            ),
        )
        .unwrap();
        let r = resolve(
            ConnectionArgs::default(),
            &[
                ("GOVC_URL", "u:p@vc.example"),
                ("GOVC_TLS_KNOWN_HOSTS", file.to_str().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(
            r.options.tls,
            TlsPolicy::Pinned(Thumbprint::parse(&thumb).unwrap())
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        assert!(matches!(
            resolve(ConnectionArgs::default(), &[]),
            Err(SettingsError::NoUrl)
        ));
        assert!(matches!(
            resolve(ConnectionArgs::default(), &[("GOVC_URL", "vc")]),
            Err(SettingsError::NoUsername)
        ));
        assert!(matches!(
            resolve(
                ConnectionArgs::default(),
                &[("GOVC_URL", "vc"), ("GOVC_USERNAME", "u")]
            ),
            Err(SettingsError::NoPassword)
        ));
    }

    #[test]
    fn timeouts_come_from_flags_then_variables_then_defaults() {
        let base = [("GOVC_URL", "u:p@vc")];
        let r = resolve(ConnectionArgs::default(), &base).unwrap();
        assert_eq!(r.options.timeouts, Timeouts::default());
        let r = resolve(
            ConnectionArgs::default(),
            &[
                base[0],
                ("VKUBE_REQUEST_TIMEOUT", "2s"),
                ("VKUBE_TASK_STALL_TIMEOUT", "90"),
            ],
        )
        .unwrap();
        assert_eq!(r.options.timeouts.request, Duration::from_secs(2));
        assert_eq!(r.options.timeouts.task_stall, Duration::from_secs(90));
        let args = ConnectionArgs {
            request_timeout: Some("1500ms".into()),
            ..Default::default()
        };
        let r = resolve(args, &[base[0], ("VKUBE_REQUEST_TIMEOUT", "2s")]).unwrap();
        assert_eq!(r.options.timeouts.request, Duration::from_millis(1500));
        let err = resolve(
            ConnectionArgs::default(),
            &[base[0], ("VKUBE_TASK_STALL_TIMEOUT", "soon")],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with("VKUBE_TASK_STALL_TIMEOUT: `soon` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_as_people_write_them() {
        for (text, want) in [
            ("30", Duration::from_secs(30)),
            ("30s", Duration::from_secs(30)),
            ("1500ms", Duration::from_millis(1500)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "0", "0s", "-1s", "2 days", "s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_file_first_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\nignored\n").unwrap();
        let args = ConnectionArgs {
            password_file: Some(file),
            ..Default::default()
        };
        let r = resolve(args, &[("GOVC_URL", "u@vc"), ("GOVC_PASSWORD", "env")]).unwrap();
        assert_eq!(r.options.password.expose(), "from-file");
    }
}
