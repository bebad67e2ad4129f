//! Compiled value matchers.

use crate::sstr::{lower_bytes, Part, SStr};
use memchr::memmem;

/// Where a literal must sit in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anchor {
    Exact,
    Start,
    End,
    Anywhere,
}

#[derive(Clone, Debug)]
pub enum GTok {
    Lit(Vec<u8>),
    One,
}

/// A string pattern over bytes (lowercased unless `cased`).
#[derive(Clone, Debug)]
pub enum StrPat {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Box<memmem::Finder<'static>>),
    /// `*`: anything (a present value)
    Any,
    /// Segments separated by `*`; `anchored_start` / `anchored_end` tell whether the first / last
    /// segment is tied to the value's start / end.
    Glob {
        segs: Vec<Vec<GTok>>,
        anchored_start: bool,
        anchored_end: bool,
    },
}

#[derive(Clone, Debug)]
pub struct StrMatcher {
    pub pat: StrPat,
    pub cased: bool,
}

impl StrMatcher {
    pub fn new(s: &SStr, cased: bool) -> StrMatcher {
        let conv = |b: &[u8]| if cased { b.to_vec() } else { lower_bytes(b) };
        let parts = &s.0;
        let lead = parts.first() == Some(&Part::Star);
        let trail = parts.len() > 1 && parts.last() == Some(&Part::Star);
        let inner = &parts[lead as usize..parts.len() - trail as usize];
        let pat = if parts.is_empty() {
            StrPat::Exact(Vec::new())
        } else if inner.is_empty() {
            StrPat::Any
        } else if let [Part::Lit(l)] = inner {
            let l = conv(l);
            match (lead, trail) {
                (false, false) => StrPat::Exact(l),
                (false, true) => StrPat::Prefix(l),
                (true, false) => StrPat::Suffix(l),
                (true, true) => StrPat::Contains(Box::new(memmem::Finder::new(&l).into_owned())),
            }
        } else {
            let mut segs: Vec<Vec<GTok>> = vec![Vec::new()];
            for p in parts {
                match p {
                    Part::Star => segs.push(Vec::new()),
                    Part::One => segs.last_mut().unwrap().push(GTok::One),
                    Part::Lit(l) => segs.last_mut().unwrap().push(GTok::Lit(conv(l))),
                    Part::Placeholder(p) => {
                        // unresolved placeholders are rejected before; treat literally
                        segs.last_mut()
                            .unwrap()
                            .push(GTok::Lit(format!("%{p}%").into_bytes()))
                    }
                }
            }
            StrPat::Glob {
                anchored_start: !lead,
                anchored_end: !parts.last().map(|p| *p == Part::Star).unwrap_or(false),
                segs,
            }
        };
        StrMatcher { pat, cased }
    }

    /// The literal usable as a prefilter: (anchor, bytes) that must occur for a match.
    pub fn prefilter_literal(&self) -> Option<(Anchor, &[u8])> {
        if self.cased {
            return None;
        }
        match &self.pat {
            StrPat::Exact(l) if !l.is_empty() => Some((Anchor::Exact, l)),
            StrPat::Prefix(l) if !l.is_empty() => Some((Anchor::Start, l)),
            StrPat::Suffix(l) if !l.is_empty() => Some((Anchor::End, l)),
            StrPat::Contains(f) if !f.needle().is_empty() => Some((Anchor::Anywhere, f.needle())),
            StrPat::Glob {
                segs,
                anchored_start,
                ..
            } => {
                let mut best: Option<(Anchor, &[u8])> = None;
                for (si, seg) in segs.iter().enumerate() {
                    for (ti, t) in seg.iter().enumerate() {
                        if let GTok::Lit(l) = t {
                            let anchor = if si == 0 && ti == 0 && *anchored_start {
                                Anchor::Start
                            } else {
                                Anchor::Anywhere
                            };
                            if best.map(|(_, b)| b.len() < l.len()).unwrap_or(true) {
                                best = Some((anchor, l));
                            }
                        }
                    }
                }
                best
            }
            _ => None,
        }
    }

    /// A key identifying a plain literal pattern (kind, bytes), for sharing equal matchers.
    pub fn literal_key(&self) -> Option<(u8, &[u8])> {
        match &self.pat {
            StrPat::Exact(l) => Some((0, l)),
            StrPat::Prefix(l) => Some((1, l)),
            StrPat::Suffix(l) => Some((2, l)),
            StrPat::Contains(f) => Some((3, f.needle())),
            StrPat::Any => Some((4, &[])),
            StrPat::Glob { .. } => None,
        }
    }

