//! YAML output that YAML 1.1 readers read back as written. Kubernetes
//! tools and the vSphere cloud provider read YAML with Go's yaml.v2
//! (YAML 1.1), where plain `on`, `no`, `y` or `0755` are not strings;
//! serde_yaml writes for YAML 1.2 and leaves them unquoted. Here a string
//! stays plain only when it cannot mean anything else in either version;
//! everything else is double-quoted, multi-line text becomes a literal
//! block.

use serde::Serialize;
use serde_yaml::{Mapping, Value};

/// `value` as a YAML document (block style, two-space indentation, field
/// order kept).
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_yaml::to_value(value).expect("plain data serializes to YAML");
    let mut out = String::new();
    match &value {
        Value::Mapping(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Sequence(items) if !items.is_empty() => sequence(&mut out, items, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Entries at `indent`; with `continues_line`, the first one goes on the
/// current line (after `- `).
fn mapping(out: &mut String, map: &Mapping, indent: usize, continues_line: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !continues_line {
            pad(out, indent);
        }
        out.push_str(&inline(key));
        out.push(':');
        // Like serde_yaml (and kubectl): a list under a key is not
        // indented further than the key.
        child(out, value, indent + 2, indent);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Mapping(map) if !map.is_empty() => {
                out.push(' ');
                mapping(out, map, indent + 2, true);
            }
            other => child(out, other, indent + 2, indent + 2),
        }
    }
}

/// A value after `key:` or `-`: a nested mapping (and block text)
/// indented to `indent`, a nested list to `list_indent`.
fn child(out: &mut String, value: &Value, indent: usize, list_indent: usize) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent, false);
        }
        Value::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, list_indent);
        }
        Value::String(text) if fits_literal_block(text) => {
            out.push_str(if text.ends_with('\n') {
                " |\n"
            } else {
                " |-\n"
            });
            for line in text.lines() {
                if !line.is_empty() {
                    pad(out, indent);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// Multi-line text a literal block keeps exactly: printable lines, the
/// first not empty or indented (that would need an indentation
/// indicator), at most one final newline.
fn fits_literal_block(text: &str) -> bool {
    text.contains('\n')
        && !text.ends_with("\n\n")
        && text
            .lines()
            .next()
            .is_some_and(|first| !first.is_empty() && !first.starts_with(' '))
        && text.chars().all(|c| c == '\n' || !c.is_control())
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain(s) => s.clone(),
        // JSON's escapes are YAML's double-quoted escapes.
        Value::String(s) => serde_json::to_string(s).expect("strings serialize"),
        Value::Sequence(items) if items.is_empty() => "[]".to_owned(),
        Value::Mapping(map) if map.is_empty() => "{}".to_owned(),
        other => panic!("no inline YAML for {other:?}"),
    }
}

/// Plain only if unmistakably a string in YAML 1.1 and 1.2: starts with a
/// letter, `/` or `_` (no number, `.inf`, `~`, `-`, `<<`, `=`), has no
/// space or indicator character, does not end with `:`, and is no
/// boolean or null word.
fn is_plain(text: &str) -> bool {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    let Some(first) = text.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | '/' | ':' | '@' | '=' | '+' | '(' | ')' | '$'
                )
        })
        && !text.ends_with(':')
        && !WORDS.iter().any(|word| text.eq_ignore_ascii_case(word))
}

/// `text` read by PyYAML's `safe_load` (YAML 1.1, like Go's yaml.v2),
/// printed back as JSON; `None` when Python or PyYAML is missing, unless
/// `VKUBE_REQUIRE_KUBERNETES_VALIDATE=1` (PyYAML comes with
/// kubernetes-validate) makes that a failure.
#[cfg(test)]
pub(crate) fn pyyaml_as_json(text: &str) -> Option<serde_json::Value> {
    pyyaml("yaml.safe_load(sys.stdin)", text)
}

