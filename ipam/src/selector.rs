//! Calico's label selector language, the one parser that pools (nodeSelector), BGP peers
//! (nodeSelector, peerSelector), the agent and manulctl share. Pure, no I/O.
//!
//! Grammar (as Calico's `libcalico-go/lib/selector`):
//!
//! ```text
//! selector := or?                          empty: every object
//! or       := and ( "||" and )*
//! and      := unary ( "&&" unary )*
//! unary    := "!" unary | "(" or ")" | term
//! term     := "all()" | "global()" | "has(" key ")"
//!           | key ( "==" | "!=" ) string
//!           | key "in" set | key "not" "in" set
//!           | key "contains" string | key "starts" "with" string | key "ends" "with" string
//! set      := "{" ( string ( "," string )* )? "}"
//! string   := '...' | "..."
//! key      := [A-Za-z0-9_./-]+
//! ```
//!
//! `!=` and `not in` also select objects without the label, as in Calico.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Equals(String, String),
    In(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// Parses `text`; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut parser = Parser { text, at: 0 };
        parser.skip_space();
        if parser.at == text.len() {
            return Ok(Selector { expr: Expr::All });
        }
        let expr = parser.or()?;
        parser.skip_space();
        if parser.at != text.len() {
            return Err(parser.error("&&, || or the end"));
        }
        Ok(Selector { expr })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        evaluate(&self.expr, labels)
    }
}

fn evaluate(expr: &Expr, labels: &BTreeMap<String, String>) -> bool {
    let value = |key: &String| labels.get(key).map(String::as_str);
    match expr {
        Expr::All => true,
        Expr::Has(key) => labels.contains_key(key),
        Expr::Equals(key, wanted) => value(key) == Some(wanted.as_str()),
        Expr::In(key, set) => value(key).is_some_and(|v| set.iter().any(|item| item == v)),
        Expr::Contains(key, part) => value(key).is_some_and(|v| v.contains(part.as_str())),
        Expr::StartsWith(key, part) => value(key).is_some_and(|v| v.starts_with(part.as_str())),
        Expr::EndsWith(key, part) => value(key).is_some_and(|v| v.ends_with(part.as_str())),
        Expr::Not(inner) => !evaluate(inner, labels),
        Expr::And(left, right) => evaluate(left, labels) && evaluate(right, labels),
        Expr::Or(left, right) => evaluate(left, labels) || evaluate(right, labels),
    }
}

