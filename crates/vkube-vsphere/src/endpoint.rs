//! Parsing of the vCenter address as users write it: a bare host, `host:port`,
//! `https://host/sdk`, or govc's `user:pass@host`. Pure; no I/O.

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Where the vCenter SDK lives, and any credentials embedded in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port, 443 unless given.
    pub port: u16,
    /// User name from the URL's user info, if any.
    pub username: Option<String>,
    /// Password from the URL's user info, if any.
    pub password: Option<Secret>,
}

impl Endpoint {
    /// Parse a vCenter URL in any of the accepted forms.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |problem: &str| Error::InvalidUrl {
            url: redact(input),
            problem: problem.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let rest = if let Some((scheme, rest)) = trimmed.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "https" => rest,
                "http" => return Err(invalid("vkube talks to vCenter over HTTPS only")),
                other => return Err(invalid(&format!("unsupported scheme `{other}`"))),
            }
        } else {
            trimmed
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/" || path.trim_end_matches('/') == "/sdk") {
            return Err(invalid(&format!(
                "the API path must be `/sdk`, not `{path}`"
            )));
        }
        // The user name may itself contain '@' (administrator@vsphere.local).
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (
                    Some(percent_decode(u)),
                    Some(Secret::new(percent_decode(p))),
                ),
                None => (Some(percent_decode(info)), None),
            },
        };
        let (host, port) = split_host_port(hostport).map_err(|p| invalid(&p))?;
        if host.is_empty() {
            return Err(invalid("it has no host"));
        }
        Ok(Endpoint {
            host,
            port,
            username: username.filter(|u| !u.is_empty()),
            password,
        })
    }

    /// `host:port` as sockets and `vim_rs` expect it (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The SDK URL, without credentials.
    pub fn sdk_url(&self) -> String {
        format!("https://{}/sdk", self.address())
    }
}

fn split_host_port(hostport: &str) -> std::result::Result<(String, u16), String> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in IPv6 address".to_string())?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => 443,
            None => return Err(format!("unexpected `{after}` after the address")),
        };
        return Ok((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_string(), parse_port(port)?)),
        // A bare IPv6 address without brackets.
        Some(_) => Ok((hostport.to_string(), 443)),
        None => Ok((hostport.to_string(), 443)),
    }
}

fn parse_port(p: &str) -> std::result::Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{p}` is not a valid port"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with any password replaced, for error messages.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{scheme}{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Endpoint {
        Endpoint::parse(s).unwrap()
    }

    #[test]
    fn accepts_every_form_users_write() {
        let cases = [
            ("vc.example.com", "vc.example.com", 443),
            ("vc.example.com:8443", "vc.example.com", 8443),
            ("https://vc.example.com/sdk", "vc.example.com", 443),
            ("https://127.0.0.1:40123/sdk", "127.0.0.1", 40123),
            ("https://[::1]:9443/sdk/", "::1", 9443),
            ("[fd00::5]", "fd00::5", 443),
        ];
        for (input, host, port) in cases {
            let e = parse(input);
            assert_eq!((e.host.as_str(), e.port), (host, port), "{input}");
        }
        assert_eq!(
            parse("https://[::1]:9443/sdk").sdk_url(),
            "https://[::1]:9443/sdk"
        );
    }

    #[test]
    fn takes_credentials_from_govc_style_urls() {
        let e = parse("administrator@vsphere.local:s%40cret@vc:443");
        assert_eq!(e.username.as_deref(), Some("administrator@vsphere.local"));
        assert_eq!(e.password.unwrap().expose(), "s@cret");
        assert_eq!(e.host, "vc");
        let e = parse("https://user@vc/sdk");
        assert_eq!(e.username.as_deref(), Some("user"));
        assert!(e.password.is_none());
    }

    #[test]
    fn rejects_what_cannot_work() {
        for (input, needle) in [
            ("", "empty"),
            ("http://vc/sdk", "HTTPS only"),
            ("https://vc/api", "`/sdk`"),
            ("vc:99999", "not a valid port"),
            ("https://:443/sdk", "no host"),
        ] {
            let err = Endpoint::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = Endpoint::parse("http://u:topsecret@vc/sdk")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
        assert_eq!(redact("https://u:p@h/sdk"), "https://u:***@h/sdk");
    }
}