/// The documents of the multi-document stream `text` as PyYAML reads them
/// (see [`pyyaml_as_json`]), comment-only documents left out.
#[cfg(test)]
pub(crate) fn pyyaml_stream_as_json(text: &str) -> Option<Vec<serde_json::Value>> {
    let documents = pyyaml(
        "[doc for doc in yaml.safe_load_all(sys.stdin) if doc is not None]",
        text,
    )?;
    Some(serde_json::from_value(documents).unwrap())
}

/// What the Python expression `read` (over `sys.stdin` holding `text`)
/// gives, as JSON.
#[cfg(test)]
fn pyyaml(read: &str, text: &str) -> Option<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let required = std::env::var("VKUBE_REQUIRE_KUBERNETES_VALIDATE").is_ok_and(|v| v == "1");
    let script = format!("import json, sys, yaml\nprint(json.dumps({read}))");
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(!required, "python3 (for PyYAML) cannot run: {e}");
            eprintln!("note: python3 not available, skipping the YAML 1.1 check ({e})");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !required && stderr.contains("No module named"),
            "PyYAML rejected the YAML: {stderr}\n{text}"
        );
        eprintln!("note: PyYAML not installed, skipping the YAML 1.1 check");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        api_version: &'static str,
        words: Vec<&'static str>,
        nested: BTreeMap<&'static str, Vec<BTreeMap<&'static str, &'static str>>>,
        empty: BTreeMap<&'static str, &'static str>,
        none: Vec<u8>,
        port: u16,
        flag: bool,
        text: &'static str,
        no_newline: &'static str,
        indented: &'static str,
    }

    fn sample() -> Sample {
        Sample {
            api_version: "storage.k8s.io/v1",
            words: vec![
                "on",
                "Off",
                "y",
                "NO",
                "null",
                "~",
                "443",
                "0755",
                "1:20",
                ".inf",
                "-x",
                "=",
                "a: b",
                "a #b",
                "",
                "vSAN Default",
                "$(ADDRESS)",
                "--v=4",
                "ds:///vmfs/x/",
                "ü",
                "tab\there",
                "quote\"back\\",
            ],
            nested: BTreeMap::from([("items", vec![BTreeMap::from([("k", "v"), ("l", "yes")])])]),
            empty: BTreeMap::new(),
            none: Vec::new(),
            port: 443,
            flag: true,
            text: "global:\n  port: 443\n\n  x: on\n",
            no_newline: "line one\nline two",
            indented: " leading\nspace\n",
        }
    }

    #[test]
    fn ambiguous_words_are_quoted_and_plain_words_stay_plain() {
        let text = to_string(&sample());
        for quoted in [
            "\"on\"", "\"Off\"", "\"y\"", "\"NO\"", "\"443\"", "\"0755\"", "\"=\"",
        ] {
            assert!(text.contains(quoted), "{quoted} in\n{text}");
        }
        for plain in [
            "apiVersion: storage.k8s.io/v1\n",
            "- ds:///vmfs/x/\n",
            "- \"--v=4\"\n",
        ] {
            assert!(text.contains(plain), "{plain} in\n{text}");
        }
        assert!(
            text.contains("text: |\n  global:\n    port: 443\n\n    x: on\n"),
            "{text}"
        );
        assert!(
            text.contains("noNewline: |-\n  line one\n  line two\n"),
            "{text}"
        );
        assert!(text.contains("empty: {}\nnone: []\n"), "{text}");
        assert!(text.contains("words:\n- \"on\"\n"), "{text}");
        assert!(
            text.contains("  items:\n  - k: v\n    l: \"yes\"\n"),
            "{text}"
        );
    }

    #[test]
    fn reads_back_the_same_as_yaml_1_2() {
        let text = to_string(&sample());
        let parsed: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed, serde_yaml::to_value(sample()).unwrap());
    }

    #[test]
    fn reads_back_the_same_as_yaml_1_1() {
        let text = to_string(&sample());
        let Some(parsed) = pyyaml_as_json(&text) else {
            return;
        };
        assert_eq!(parsed, serde_json::to_value(sample()).unwrap(), "{text}");
    }
}
