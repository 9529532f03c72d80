//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2 and §3.5.2): a small recursive-descent
//! parser for the whole grammar (comparisons, `pr`, `and`/`or`/`not`, grouping, value filters such
//! as `emails[type eq "work"]` and their sub-attributes), then a planning step that turns what
//! latchkey can answer into a store query and refuses the rest with a precise `invalidFilter`.
//! Operators and attribute names are case-insensitive, as the RFC says; string values are JSON
//! strings.

use std::fmt;

/// The longest filter or path accepted, and how deep groups may nest.
pub const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:user";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:group";

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::Num(n) => f.write_str(n),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// `[urn:...:]attr[valueFilter][.sub]`; names kept as written, compared case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub attr: String,
    pub filter: Option<Box<Filter>>,
    pub sub: Option<String>,
}

impl AttrPath {
    /// True when this names `attr` (and `sub`), case-insensitively, with no value filter.
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && self.filter.is_none()
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
    /// The schema URN, lower-cased, when one was written.
    pub fn urn(&self) -> Option<String> {
        self.uri.as_ref().map(|u| u.to_ascii_lowercase())
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.uri {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(flt) = &self.filter {
            write!(f, "[{flt}]")?;
        }
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, Op, Value),
    Present(AttrPath),
    /// A value path on its own: `emails[type eq "work"]` (some value matches).
    Has(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.name()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Has(p) => write!(f, "{p}"),
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(a) => write!(f, "not ({a})"),
        }
    }
}

/// Why a filter or path does not parse, with the character offset where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub why: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.why, self.at)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `.name` right after `]`.
    Sub(String),
    Word(String),
    Str(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.')
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    if input.len() > MAX_LEN {
        return Err(ParseError { at: MAX_LEN, why: format!("longer than {MAX_LEN} characters") });
    }
    let err = |at: usize, why: &str| Err(ParseError { at, why: why.into() });
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push((at, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((at, Tok::RParen));
                i += 1;
            }
            '[' => {
                out.push((at, Tok::LBracket));
                i += 1;
            }
            ']' => {
                out.push((at, Tok::RBracket));
                i += 1;
                if i < chars.len() && chars[i].1 == '.' {
                    let start = i + 1;
                    let mut j = start;
                    while j < chars.len()
                        && (chars[j].1.is_ascii_alphanumeric() || matches!(chars[j].1, '_' | '-' | '$'))
                    {
                        j += 1;
                    }
                    if j == start {
                        return err(chars[i].0, "expected a sub-attribute name after `].`");
                    }
                    let name: String = chars[start..j].iter().map(|(_, c)| c).collect();
                    out.push((chars[i].0, Tok::Sub(name)));
                    i = j;
                }
            }
            '"' => {
                // A JSON string: find its end (skipping escaped characters), let serde decode it.
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return err(at, "a string is not closed with `\"`"),
                        Some((_, '\\')) => j += 2,
                        Some((_, '"')) => break,
                        Some(_) => j += 1,
                    }
                }
                let end = chars[j].0 + 1;
                let s: String = serde_json::from_str(&input[at..end])
                    .map_err(|e| ParseError { at, why: format!("a string is not a valid JSON string: {e}") })?;
                out.push((at, Tok::Str(s)));
                i = j + 1;
            }
            c if is_name_char(c) || c == '+' => {
                let mut j = i;
                while j < chars.len() && (is_name_char(chars[j].1) || chars[j].1 == '+') {
                    j += 1;
                }
                let word: String = chars[i..j].iter().map(|(_, c)| c).collect();
                out.push((at, Tok::Word(word)));
                i = j;
            }
            other => {
                return Err(ParseError { at, why: format!("unexpected character `{}`", other.escape_default()) });
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
    in_bracket: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(a, _)| *a).unwrap_or(self.end)
    }
    fn fail<T>(&self, why: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { at: self.at(), why: why.into() })
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Filter, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ParseError> {
        if self.keyword("not") && matches!(self.toks.get(self.pos + 1), Some((_, Tok::LParen))) {
            self.pos += 2;
            let inner = self.or()?;
            self.expect_close(Tok::RParen, ")")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect_close(Tok::RParen, ")")?;
            return Ok(inner);
        }
        self.attr_expr()
    }

    fn expect_close(&mut self, tok: Tok, text: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected `{text}`"))
        }
    }

    fn path(&mut self) -> Result<AttrPath, ParseError> {
        let at = self.at();
        let Some(Tok::Word(word)) = self.next() else {
            self.pos -= 1;
            return self.fail("expected an attribute name");
        };
        let mut path = split_path(&word).map_err(|why| ParseError { at, why })?;
        if self.peek() == Some(&Tok::LBracket) {
            if self.in_bracket {
                return self.fail("a value filter cannot hold another value filter");
            }
            if path.sub.is_some() {
                return self.fail("a value filter follows an attribute, not a sub-attribute");
            }
            self.pos += 1;
            self.in_bracket = true;
            let inner = self.or()?;
            self.in_bracket = false;
            self.expect_close(Tok::RBracket, "]")?;
            path.filter = Some(Box::new(inner));
            if let Some(Tok::Sub(name)) = self.peek().cloned() {
                self.pos += 1;
                path.sub = Some(name);
            }
        }
        Ok(path)
    }

    fn attr_expr(&mut self) -> Result<Filter, ParseError> {
        let path = self.path()?;
        let op_at = self.at();
        match self.peek().cloned() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                self.pos += 1;
                Ok(Filter::Present(path))
            }
            Some(Tok::Word(w)) if !w.eq_ignore_ascii_case("and") && !w.eq_ignore_ascii_case("or") => {
                let Some(op) = Op::parse(&w) else {
                    return Err(ParseError {
                        at: op_at,
                        why: format!("`{w}` is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"),
                    });
                };
                self.pos += 1;
                let value = self.value()?;
                Ok(Filter::Compare(path, op, value))
            }
            _ if path.filter.is_some() && path.sub.is_none() => Ok(Filter::Has(path)),
            _ => self.fail(format!("expected an operator after `{path}`")),
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let at = self.at();
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::Str(s)),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ if w.parse::<f64>().is_ok_and(f64::is_finite) => Ok(Value::Num(w)),
                _ => Err(ParseError {
                    at,
                    why: format!("`{w}` is not a value: quote strings (\"...\"), or use true, false, null or a number"),
                }),
            },
            _ => Err(ParseError { at, why: "expected a value after the operator".into() }),
        }
    }
}

