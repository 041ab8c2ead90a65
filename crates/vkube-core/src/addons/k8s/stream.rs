//! The multi-document YAML stream an add-on is applied as, and the
//! [`Manifest`] made from it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::meta::Object;
use crate::addons::{Addon, Manifest};

/// A multi-document YAML stream: an optional header comment, then one
/// `---` separated document per object, each written by
/// [`crate::yaml::to_string`] (YAML 1.1-safe: `on`, `no` or `0755` stay
/// strings for Go's and Python's YAML readers). It notes the images the
/// objects' pod templates run and whether it holds a Secret.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    text: String,
    images: BTreeSet<String>,
    has_secrets: bool,
}

impl Stream {
    /// A stream starting with `header` as `#` comment lines (none when
    /// `header` is empty).
    pub(crate) fn new(header: &str) -> Stream {
        let mut stream = Stream::default();
        stream.comment(header);
        stream
    }

    fn comment(&mut self, text: &str) {
        for line in text.lines() {
            self.text.push_str("# ");
            self.text.push_str(line);
            self.text.push('\n');
        }
    }

    /// Appends `object` as the next document.
    pub(crate) fn push<B: Serialize>(&mut self, object: &Object<B>) {
        self.push_commented("", object);
    }

    /// Appends `object` as the next document, with `comment` above it.
    pub(crate) fn push_commented<B: Serialize>(&mut self, comment: &str, object: &Object<B>) {
        let document = serde_yaml::to_value(object).expect("objects serialize");
        self.images.extend(pod_images(&document));
        self.has_secrets |= object.kind() == "Secret";
        self.text.push_str("---\n");
        self.comment(comment);
        self.text.push_str(&crate::yaml::to_string(&document));
    }

    /// Appends documents already rendered as YAML text (each starting with
    /// `---`), which run no pods and hold no secrets.
    pub(crate) fn push_rendered(&mut self, documents: &str) {
        self.text.push_str(documents);
    }

    /// The stream's text.
    pub(crate) fn finish(self) -> String {
        self.text
    }

    /// The manifest of `component` at `version` of `addon`, written to
    /// `file_name` on the node: the stream as its YAML, the images it runs
    /// (sorted) and whether it holds a Secret.
    pub(crate) fn into_manifest(
        self,
        addon: Addon,
        component: &str,
        version: &str,
        file_name: &str,
    ) -> Manifest {
        Manifest {
            addon,
            component: component.to_owned(),
            version: version.to_owned(),
            file_name: file_name.to_owned(),
            yaml: self.text,
            has_secrets: self.has_secrets,
            images: self.images.into_iter().collect(),
        }
    }
}

/// The images of a workload's pod template (containers and init
/// containers).
fn pod_images(document: &serde_yaml::Value) -> impl Iterator<Item = String> + '_ {
    let pod = &document["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(|list| pod[list].as_sequence())
        .flatten()
        .filter_map(|container| container["image"].as_str())
        .map(str::to_owned)
}
