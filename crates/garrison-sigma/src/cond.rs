//! The condition language: `and`, `or`, `not`, parentheses, `N of pattern`, `all of them`.

/// How many of a group must hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    /// At least N (`1 of`, `2 of` ...)
    AtLeast(usize),
    All,
}

/// A parsed condition. `Of` groups are resolved to explicit identifier lists when parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Ident(String),
    Of(Quant, Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    Them,
    All,
    Num(usize),
    Ident(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == '|' {
            return Err(
                "aggregation expressions (`| count() ...`) are not part of Sigma v2: use a correlation rule"
                    .into(),
            );
        } else {
            let st = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | '|')
            {
                i += 1;
            }
            let w: String = chars[st..i].iter().collect();
            let t = match w.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "of" => Tok::Of,
                "them" => Tok::Them,
                "all" => Tok::All,
                _ => match w.parse::<usize>() {
                    Ok(n) => Tok::Num(n),
                    Err(_) => Tok::Ident(w),
                },
            };
            out.push(t);
        }
    }
    Ok(out)
}

/// Does `name` match the `*`-wildcard pattern?
pub fn wildcard_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    idents: &'a [String],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::Or(items)
        })
    }
    fn and(&mut self, depth: usize) -> Result<Cond, String> {
        let mut items = vec![self.not(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.not(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::And(items)
        })
    }
    fn not(&mut self, depth: usize) -> Result<Cond, String> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            if depth > 200 {
                return Err("condition nested too deeply".into());
            }
            return Ok(Cond::Not(Box::new(self.not(depth + 1)?)));
        }
        self.atom(depth)
    }
    fn atom(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > 200 {
            return Err("condition nested too deeply".into());
        }
        match self.next() {
            Some(Tok::LParen) => {
                let c = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(c),
                    _ => Err("missing closing parenthesis".into()),
                }
            }
            Some(Tok::Ident(id)) => {
                if !self.idents.contains(&id) {
                    return Err(format!("condition names unknown search identifier `{id}`"));
                }
                Ok(Cond::Ident(id))
            }
            Some(q @ (Tok::Num(_) | Tok::All)) => {
                let quant = match q {
                    Tok::Num(n) => Quant::AtLeast(n),
                    _ => Quant::All,
                };
                if self.next() != Some(Tok::Of) {
                    return Err("expected `of` after a quantifier".into());
                }
                let names: Vec<String> = match self.next() {
                    Some(Tok::Them) => self
                        .idents
                        .iter()
                        .filter(|i| !i.starts_with('_'))
                        .cloned()
                        .collect(),
                    Some(Tok::Ident(p)) => {
                        let v: Vec<String> = self
                            .idents
                            .iter()
                            .filter(|i| wildcard_match(&p, i))
                            .cloned()
                            .collect();
                        if v.is_empty() {
                            return Err(format!("`{p}` matches no search identifier"));
                        }
                        v
                    }
                    _ => return Err("expected `them` or an identifier pattern after `of`".into()),
                };
                Ok(Cond::Of(quant, names))
            }
            Some(t) => Err(format!("unexpected {t:?} in condition")),
            None => Err("condition ends unexpectedly".into()),
        }
    }
}

/// Parse a condition against the rule's search identifiers.
pub fn parse_condition(s: &str, idents: &[String]) -> Result<Cond, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        idents,
    };
    let c = p.or(0)?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {:?} in condition", p.toks[p.pos]));
    }
    Ok(c)
}

impl Cond {
    /// Prefix every identifier (used to merge a filter's detection into a rule's).
    pub fn prefixed(&self, prefix: &str) -> Cond {
        match self {
            Cond::And(v) => Cond::And(v.iter().map(|c| c.prefixed(prefix)).collect()),
            Cond::Or(v) => Cond::Or(v.iter().map(|c| c.prefixed(prefix)).collect()),
            Cond::Not(c) => Cond::Not(Box::new(c.prefixed(prefix))),
            Cond::Ident(i) => Cond::Ident(format!("{prefix}{i}")),
            Cond::Of(q, v) => Cond::Of(
                q.clone(),
                v.iter().map(|i| format!("{prefix}{i}")).collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence() {
        let i = ids(&["a", "b", "c"]);
        let c = parse_condition("a or b and not c", &i).unwrap();
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::Ident("a".into()),
                Cond::And(vec![
                    Cond::Ident("b".into()),
                    Cond::Not(Box::new(Cond::Ident("c".into())))
                ])
            ])
        );
    }

    #[test]
    fn of_patterns() {
        let i = ids(&["selection_a", "selection_b", "filter", "_x"]);
        assert_eq!(
            parse_condition("1 of selection*", &i).unwrap(),
            Cond::Of(Quant::AtLeast(1), ids(&["selection_a", "selection_b"]))
        );
        assert_eq!(
            parse_condition("all of them", &i).unwrap(),
            Cond::Of(Quant::All, ids(&["selection_a", "selection_b", "filter"]))
        );
        assert!(parse_condition("1 of nothing*", &i).is_err());
        assert!(parse_condition("selection_a | count() > 5", &i).is_err());
        assert!(parse_condition("(selection_a", &i).is_err());
        assert!(parse_condition("unknown", &i).is_err());
        assert!(parse_condition("not not (filter) and (selection_a or _x)", &i).is_ok());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("sel*", "selection"));
        assert!(wildcard_match("*_a", "sel_a"));
        assert!(wildcard_match("s*l*n", "selection"));
        assert!(!wildcard_match("sel*", "filter"));
    }
}