/// Split `urn:...:Name:attr.sub` into its schema URI, attribute and sub-attribute.
fn split_path(word: &str) -> Result<AttrPath, String> {
    let (uri, rest) = match word.rfind(':') {
        Some(i) => (Some(word[..i].to_string()), &word[i + 1..]),
        None => (None, word),
    };
    if let Some(u) = &uri
        && !u.to_ascii_lowercase().starts_with("urn:")
    {
        return Err(format!("`{word}` is not an attribute path (a schema prefix starts with `urn:`)"));
    }
    let mut parts = rest.split('.');
    let attr = parts.next().unwrap_or_default();
    let sub = parts.next();
    let valid = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) || parts.next().is_some() {
        return Err(format!("`{word}` is not an attribute path (attribute[.subAttribute])"));
    }
    Ok(AttrPath { uri, attr: attr.to_string(), filter: None, sub: sub.map(str::to_string) })
}

/// Parse a filter (the `filter` query parameter).
pub fn parse(input: &str) -> Result<Filter, ParseError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(ParseError { at: 0, why: "the filter is empty".into() });
    }
    let mut p = Parser { toks, pos: 0, end: input.len(), depth: 0, in_bracket: false };
    let f = p.or()?;
    if p.pos < p.toks.len() {
        return p.fail("unexpected text after the end of the filter (join expressions with `and` or `or`)");
    }
    Ok(f)
}

/// Parse a PATCH `path`: an attribute path, optionally with a value filter and a sub-attribute.
pub fn parse_path(input: &str) -> Result<AttrPath, ParseError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(ParseError { at: 0, why: "the path is empty".into() });
    }
    let mut p = Parser { toks, pos: 0, end: input.len(), depth: 0, in_bracket: false };
    let path = p.path()?;
    if p.pos < p.toks.len() {
        return p.fail("unexpected text after the path");
    }
    Ok(path)
}

