//! Sigma string values: wildcards, escapes, placeholders, and the value-transforming modifiers.

use base64::Engine as _;
use std::collections::HashMap;

/// One piece of a Sigma string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Lit(Vec<u8>),
    /// `*`
    Star,
    /// `?`
    One,
    /// `%name%` (only with the `expand` modifier)
    Placeholder(String),
}

/// A parsed Sigma string: literal bytes and wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct SStr(pub Vec<Part>);

impl SStr {
    pub fn literal(b: &[u8]) -> Self {
        let mut s = SStr::default();
        s.push_lit(b);
        s
    }

    fn push_lit(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(Part::Lit(l)) = self.0.last_mut() {
            l.extend_from_slice(b);
        } else {
            self.0.push(Part::Lit(b.to_vec()));
        }
    }

    fn push(&mut self, p: Part) {
        match p {
            Part::Lit(l) => self.push_lit(&l),
            Part::Star => {
                if self.0.last() != Some(&Part::Star) {
                    self.0.push(Part::Star)
                }
            }
            other => self.0.push(other),
        }
    }

    /// Parse a rule value: `*`, `?` wildcards, `\` escapes, and `%name%` placeholders when asked.
    pub fn parse(s: &str, placeholders: bool) -> SStr {
        let mut out = SStr::default();
        let mut lit: Vec<u8> = Vec::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let flush = |out: &mut SStr, lit: &mut Vec<u8>| {
            out.push_lit(lit);
            lit.clear();
        };
        let mut buf = [0u8; 4];
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\\' => {
                    let next = chars.get(i + 1).copied();
                    match next {
                        Some('*') | Some('?') | Some('\\') => {
                            lit.extend_from_slice(next.unwrap().encode_utf8(&mut buf).as_bytes());
                            i += 2;
                        }
                        Some('%') if placeholders => {
                            lit.push(b'%');
                            i += 2;
                        }
                        _ => {
                            lit.push(b'\\');
                            i += 1;
                        }
                    }
                }
                '*' => {
                    flush(&mut out, &mut lit);
                    out.push(Part::Star);
                    i += 1;
                }
                '?' => {
                    flush(&mut out, &mut lit);
                    out.push(Part::One);
                    i += 1;
                }
                '%' if placeholders => {
                    // %name% with a name of word characters
                    let mut j = i + 1;
                    while j < chars.len()
                        && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '-')
                    {
                        j += 1;
                    }
                    if j < chars.len() && chars[j] == '%' && j > i + 1 {
                        flush(&mut out, &mut lit);
                        out.0
                            .push(Part::Placeholder(chars[i + 1..j].iter().collect()));
                        i = j + 1;
                    } else {
                        lit.push(b'%');
                        i += 1;
                    }
                }
                _ => {
                    lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 1;
                }
            }
        }
        flush(&mut out, &mut lit);
        out
    }

    pub fn has_placeholders(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Placeholder(_)))
    }

    /// The plain bytes when there is no wildcard or placeholder.
    pub fn plain(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        for p in &self.0 {
            match p {
                Part::Lit(l) => v.extend_from_slice(l),
                _ => return None,
            }
        }
        Some(v)
    }

    pub fn starts_with_star(&self) -> bool {
        self.0.first() == Some(&Part::Star)
    }
    pub fn ends_with_star(&self) -> bool {
        self.0.last() == Some(&Part::Star)
    }

    pub fn contains(mut self) -> SStr {
        if !self.starts_with_star() {
            self.0.insert(0, Part::Star);
        }
        if !self.ends_with_star() {
            self.0.push(Part::Star);
        }
        self
    }
    pub fn startswith(mut self) -> SStr {
        if !self.ends_with_star() {
            self.0.push(Part::Star);
        }
        self
    }
    pub fn endswith(mut self) -> SStr {
        if !self.starts_with_star() {
            self.0.insert(0, Part::Star);
        }
        self
    }

    /// Map every literal part, keeping wildcards.
    fn map_lits(&self, f: impl Fn(&[u8]) -> Vec<u8>) -> SStr {
        let mut out = SStr::default();
        for p in &self.0 {
            match p {
                Part::Lit(l) => out.push_lit(&f(l)),
                other => out.push(other.clone()),
            }
        }
        out
    }

    pub fn utf16(&self, enc: Utf16) -> SStr {
        let mut s = self.map_lits(|l| {
            let text = String::from_utf8_lossy(l);
            let mut out = Vec::with_capacity(l.len() * 2);
            for u in text.encode_utf16() {
                match enc {
                    Utf16::Be => out.extend_from_slice(&u.to_be_bytes()),
                    _ => out.extend_from_slice(&u.to_le_bytes()),
                }
            }
            out
        });
        if enc == Utf16::Bom {
            let mut v = vec![Part::Lit(vec![0xFF, 0xFE])];
            v.append(&mut s.0);
            let mut r = SStr::default();
            for p in v {
                r.push(p);
            }
            s = r;
        }
        s
    }

    pub fn base64(&self) -> Result<SStr, String> {
        let plain = self
            .plain()
            .ok_or("base64 of a value with wildcards is not allowed")?;
        Ok(SStr::literal(
            base64::engine::general_purpose::STANDARD
                .encode(&plain)
                .as_bytes(),
        ))
    }

    /// The three base64 encodings of the value at offsets 0, 1 and 2 (the stable middle parts).
    pub fn base64offset(&self) -> Result<Vec<SStr>, String> {
        let plain = self
            .plain()
            .ok_or("base64offset of a value with wildcards is not allowed")?;
        let start = [0usize, 2, 3];
        let end_trim = [0usize, 3, 2];
        let mut out = Vec::new();
        for i in 0..3 {
            let mut v = vec![b' '; i];
            v.extend_from_slice(&plain);
            let enc = base64::engine::general_purpose::STANDARD.encode(&v);
            let e = enc.len() - end_trim[(plain.len() + i) % 3];
            if start[i] <= e {
                let s = SStr::literal(&enc.as_bytes()[start[i]..e]);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// Every variant with word-leading dashes replaced by each of `-`, `/`, en dash, em dash and
    /// horizontal bar.
    pub fn windash(&self) -> Result<Vec<SStr>, String> {
        const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
        // Work per part; a dash is replaceable when it starts a word (pySigma: `\B[-/]\b`).
        let mut variants: Vec<SStr> = vec![SStr::default()];
        let parts = &self.0;
        for (pi, p) in parts.iter().enumerate() {
            match p {
                Part::Lit(l) => {
                    let text = String::from_utf8_lossy(l).into_owned();
                    let chars: Vec<char> = text.chars().collect();
                    // Segments: Some(literal) or None (a dash position)
                    let mut segs: Vec<Option<String>> = Vec::new();
                    let mut cur = String::new();
                    for (ci, c) in chars.iter().enumerate() {
                        let prev_word = if ci == 0 {
                            // previous part: wildcard/placeholder count as non-word
                            match pi.checked_sub(1).and_then(|k| parts.get(k)) {
                                Some(Part::Lit(pl)) => pl
                                    .last()
                                    .map(|b| b.is_ascii_alphanumeric() || *b == b'_')
                                    .unwrap_or(false),
                                _ => false,
                            }
                        } else {
                            is_word(chars[ci - 1])
                        };
                        let next_word = chars.get(ci + 1).map(|c| is_word(*c)).unwrap_or(false);
                        if DASHES.contains(c) && !prev_word && next_word {
                            segs.push(Some(std::mem::take(&mut cur)));
                            segs.push(None);
                        } else {
                            cur.push(*c);
                        }
                    }
                    segs.push(Some(cur));
                    for seg in segs {
                        match seg {
                            Some(s) => {
                                for v in variants.iter_mut() {
                                    v.push_lit(s.as_bytes());
                                }
                            }
                            None => {
                                if variants.len() * DASHES.len() > 20_000 {
                                    return Err("windash: too many dash permutations".into());
                                }
                                let mut next = Vec::with_capacity(variants.len() * 5);
                                for v in &variants {
                                    for d in DASHES {
                                        let mut nv = v.clone();
                                        let mut b = [0u8; 4];
                                        nv.push_lit(d.encode_utf8(&mut b).as_bytes());
                                        next.push(nv);
                                    }
                                }
                                variants = next;
                            }
                        }
                    }
                }
                other => {
                    for v in variants.iter_mut() {
                        v.push(other.clone());
                    }
                }
            }
        }
        Ok(variants)
    }

    /// Replace placeholders by each of their values (the cartesian product when several).
    pub fn expand(&self, map: &HashMap<String, Vec<String>>) -> Result<Vec<SStr>, String> {
        let mut variants = vec![SStr::default()];
        for p in &self.0 {
            match p {
                Part::Placeholder(name) => {
                    let vals = map
                        .get(name)
                        .or_else(|| {
                            map.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v)
                        })
                        .ok_or_else(|| format!("unresolved placeholder %{name}%"))?;
                    if vals.is_empty() {
                        return Err(format!("placeholder %{name}% has no values"));
                    }
                    let mut next = Vec::new();
                    for v in &variants {
                        for val in vals {
                            let mut nv = v.clone();
                            for vp in SStr::parse(val, false).0 {
                                nv.push(vp);
                            }
                            next.push(nv);
                        }
                    }
                    if next.len() > 10_000 {
                        return Err("placeholder expansion too large".into());
                    }
                    variants = next;
                }
                other => {
                    for v in variants.iter_mut() {
                        v.push(other.clone());
                    }
                }
            }
        }
        Ok(variants)
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf16 {
    Le,
    Be,
    Bom,
}

/// Lowercase bytes: Unicode lowercase when they are UTF-8, ASCII lowercase otherwise.
pub fn lower_bytes(b: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(b) {
        Ok(s) => {
            let mut out = String::with_capacity(s.len());
            lower_into(s, &mut out);
            out.into_bytes()
        }
        Err(_) => b.to_ascii_lowercase(),
    }
}

/// Lowercase `src` into `dst` (cleared first), with an ASCII fast path.
pub fn lower_into(src: &str, dst: &mut String) {
    dst.clear();
    if src.is_ascii() {
        dst.push_str(src);
        dst.make_ascii_lowercase();
        return;
    }
    // ASCII runs are copied and lowercased in bulk; only the other characters one by one.
    let mut rest = src;
    loop {
        let run = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        let (ascii, tail) = rest.split_at(run);
        let start = dst.len();
        dst.push_str(ascii);
        dst[start..].make_ascii_lowercase();
        let mut chars = tail.chars();
        match chars.next() {
            None => return,
            Some(c) => dst.extend(c.to_lowercase()),
        }
        rest = chars.as_str();
    }
}

/// `src` with its ASCII letters lowercased, into `dst`: for a search of ASCII patterns, the same
/// matches as [`lower_into`] when `src` has no character whose lowercase has an ASCII letter in
/// it (only `K`, the Kelvin sign, and `İ`; see [`has_ascii_lowering`]).
pub fn ascii_lower_into(src: &str, dst: &mut String) {
    dst.clear();
    dst.push_str(src);
    dst.make_ascii_lowercase();
}

/// Whether `src` has a non-ASCII character whose lowercase has an ASCII letter in it.
pub fn has_ascii_lowering(src: &str) -> bool {
    !src.is_ascii() && (src.contains('\u{212A}') || src.contains('\u{130}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn only_two_characters_lower_to_ascii() {
        // The premise of `ascii_lower_into`: checked over every character.
        let odd: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| !c.is_ascii() && c.to_lowercase().any(|l| l.is_ascii()))
            .collect();
        assert_eq!(odd, vec!['\u{130}', '\u{212A}']);
        assert!(has_ascii_lowering("x\u{212A}y") && !has_ascii_lowering("Éé"));
        let mut a = String::new();
        let mut b = String::new();
        for s in ["ABC", "Ünïcödé ABC", "ΣΑΣ x"] {
            lower_into(s, &mut a);
            ascii_lower_into(&a, &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(SStr::parse(r"a\*b", false).0, vec![lit("a*b")]);
        assert_eq!(SStr::parse(r"a\\*", false).0, vec![lit(r"a\"), Part::Star]);
        assert_eq!(SStr::parse(r"a\\\*", false).0, vec![lit(r"a\*")]);
        assert_eq!(SStr::parse(r"\\\\", false).0, vec![lit(r"\\")]);
        assert_eq!(
            SStr::parse(r"C:\Windows\", false).0,
            vec![lit(r"C:\Windows\")]
        );
        assert_eq!(SStr::parse(r"a\?b?", false).0, vec![lit("a?b"), Part::One]);
        assert_eq!(
            SStr::parse(r"\%plain%name%", true).0,
            vec![lit("%plain"), Part::Placeholder("name".into())]
        );
        assert_eq!(SStr::parse("%name%", false).0, vec![lit("%name%")]);
    }

    #[test]
    fn base64offset_matches_pysigma() {
        let v = SStr::literal(b"/c ping.exe").base64offset().unwrap();
        let got: Vec<String> = v
            .iter()
            .map(|s| String::from_utf8(s.plain().unwrap()).unwrap())
            .collect();
        assert_eq!(
            got,
            vec!["L2MgcGluZy5leG", "9jIHBpbmcuZXhl", "vYyBwaW5nLmV4Z"]
        );
    }

    #[test]
    fn windash_variants() {
        let v = SStr::literal(b"ping -n").windash().unwrap();
        assert_eq!(v.len(), 5);
        assert!(v.contains(&SStr::literal("ping \u{2015}n".as_bytes())));
        assert_eq!(SStr::literal(b"a-b").windash().unwrap().len(), 1);
    }

    #[test]
    fn utf16() {
        assert_eq!(
            SStr::literal(b"cmd").utf16(Utf16::Le).plain().unwrap(),
            b"c\0m\0d\0"
        );
        assert_eq!(
            SStr::literal(b"cmd").utf16(Utf16::Be).plain().unwrap(),
            b"\0c\0m\0d"
        );
        assert_eq!(
            SStr::literal(b"cmd").utf16(Utf16::Bom).plain().unwrap(),
            b"\xFF\xFEc\0m\0d\0"
        );
    }
}
