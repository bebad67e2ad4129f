//! Splits a body into top-level JSON values without parsing them, so that limits are checked
//! before `serde_json` recurses, and so that a broken record does not take its neighbours down.
//!
//! The structural scan tracks only strings, bracket depth and `:` (one per object key). Values
//! that pass it are parsed with `serde_json::from_slice`, which does the real validation.

use crate::Limits;
use serde_json::Value;

pub(crate) struct Bounds {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_fields: usize,
}

impl Bounds {
    pub fn from_limits(limits: &Limits) -> Bounds {
        Bounds {
            max_bytes: limits.max_line_bytes,
            max_depth: limits.max_depth,
            max_fields: limits.max_fields,
        }
    }
}

pub(crate) enum Item<'a> {
    /// A value and the exact bytes it was parsed from.
    Value {
        value: Value,
        text: &'a [u8],
    },
    Error {
        line: usize,
        reason: String,
    },
}

enum End {
    /// The value ends before this offset.
    Complete(usize),
    /// The value cannot be valid; `at` is where that became clear.
    Broken { at: usize, why: &'static str },
    /// Input ended inside the value.
    Unterminated,
    /// The value is longer than allowed (scan stopped there).
    TooLong,
}

struct Scan {
    end: End,
    depth: usize,
    fields: usize,
}

/// Tracks line numbers incrementally so the whole body is counted once.
struct Lines<'a> {
    body: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Lines<'a> {
    fn new(body: &'a [u8], first_line: usize) -> Self {
        Lines {
            body,
            pos: 0,
            line: first_line.max(1),
            line_start: 0,
        }
    }

    /// Line (1-based) and column (1-based, bytes) of `pos`. Callers pass non-decreasing
    /// positions (value starts); a smaller one is clamped to the last line seen.
    fn at(&mut self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.body.len());
        if pos > self.pos {
            let seg = self.body.get(self.pos..pos).unwrap_or(&[]);
            let n = memchr::memchr_iter(b'\n', seg).count();
            if n > 0 {
                self.line += n;
                if let Some(last) = memchr::memrchr(b'\n', seg) {
                    self.line_start = self.pos + last + 1;
                }
            }
            self.pos = pos;
        }
        (self.line, pos.saturating_sub(self.line_start) + 1)
    }
}

/// Line and column of `at`, given the line and column of an earlier position `from`.
fn relative(body: &[u8], from: usize, line: usize, col: usize, at: usize) -> (usize, usize) {
    let seg = body.get(from..at.min(body.len())).unwrap_or(&[]);
    match memchr::memrchr(b'\n', seg) {
        Some(last) => (
            line + memchr::memchr_iter(b'\n', seg).count(),
            seg.len() - last,
        ),
        None => (line, col + seg.len()),
    }
}