/// Flatten a conjunction into its terms; `None` when an `or` or `not` is in it.
pub fn conjunction(f: &Filter) -> Result<Vec<&Filter>, &'static str> {
    match f {
        Filter::And(a, b) => {
            let mut v = conjunction(a)?;
            v.extend(conjunction(b)?);
            Ok(v)
        }
        Filter::Or(..) => Err("or"),
        Filter::Not(..) => Err("not"),
        other => Ok(vec![other]),
    }
}

/// Whether a value filter selects work addresses: none at all, or exactly `type eq "work"`.
pub fn selects_work(filter: &Option<Box<Filter>>) -> Option<bool> {
    match filter.as_deref() {
        None => Some(true),
        Some(Filter::Compare(p, Op::Eq, Value::Str(v))) if p.is("type", None) && p.uri.is_none() => {
            Some(v.eq_ignore_ascii_case("work"))
        }
        Some(Filter::Compare(p, Op::Eq, Value::Bool(b))) if p.is("primary", None) && p.uri.is_none() => Some(*b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn the_filters_okta_and_entra_send_parse() {
        let f = parse(r#"userName eq "alice@example.com""#).unwrap();
        assert_eq!(f, Filter::Compare(split_path("userName").unwrap(), Op::Eq, s("alice@example.com")));
        let f = parse(r#"emails[type eq "work"].value eq "a@b.c""#).unwrap();
        let Filter::Compare(p, Op::Eq, v) = f else { panic!() };
        assert_eq!(v, s("a@b.c"));
        assert!(p.attr == "emails" && p.sub.as_deref() == Some("value"));
        assert_eq!(selects_work(&p.filter), Some(true));
        let f = parse(r#"externalId EQ "00u1" and userName eq "x@y.z""#).unwrap();
        assert_eq!(conjunction(&f).unwrap().len(), 2);
        let f = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap();
        let Filter::Compare(p, ..) = f else { panic!() };
        assert_eq!(p.urn().as_deref(), Some(USER_URN));
        assert_eq!(p.attr, "userName");
    }

    #[test]
    fn the_whole_grammar_parses_with_precedence() {
        let f = parse(r#"a eq 1 or b pr and not (c sw "x")"#).unwrap();
        assert_eq!(f.to_string(), r#"(a eq 1 or (b pr and not (c sw "x")))"#);
        let f = parse(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
        assert!(matches!(f, Filter::Has(_)));
        let f = parse(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).unwrap();
        assert!(matches!(f, Filter::Compare(_, Op::Gt, _)));
        assert!(parse(r#"title eq "a \"quoted\" \u00e9""#).is_ok());
        assert!(parse("active eq TRUE").is_ok());
    }

    #[test]
    fn bad_filters_say_where_and_why() {
        for (bad, needle) in [
            ("", "empty"),
            ("userName", "operator"),
            ("userName eq", "value"),
            (r#"userName eq "x"#, "not closed"),
            (r#"userName equals "x""#, "not an operator"),
            (r#"userName eq x"#, "not a value"),
            (r#"userName eq "x" userName eq "y""#, "after the end"),
            (r#"(userName eq "x""#, "expected `)`"),
            (r#"emails[type eq "work""#, "expected `]`"),
            (r#"emails[type[x eq 1] eq 1]"#, "value filter"),
            (r#"userName eq "x" & 1"#, "unexpected character"),
            (r#"a.b.c eq 1"#, "attribute path"),
            (r#"http://x:y eq 1"#, "unexpected character"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.why.contains(needle), "{bad}: {e}");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().why.contains("deeper"));
        assert!(parse(&"a".repeat(MAX_LEN + 1)).unwrap_err().why.contains("longer"));
    }

    #[test]
    fn patch_paths_parse() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let p = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
        assert!(p.sub.is_none() && p.filter.is_some());
        let p = parse_path("name.givenName").unwrap();
        assert!(p.is("name", Some("givenname")));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
        assert_eq!(p.attr, "manager");
        assert!(parse_path("members eq 1").is_err());
        assert!(parse_path("").is_err());
    }
}
