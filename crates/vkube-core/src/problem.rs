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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
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
