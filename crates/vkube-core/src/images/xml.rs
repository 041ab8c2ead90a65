//! A small element tree over `quick-xml`: OVF descriptors are a few KiB, so
//! reading them whole and walking the tree keeps the OVF rules readable.
//! Names are local names (namespace prefixes dropped: `ovf:href` → `href`),
//! which is how OVF consumers match them in practice.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// One element: local name, attributes by local name, children, text.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Element {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child named `name`, if not empty.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    /// An attribute by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

fn local(qualified: &str) -> String {
    qualified
        .rsplit_once(':')
        .map_or(qualified, |(_, l)| l)
        .to_string()
}

fn element_of(start: &BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = BTreeMap::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key: &str = attribute.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attributes.insert(local(key), value.into_owned());
    }
    let qualified = start.name();
    let name: &str = qualified.as_ref();
    Ok(Element {
        name: local(name),
        attributes,
        ..Default::default()
    })
}

/// Parse a whole document into its root element.
pub(crate) fn parse(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => stack.push(element_of(&start)?),
            Event::Empty(start) => {
                let element = element_of(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err("more than one root element".into()),
                }
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("an end tag without a start tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None if root.is_none() => root = Some(done),
                    None => return Err("more than one root element".into()),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let Some(current) = stack.last_mut() else {
                    continue;
                };
                if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    current.text.push(c);
                    continue;
                }
                let name = reference.into_inner();
                let resolved = match name.as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => return Err(format!("unknown entity `&{other};`")),
                };
                current.text.push(resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("the document ends inside `<{}>`", open.name));
    }
    root.ok_or_else(|| "the document has no root element".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_keep_local_names_attributes_and_text() {
        let doc = r#"<?xml version="1.0"?>
<a:Root xmlns:a="urn:a" a:id="r1"><Child k="v &amp; w">x &lt; y&#33;</Child><Empty/></a:Root>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Root");
        assert_eq!(root.attr("id"), Some("r1"));
        let child = root.child("Child").unwrap();
        assert_eq!(child.attr("k"), Some("v & w"));
        assert_eq!(child.text, "x < y!");
        assert!(root.child("Empty").is_some());
    }

    #[test]
    fn broken_documents_are_refused() {
        for bad in ["", "<a><b></a>", "<a>", "not xml at all <", "<a>&nope;</a>"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
