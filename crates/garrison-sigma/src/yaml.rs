//! A small YAML tree with line numbers, built on `serde-saphyr`.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One YAML node and the (1-based) line it starts on (0 when unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: usize,
    pub v: Yaml,
}

/// A YAML value. Maps keep their order.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn new(v: Yaml) -> Self {
        Node { line: 0, v }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Scalar rendered as text (strings as is, numbers and booleans formatted).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.v {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(fmt_float(*f)),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.v {
            Yaml::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A string or a list of strings (other scalars rendered as text).
    pub fn string_list(&self) -> Vec<String> {
        match &self.v {
            Yaml::Seq(items) => items.iter().filter_map(|n| n.scalar_text()).collect(),
            Yaml::Null => Vec::new(),
            _ => self.scalar_text().into_iter().collect(),
        }
    }
}

pub(crate) fn fmt_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<Inner>::deserialize(d)?;
        Ok(Node {
            line: s.referenced.line() as usize,
            v: s.value.0,
        })
    }
}

struct Inner(Yaml);

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YVisitor)
    }
}

struct YVisitor;

impl<'de> Visitor<'de> for YVisitor {
    type Value = Inner;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Inner, E> {
        Ok(Inner(Yaml::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Inner, E> {
        Ok(Inner(Yaml::Int(v as i128)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Inner, E> {
        Ok(Inner(Yaml::Int(v as i128)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Inner, E> {
        Ok(Inner(Yaml::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Inner, E> {
        Ok(Inner(Yaml::Int(v.min(i128::MAX as u128) as i128)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Inner, E> {
        Ok(Inner(Yaml::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Inner, E> {
        Ok(Inner(Yaml::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Inner, E> {
        Ok(Inner(Yaml::Str(v)))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Inner, E> {
        Ok(Inner(Yaml::Str(String::from_utf8_lossy(v).into_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner(Yaml::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner(Yaml::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Inner, D::Error> {
        Inner::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inner, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            v.push(n);
        }
        Ok(Inner(Yaml::Seq(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner, A::Error> {
        let mut v = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let val = map.next_value::<Node>()?;
            v.push((k, val));
        }
        Ok(Inner(Yaml::Map(v)))
    }
}

/// Parse every YAML document of `text`. On a syntax error gives the message and the line.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, (String, Option<usize>)> {
    let opts = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    serde_saphyr::from_multiple_with_options::<Node>(text, opts).map_err(|e| {
        let line = e.location().map(|l| l.line() as usize).filter(|l| *l > 0);
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("YAML error").to_string();
        (first, line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_lines() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n---\nc: null\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        match &b.v {
            Yaml::Seq(items) => {
                assert_eq!(items[0].line, 3);
                assert_eq!(items[1].as_str(), Some("y"));
            }
            _ => panic!(),
        }
        assert_eq!(docs[0].get("a").unwrap().v, Yaml::Int(1));
        assert_eq!(docs[1].get("c").unwrap().v, Yaml::Null);
    }
}
