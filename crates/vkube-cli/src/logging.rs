//! Logging for `-v`/`-vv`/`-vvv`: tracing to stderr, with session
//! credentials scrubbed from every line at every verbosity.
//!
//! The filter keeps other crates' trace output out (`-vvv` is vkube's and
//! vim_rs's detail, not every HTTP library's), and the writer replaces the
//! values of vCenter session cookies and API session ids, `Cookie` and
//! `Authorization` headers, in whatever a dependency logs.

use std::io::Write;

/// Markers after which a secret value follows, up to a delimiter.
const SECRET_MARKERS: [&str; 5] = [
    "vmware_soap_session=",
    "vmware-api-session-id: ",
    "vmware-api-session-id=",
    "Authorization: ",
    "authorization: ",
];

/// Characters that end a secret value.
fn ends_value(c: char) -> bool {
    matches!(
        c,
        ';' | '"' | '\'' | ' ' | ',' | '\n' | '\r' | '\\' | ')' | '}'
    )
}

/// `line` with every secret value after a marker replaced by `<redacted>`.
pub fn redact(line: &str) -> String {
    let mut out = line.to_owned();
    for marker in SECRET_MARKERS {
        let mut from = 0;
        while let Some(found) = out[from..].find(marker) {
            let start = from + found + marker.len();
            let len = out[start..].find(ends_value).unwrap_or(out.len() - start);
            // "Authorization: Basic xyz": keep the scheme, drop the secret.
            let scheme = &out[start..start + len];
            let (keep, len) = if ["Basic", "Bearer"].contains(&scheme) && out.len() > start + len {
                let rest = &out[start + len + 1..];
                (len + 1, rest.find(ends_value).unwrap_or(rest.len()))
            } else {
                (0, len)
            };
            out.replace_range(start + keep..start + keep + len, "<redacted>");
            from = start + keep + "<redacted>".len();
        }
    }
    out
}

/// Stderr, with [`redact`] applied to each write (tracing writes one
/// event per call).
struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Starts logging at `verbose` (count of `-v`); `VKUBE_LOG` overrides the
/// filter (redaction stays).
pub fn init(verbose: u8, wire_log: bool) {
    let level = match verbose {
        // vim_rs warns about every fault it returns, kube-rs logs every
        // failed request as an error (each look at an API server that does
        // not answer yet); vkube reports both itself. A vCenter request
        // that is slow says what vkube waits for, always.
        0 => "warn,vim_rs=error,kube_client=off,vkube_vsphere::waiting=info",
        1 => "vkube=info,vkube_vsphere=info,warn,vim_rs=error,kube_client=off",
        2 => "vkube=debug,vkube_vsphere=debug,vkube_runtime=debug,info",
        _ => "vkube=trace,vkube_vsphere=trace,vkube_runtime=trace,vkube_store=trace,vkube_kube=trace,vim_rs=debug,info",
    };
    let mut filter = level.to_string();
    if wire_log {
        filter.push_str(",vim_rs::wire=debug");
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("VKUBE_LOG").unwrap_or_else(|_| filter.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_and_headers_are_redacted() {
        let line = r#"inserting Set-Cookie 'Cookie { cookie_string: Some("vmware_soap_session=83deec3f-e2f9; HttpOnly") }'"#;
        assert_eq!(
            redact(line),
            r#"inserting Set-Cookie 'Cookie { cookie_string: Some("vmware_soap_session=<redacted>; HttpOnly") }'"#
        );
        assert_eq!(
            redact("vmware-api-session-id: abc123 and vmware-api-session-id: def"),
            "vmware-api-session-id: <redacted> and vmware-api-session-id: <redacted>"
        );
        assert_eq!(
            redact("Authorization: Basic dXNlcjpwYXNz\n"),
            "Authorization: Basic <redacted>\n"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(
            redact("vmware_soap_session="),
            "vmware_soap_session=<redacted>"
        );
    }
}