fn first_byte(body: &[u8], pos: usize) -> u8 {
    body.get(pos).copied().unwrap_or(b' ')
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(body: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = body.get(pos) {
        if !is_ws(b) {
            break;
        }
        pos += 1;
    }
    pos
}

/// Next position after `from` where a line starts with `{` or `[`, or the end of the body.
fn resync(body: &[u8], from: usize) -> usize {
    let mut pos = from;
    while let Some(seg) = body.get(pos..) {
        match memchr::memchr(b'\n', seg) {
            Some(i) => {
                let start = pos + i + 1;
                if matches!(body.get(start), Some(b'{') | Some(b'[')) {
                    return start;
                }
                pos = start;
            }
            None => break,
        }
    }
    body.len()
}

/// Finds the end of the string whose opening quote is at `open`.
fn scan_string(body: &[u8], open: usize, limit: usize) -> Result<usize, End> {
    let mut pos = open + 1;
    loop {
        let seg = match body.get(pos..limit) {
            Some(seg) => seg,
            None => return Err(too_long_or_eof(body, limit)),
        };
        match memchr::memchr3(b'"', b'\\', b'\n', seg) {
            Some(i) => {
                let at = pos + i;
                match body.get(at) {
                    Some(b'"') => return Ok(at + 1),
                    Some(b'\\') => {
                        // An escaped raw newline is as invalid as a bare one: the line is cut.
                        if body.get(at + 1) == Some(&b'\n') {
                            return Err(End::Broken {
                                at: at + 1,
                                why: "string not closed before end of line",
                            });
                        }
                        pos = at + 2;
                    }
                    _ => {
                        return Err(End::Broken {
                            at,
                            why: "string not closed before end of line",
                        })
                    }
                }
            }
            None => return Err(too_long_or_eof(body, limit)),
        }
    }
}

fn too_long_or_eof(body: &[u8], limit: usize) -> End {
    if limit < body.len() {
        End::TooLong
    } else {
        End::Unterminated
    }
}

/// Structural scan of the value starting at `start` (not whitespace).
///
/// `strict`: a newline followed by `{` inside a container ends the value as broken; used after
/// the first error so resynchronising stays linear.
fn scan(body: &[u8], start: usize, max_bytes: usize, strict: bool) -> Scan {
    // One byte beyond the allowed length, so "exactly max_bytes" still completes.
    let limit = start.saturating_add(max_bytes).min(body.len());
    let mut out = Scan {
        end: End::Unterminated,
        depth: 0,
        fields: 0,
    };
    let Some(&first) = body.get(start) else {
        return out;
    };
    match first {
        b'{' | b'[' => {}
        b'"' => {
            out.end = match scan_string(body, start, limit) {
                Ok(end) => End::Complete(end),
                Err(e) => e,
            };
            return out;
        }
        b'}' | b']' | b',' | b':' => {
            out.end = End::Broken {
                at: start,
                why: "unexpected character",
            };
            return out;
        }
        _ => {
            // Scalar: runs to whitespace or a structural character; serde_json validates it.
            let mut pos = start;
            while let Some(&b) = body.get(pos) {
                if is_ws(b) || matches!(b, b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"') {
                    break;
                }
                pos += 1;
                if pos - start > max_bytes {
                    out.end = End::TooLong;
                    return out;
                }
            }
            out.end = End::Complete(pos);
            return out;
        }
    }
    let mut depth = 0usize;
    let mut pos = start;
    while pos < limit {
        let b = body.get(pos).copied().unwrap_or(b' ');
        match b {
            b'"' => match scan_string(body, pos, limit) {
                Ok(end) => {
                    pos = end;
                    continue;
                }
                Err(e) => {
                    out.end = e;
                    return out;
                }
            },
            b'{' | b'[' => {
                depth += 1;
                out.depth = out.depth.max(depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.end = End::Complete(pos + 1);
                    return out;
                }
            }
            b':' => out.fields += 1,
            b'\n' if strict && matches!(body.get(pos + 1), Some(b'{') | Some(b'[')) => {
                out.end = End::Broken {
                    at: pos,
                    why: "value not closed before the next line starting with '{' or '['",
                };
                return out;
            }
            _ => {}
        }
        pos += 1;
    }
    out.end = too_long_or_eof(body, limit);
    out
}

/// Strips serde_json's " at line L column C" suffix so the position can be rewritten against
/// the whole body.
fn serde_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(msg) => msg.to_owned(),
        None => full,
    }
}