/// Nesting deeper than this is refused (a selector is never that deep; input is untrusted).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn error(&self, expected: &str) -> String {
        let found = self.rest().chars().take(20).collect::<String>();
        let found = if found.is_empty() {
            "the end".to_string()
        } else {
            format!("{found:?}")
        };
        format!(
            "cannot parse {:?}: expected {expected} at {found} (position {}); the language: \
             all(), has(k), k == 'v', k != 'v', k in {{'a','b'}}, k not in {{...}}, !, &&, ||, \
             parentheses",
            self.text, self.at
        )
    }

    /// Consumes `token` (after spaces) when it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    /// Consumes the word `word` when it is next and not the start of a longer key.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = self.rest();
        let boundary = rest.starts_with(word)
            && rest[word.len()..]
                .chars()
                .next()
                .is_none_or(|c| !is_key_char(c));
        if boundary {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.or_at(0)
    }

    fn or_at(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.and(depth)?;
        while self.eat("||") {
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.unary(depth)?;
        while self.eat("&&") {
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("at most {MAX_DEPTH} nested ! or (")));
        }
        if self.eat("!") {
            if self.rest().starts_with('=') {
                return Err(self.error("a term after !"));
            }
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat("(") {
            let inner = self.or_at(depth + 1)?;
            if !self.eat(")") {
                return Err(self.error(")"));
            }
            return Ok(inner);
        }
        self.term()
    }

    fn term(&mut self) -> Result<Expr, String> {
        if self.eat("all()") || self.eat("global()") {
            return Ok(Expr::All);
        }
        if self.eat("has(") {
            let key = self.key()?;
            if !self.eat(")") {
                return Err(self.error(")"));
            }
            return Ok(Expr::Has(key));
        }
        let key = self.key()?;
        if self.eat("==") {
            return Ok(Expr::Equals(key, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Not(Box::new(Expr::Equals(key, self.string()?))));
        }
        if self.eat_word("in") {
            return Ok(Expr::In(key, self.set()?));
        }
        if self.eat_word("not") {
            if !self.eat_word("in") {
                return Err(self.error("in after not"));
            }
            return Ok(Expr::Not(Box::new(Expr::In(key, self.set()?))));
        }
        if self.eat_word("contains") {
            return Ok(Expr::Contains(key, self.string()?));
        }
        if self.eat_word("starts") {
            if !self.eat_word("with") {
                return Err(self.error("with after starts"));
            }
            return Ok(Expr::StartsWith(key, self.string()?));
        }
        if self.eat_word("ends") {
            if !self.eat_word("with") {
                return Err(self.error("with after ends"));
            }
            return Ok(Expr::EndsWith(key, self.string()?));
        }
        Err(self.error("==, !=, in, not in, contains, starts with or ends with"))
    }

    fn key(&mut self) -> Result<String, String> {
        self.skip_space();
        let length = self
            .rest()
            .find(|c: char| !is_key_char(c))
            .unwrap_or(self.rest().len());
        if length == 0 {
            return Err(self.error("a label key, all(), has(k), ! or ("));
        }
        let key = self.rest()[..length].to_string();
        self.at += length;
        Ok(key)
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
        else {
            return Err(self.error("a quoted value such as 'v'"));
        };
        let body = &self.rest()[1..];
        let Some(end) = body.find(quote) else {
            return Err(self.error(&format!("a closing {quote}")));
        };
        let value = body[..end].to_string();
        self.at += end + 2;
        Ok(value)
    }

    fn set(&mut self) -> Result<Vec<String>, String> {
        if !self.eat("{") {
            return Err(self.error("{ to open a set"));
        }
        let mut items = Vec::new();
        if self.eat("}") {
            return Ok(items);
        }
        loop {
            items.push(self.string()?);
            if self.eat("}") {
                return Ok(items);
            }
            if !self.eat(",") {
                return Err(self.error(", or }"));
            }
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_whole_language_matches_as_calicos() {
        let node = labels(&[
            ("zone", "a"),
            ("gpu", ""),
            ("topology.kubernetes.io/rack", "r-12"),
        ]);
        let cases = [
            ("", true),
            ("  ", true),
            ("all()", true),
            ("global()", true),
            ("has(gpu)", true),
            ("!has(gpu)", false),
            ("! has(ssd)", true),
            ("zone == 'a'", true),
            ("zone == \"b\"", false),
            ("zone != 'b'", true),
            ("missing != 'b'", true),
            ("zone in {'a', 'b'}", true),
            ("zone in {}", false),
            ("zone not in {'a'}", false),
            ("missing not in {'a'}", true),
            ("missing in {'a'}", false),
            ("topology.kubernetes.io/rack starts with 'r-'", true),
            ("topology.kubernetes.io/rack ends with '12'", true),
            ("zone contains 'x'", false),
            ("zone == 'b' || has(gpu)", true),
            ("zone == 'a' && !has(gpu)", false),
            ("!(zone == 'a' && has(gpu))", false),
            ("(zone == 'b' || zone == 'a') && has(gpu)", true),
            ("zone == 'b' || zone == 'a' && !has(gpu)", false),
            ("!!has(gpu)", true),
            ("((all()))", true),
            ("zone=='a'&&has(gpu)", true),
            ("index == 'in'", false),
            ("notin == 'x'", false),
        ];
        for (text, expected) in cases {
            let selector = Selector::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(selector.matches(&node), expected, "{text}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_position() {
        for text in [
            "zone = 'a'",
            "has(",
            "has(gpu",
            "zone == a",
            "in {'a'}",
            "zone in {'a'",
            "zone in {'a' 'b'}",
            "zone in 'a'",
            "(zone == 'a'",
            "zone == 'a')",
            "zone == 'a' &&",
            "|| has(a)",
            "zone not {'a'}",
            "zone starts 'a'",
            "zone == 'a",
            "!",
            "!= 'a'",
            "aé in {'x'}",
            "zone ïn {'a'}",
        ] {
            let error = Selector::parse(text).expect_err(text);
            assert!(error.contains("position"), "{text}: {error}");
        }
        let deep = format!("{}all(){}", "(".repeat(100), ")".repeat(100));
        assert!(Selector::parse(&deep).is_err());
    }
}
