//! One validation problem, naming its field (`spec.nodePools[1].cpu`,
//! `pools[2].gateway`, `zones[1].computeCluster`), and how a list of them
//! reads in an error. Shared by every validator in the core, so all of
//! vkube reports invalid input the same way.

use std::fmt;

/// One thing wrong with an input, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.controlPlane.replicas`.
    pub field: String,
    /// What is wrong, starting lowercase, e.g. `unknown domain "az3"`.
    pub message: String,
}

/// Longest field or message shown: messages quote what the user wrote,
/// and a 10 MB value must not come back whole on the terminal.
const MAX_SHOWN: usize = 300;

/// `text`, cut to [`MAX_SHOWN`] characters with a note of what was left out.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    let count = text.chars().count();
    if count <= MAX_SHOWN {
        return text.into();
    }
    let head: String = text.chars().take(MAX_SHOWN).collect();
    format!("{head}… ({} more characters)", count - MAX_SHOWN).into()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", shown(&self.field), shown(&self.message))
    }
}

/// `invalid <subject>: field: message`, or a count and one problem per line.
pub fn render(subject: &str, problems: &[Problem]) -> String {
    match problems {
        [one] => format!("invalid {subject}: {one}"),
        many => {
            let mut text = format!("invalid {subject}: {} problems", many.len());
            for problem in many {
                text.push_str("\n  ");
                text.push_str(&problem.to_string());
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_in_messages() {
        let problem = Problem {
            field: "metadata.name".into(),
            message: format!("`{}` is not a DNS label", "x".repeat(10_000_000)),
        };
        let text = problem.to_string();
        assert!(text.len() < 400, "{}", text.len());
        assert!(
            text.ends_with("(9999721 more characters)"),
            "{}",
            &text[text.len() - 40..]
        );
    }

    #[test]
    fn one_problem_is_one_line_and_many_are_listed() {
        let p = |f: &str| Problem {
            field: f.into(),
            message: "bad".into(),
        };
        assert_eq!(
            render("IP pool", &[p("gateway")]),
            "invalid IP pool: gateway: bad"
        );
        assert_eq!(
            render("topology", &[p("a"), p("b")]),
            "invalid topology: 2 problems\n  a: bad\n  b: bad"
        );
    }
}