/// Calls `f` for every top-level value (and, with `expand_arrays`, every element of a top-level
/// array) in order. Returns whether the body had anything but whitespace.
pub(crate) fn for_each_value(
    body: &[u8],
    bounds: &Bounds,
    expand_arrays: bool,
    first_line: usize,
    mut f: impl FnMut(Item),
) -> bool {
    let mut lines = Lines::new(body, first_line);
    let mut pos = 0;
    if body.starts_with(b"\xEF\xBB\xBF") {
        pos = 3;
    }
    let mut strict = false;
    let mut seen_any = false;
    // Inside a top-level array: elements are separated by ',' and closed by ']'.
    let mut in_array = false;
    loop {
        pos = skip_ws(body, pos);
        let Some(&b) = body.get(pos) else {
            if in_array {
                let (line, _) = lines.at(pos);
                f(Item::Error {
                    line,
                    reason: format!("line {line}: array not closed before end of input"),
                });
            }
            break;
        };
        seen_any = true;
        if in_array && b == b']' {
            in_array = false;
            pos += 1;
            continue;
        }
        if expand_arrays && !in_array && b == b'[' {
            in_array = true;
            pos += 1;
            continue;
        }
        let start = pos;
        let (line, col) = lines.at(start);
        let sc = scan(body, start, bounds.max_bytes, strict);
        match sc.end {
            End::Complete(end) => {
                pos = end;
                if sc.depth > bounds.max_depth {
                    f(Item::Error {
                        line,
                        reason: format!(
                            "line {line}: nesting depth {} exceeds the limit of {}",
                            sc.depth, bounds.max_depth
                        ),
                    });
                } else if sc.fields > bounds.max_fields {
                    f(Item::Error {
                        line,
                        reason: format!(
                            "line {line}: {} fields exceed the limit of {}",
                            sc.fields, bounds.max_fields
                        ),
                    });
                } else {
                    let slice = body.get(start..end).unwrap_or(&[]);
                    match serde_json::from_slice::<Value>(slice) {
                        Ok(value) => f(Item::Value { value, text: slice }),
                        Err(e) => {
                            let container = matches!(first_byte(body, start), b'{' | b'[');
                            // A bad scalar is usually a non-JSON line: skip the line, not just
                            // the word. A bad value spanning lines may have swallowed good
                            // lines (a truncated record closed by a later stray '}'): rescan
                            // them.
                            if !container || memchr::memchr(b'\n', slice).is_some() {
                                strict = true;
                                pos = resync(body, start);
                            }
                            let msg = serde_message(&e);
                            let reason = if e.line() == 0 {
                                format!("line {line}: {msg}")
                            } else {
                                let abs_line = line + e.line() - 1;
                                let abs_col = if e.line() == 1 {
                                    col + e.column().saturating_sub(1)
                                } else {
                                    e.column()
                                };
                                format!("line {abs_line}: {msg} at column {abs_col}")
                            };
                            f(Item::Error { line, reason });
                        }
                    }
                }
                if in_array {
                    pos = skip_ws(body, pos);
                    match body.get(pos) {
                        Some(b',') => pos += 1,
                        Some(b']') => {
                            pos += 1;
                            in_array = false;
                        }
                        None => {}
                        Some(_) => {
                            let (eline, ecol) = relative(body, start, line, col, pos);
                            f(Item::Error {
                                line: eline,
                                reason: format!(
                                    "line {eline}: expected ',' or ']' after array element at column {ecol}"
                                ),
                            });
                            in_array = false;
                            strict = true;
                            // The element ended but the array did not continue: what follows
                            // may itself be a good record starting on this very line.
                            let at_line_start = pos == 0 || body.get(pos - 1) == Some(&b'\n');
                            if !(at_line_start && matches!(body.get(pos), Some(b'{') | Some(b'[')))
                            {
                                pos = resync(body, pos);
                            }
                        }
                    }
                }
            }
            End::Broken { at, why } => {
                let (bline, bcol) = relative(body, start, line, col, at);
                let reason = if bline == line {
                    format!("line {line}: {why} at column {bcol}")
                } else {
                    format!("line {line}: value not closed: {why} at line {bline} column {bcol}")
                };
                f(Item::Error { line, reason });
                in_array = false;
                strict = true;
                pos = resync(body, start);
            }
            End::Unterminated => {
                f(Item::Error {
                    line,
                    reason: format!(
                        "line {line}: value starting at column {col} is not closed before end of input"
                    ),
                });
                in_array = false;
                strict = true;
                pos = resync(body, start);
            }
            End::TooLong => {
                f(Item::Error {
                    line,
                    reason: format!(
                        "line {line}: record exceeds the limit of {} bytes",
                        bounds.max_bytes
                    ),
                });
                in_array = false;
                strict = true;
                pos = resync(body, start);
            }
        }
    }
    seen_any
}