    /// The (anchor, literal) that decides this matcher exactly (plain, uncased literal patterns).
    pub fn decided_literal(&self) -> Option<(Anchor, &[u8])> {
        match &self.pat {
            StrPat::Glob { .. } | StrPat::Any => None,
            _ => self.prefilter_literal(),
        }
    }

    #[inline]
    pub fn is_match(&self, raw: &[u8], lower: &[u8]) -> bool {
        let h = if self.cased { raw } else { lower };
        match &self.pat {
            StrPat::Exact(l) => h == l.as_slice(),
            StrPat::Prefix(l) => h.starts_with(l),
            StrPat::Suffix(l) => h.ends_with(l),
            StrPat::Contains(f) => f.find(h).is_some(),
            StrPat::Any => true,
            StrPat::Glob {
                segs,
                anchored_start,
                anchored_end,
            } => glob_match(segs, *anchored_start, *anchored_end, h),
        }
    }
}

/// Length of the UTF-8 character starting at `b[0]` (1 for invalid bytes).
#[inline]
fn char_len(b: &[u8]) -> usize {
    let n = match b[0] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    n.min(b.len())
}

/// Match one segment at `pos`; returns the end offset.
fn seg_at(seg: &[GTok], h: &[u8], mut pos: usize) -> Option<usize> {
    for t in seg {
        match t {
            GTok::Lit(l) => {
                if h.len() < pos + l.len() || &h[pos..pos + l.len()] != l.as_slice() {
                    return None;
                }
                pos += l.len();
            }
            GTok::One => {
                if pos >= h.len() {
                    return None;
                }
                pos += char_len(&h[pos..]);
            }
        }
    }
    Some(pos)
}

fn glob_match(segs: &[Vec<GTok>], anchored_start: bool, anchored_end: bool, h: &[u8]) -> bool {
    let n = segs.len();
    let mut pos = 0usize;
    for (i, seg) in segs.iter().enumerate() {
        let first = i == 0;
        let last = i == n - 1;
        if seg.is_empty() {
            if last && !first {
                return true; // trailing star
            }
            if last && first {
                return h.is_empty() || !anchored_end;
            }
            continue;
        }
        if first && anchored_start {
            match seg_at(seg, h, 0) {
                Some(e) => {
                    if last && anchored_end {
                        return e == h.len();
                    }
                    pos = e;
                }
                None => return false,
            }
            continue;
        }
        if last && anchored_end {
            // try start positions from the end backwards
            let mut s = h.len();
            loop {
                if s >= pos && (s == h.len() || (h[s] & 0xC0) != 0x80) {
                    if let Some(e) = seg_at(seg, h, s) {
                        if e == h.len() {
                            return true;
                        }
                    }
                }
                if s == pos {
                    return false;
                }
                s -= 1;
            }
        }
        // leftmost occurrence from pos
        let mut s = pos;
        let found = loop {
            if s > h.len() {
                break None;
            }
            if let Some(GTok::Lit(l)) = seg.first() {
                match memmem::find(&h[s..], l) {
                    Some(off) => s += off,
                    None => break None,
                }
            }
            if let Some(e) = seg_at(seg, h, s) {
                break Some(e);
            }
            s += 1;
        };
        match found {
            Some(e) => pos = e,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, v: &str) -> bool {
        let sm = StrMatcher::new(&SStr::parse(pat, false), false);
        let lower = v.to_lowercase();
        sm.is_match(v.as_bytes(), lower.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("abc", "ABC"));
        assert!(!m("abc", "abcd"));
        assert!(m("ab*", "abcd"));
        assert!(m("*cd", "abcd"));
        assert!(m("*bc*", "abcd"));
        assert!(m("a*d", "abcd"));
        assert!(m("a?c?", "abcd"));
        assert!(!m("a?c", "abcd"));
        assert!(m("*\\cmd.exe", "C:\\Windows\\cmd.exe"));
        assert!(m(r"c:\\*\\sys*32\\*.exe", r"C:\Windows\System32\x.exe"));
        assert!(!m(r"c:\\*\\sys*32\\*.exe", r"C:\Windows\System32\x.dll"));
        assert!(!m(r"c:\*", r"C:\x"));
        assert!(m(r"c:\*", r"C:*"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("?", "é"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("*a*a", "aaa"));
        assert!(m("prog?.exe", "progA.exe"));
        assert!(m("te\\*st", "te*st"));
        assert!(!m("te\\*st", "teXst"));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
    }
}
