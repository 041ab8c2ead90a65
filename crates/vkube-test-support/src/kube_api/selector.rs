//! Equality-based label and field selectors (`a=b,c!=d,e`, `!f`), as list requests carry
//! them. Set-based terms (`in`, `notin`) are refused rather than ignored, so a test never
//! silently gets an unfiltered list.

use serde_json::Value;

/// One term of a selector.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector: every term must hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    terms: Vec<Term>,
}

/// Which part of an object a selector looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `metadata.labels`.
    Label,
    /// Dotted field paths such as `spec.nodeName` or `metadata.name`.
    Field,
}

impl Selector {
    /// Parses `text`; the error says which term the stand-in does not evaluate.
    pub(crate) fn parse(text: &str) -> Result<Selector, String> {
        if text.contains('(') {
            return Err(format!(
                "set-based selector {text:?} is not evaluated by the stand-in; answer this route \
                 from the test instead"
            ));
        }
        let terms = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|term| {
                let pair = |sep: &str| {
                    term.split_once(sep)
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                };
                if let Some((k, v)) = pair("!=") {
                    Term::NotEquals(k, v)
                } else if let Some((k, v)) = pair("==").or_else(|| pair("=")) {
                    Term::Equals(k, v)
                } else if let Some(key) = term.strip_prefix('!') {
                    Term::Absent(key.trim().to_string())
                } else {
                    Term::Exists(term.to_string())
                }
            })
            .collect();
        Ok(Selector { terms })
    }

    /// Whether `object` satisfies every term.
    pub(crate) fn matches(&self, kind: Kind, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            let value = |key: &str| lookup(kind, object, key);
            match term {
                Term::Equals(k, v) => value(k).as_deref() == Some(v.as_str()),
                // As in Kubernetes, `k!=v` also holds when `k` is absent.
                Term::NotEquals(k, v) => value(k).as_deref() != Some(v.as_str()),
                Term::Exists(k) => value(k).is_some(),
                Term::Absent(k) => value(k).is_none(),
            }
        })
    }
}

fn lookup(kind: Kind, object: &Value, key: &str) -> Option<String> {
    let found = match kind {
        Kind::Label => object["metadata"]["labels"].get(key)?,
        Kind::Field => key
            .split('.')
            .try_fold(object, |value, part| value.get(part))?,
    };
    match found {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_and_existence_terms_filter_like_the_api_server() {
        let pod = json!({
            "metadata": {"name": "web-0", "labels": {"app": "web", "tier": "front"}},
            "spec": {"nodeName": "w-1"},
            "status": {"phase": "Running"},
        });
        let labels = |s: &str| Selector::parse(s).unwrap().matches(Kind::Label, &pod);
        let fields = |s: &str| Selector::parse(s).unwrap().matches(Kind::Field, &pod);
        assert!(labels("app=web,tier==front"));
        assert!(labels("app,!canary"));
        assert!(labels("canary!=true"));
        assert!(!labels("app=db"));
        assert!(!labels("!app"));
        assert!(labels(""));
        assert!(fields("spec.nodeName=w-1,status.phase!=Succeeded"));
        assert!(!fields("metadata.name=web-1"));
        assert!(Selector::parse("app in (web,db)").is_err());
    }
}
