//! A small element tree read with quick-xml, for the SOAP answers of cameras. Namespace
//! prefixes are dropped (cameras disagree on them; element names are what ONVIF fixes), DTDs and
//! entities other than XML's five are refused, and depth and element count are bounded.

use quick_xml::events::Event;

const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 20_000;

#[derive(Debug, Default, Clone)]
pub struct Element {
    /// Local name, without a namespace prefix.
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

fn local(qname: &[u8]) -> String {
    let s = String::from_utf8_lossy(qname);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

/// Why a camera's answer is not a document [`parse`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// quick-xml found the text not well-formed at byte `at`.
    #[error("not well-formed XML at byte {at}: {why}")]
    Syntax { at: u64, why: String },
    /// A part (an attribute, its value, text, CDATA, an entity or character reference) that
    /// does not decode.
    #[error("bad {what}: {why}")]
    Bad { what: &'static str, why: String },
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    /// Elements that do not make one tree.
    #[error("{0}")]
    Shape(&'static str),
    /// Past [`MAX_DEPTH`] or [`MAX_ELEMENTS`].
    #[error("{0}")]
    TooLarge(&'static str),
    #[error("DTDs are not accepted")]
    Dtd,
}

impl XmlError {
    fn bad(what: &'static str, why: impl std::fmt::Display) -> Self {
        Self::Bad {
            what,
            why: why.to_string(),
        }
    }
}

/// Parses `text` into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let cfg = reader.config_mut();
    // Not trimmed here: an entity splits text into pieces whose spaces matter ("a &amp; b").
    cfg.trim_text(false);
    cfg.check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    let mut root = None;
    let open = |e: &quick_xml::events::BytesStart| -> Result<Element, XmlError> {
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| XmlError::bad("attribute", e))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| XmlError::bad("attribute value", e))?;
            attrs.push((local(a.key.as_ref()), v.into_owned()));
        }
        Ok(Element {
            name: local(e.name().as_ref()),
            attrs,
            ..Default::default()
        })
    };
    loop {
        let ev = reader.read_event().map_err(|e| XmlError::Syntax {
            at: reader.error_position(),
            why: e.to_string(),
        })?;
        match ev {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::Shape("content after the root element"));
            }
            Event::Start(e) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge(
                        "XML nested too deep or too many elements",
                    ));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge("XML has too many elements"));
                }
                let el = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or(XmlError::Shape("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| XmlError::bad("text", e))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| XmlError::bad("CDATA", e))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.decode().map_err(|e| XmlError::bad("entity", e))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::UnknownEntity(name.to_string()))?
                            .to_string()
                    }
                    Err(e) => return Err(XmlError::bad("character reference", e)),
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Shape("XML ends inside an element"));
    }
    root.ok_or(XmlError::Shape("no XML element"))
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at the end of a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The trimmed text at the end of a path, if there is any.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.at(path)
            .map(|e| e.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    /// The first element named `name` anywhere below (depth first), or this one.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every child named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefixed_elements_text_and_entities() {
        let doc = parse(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><a:R b:token="p&amp;1"><a:Uri>rtsp://h/x?a=1&amp;b=2&#33;</a:Uri><a:M> A &amp; B </a:M><a:E/></a:R></s:Body></s:Envelope>"#,
        )
        .unwrap();
        let r = doc.at(&["Body", "R"]).unwrap();
        assert_eq!(r.attr("token"), Some("p&1"));
        assert_eq!(
            doc.text_at(&["Body", "R", "Uri"]).unwrap(),
            "rtsp://h/x?a=1&b=2!"
        );
        assert_eq!(doc.text_at(&["Body", "R", "M"]).unwrap(), "A & B");
        assert!(doc.find("E").is_some());
    }

    #[test]
    fn refuses_what_is_not_plain_xml() {
        for bad in [
            "",
            "garbage",
            "<a><b></a>",
            "<a>",
            "<a/><b/>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a>&nope;</a>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).unwrap_err().to_string().contains("deep"));
    }
}
