//! Boolean expressions over policy ids, for policy groups: `a && (b || !c)`.
//! Grammar: `or := and ("||" and)*`, `and := unary ("&&" unary)*`, `unary := "!" unary | atom`,
//! `atom := id | "(" or ")"`; ids are policy ids. At most [`MAX_TERMS`] ids and
//! [`MAX_DEPTH`] levels of `(` and `!`, so that parsing, evaluating and dropping an expression
//! never recurse deeper than that, whatever the configuration says.

use std::collections::BTreeSet;

/// The most policy ids one expression may name.
pub(crate) const MAX_TERMS: usize = 64;
/// The deepest nesting of `(` and `!`.
pub(crate) const MAX_DEPTH: usize = 32;

/// A parsed group expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// True when the policy allows the request.
    Policy(String),
    /// Negation.
    Not(Box<Expression>),
    /// Both.
    And(Box<Expression>, Box<Expression>),
    /// Either.
    Or(Box<Expression>, Box<Expression>),
}

impl Expression {
    /// Parses an expression.
    ///
    /// # Errors
    /// A message with the character position of the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        if let Some((at, _)) = tokens
            .iter()
            .filter(|(_, t)| matches!(t, Token::Id(_)))
            .nth(MAX_TERMS)
        {
            return Err(format!(
                "more than {MAX_TERMS} policy ids in one expression (position {at})"
            ));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let expression = parser.or()?;
        match parser.tokens.get(parser.pos) {
            None => Ok(expression),
            Some((at, token)) => Err(format!("unexpected {token:?} at position {at}")),
        }
    }

    /// The policy ids the expression names.
    #[must_use]
    pub fn members(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut BTreeSet<String>) {
        match self {
            Self::Policy(id) => {
                out.insert(id.clone());
            }
            Self::Not(e) => e.collect(out),
            Self::And(a, b) | Self::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Evaluates with `allowed(id)` giving each member's decision.
    pub fn evaluate(&self, allowed: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Self::Policy(id) => allowed(id),
            Self::Not(e) => !e.evaluate(allowed),
            Self::And(a, b) => a.evaluate(allowed) && b.evaluate(allowed),
            Self::Or(a, b) => a.evaluate(allowed) || b.evaluate(allowed),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Id(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' => Token::Not,
            '&' | '|' => {
                if chars.next_if(|&(_, n)| n == c).is_none() {
                    return Err(format!("expected {c}{c} at position {at}"));
                }
                if c == '&' { Token::And } else { Token::Or }
            }
            c if is_id_char(c) => {
                let mut id = String::from(c);
                while let Some((_, n)) = chars.next_if(|&(_, n)| is_id_char(n)) {
                    id.push(n);
                }
                Token::Id(id)
            }
            other => return Err(format!("unexpected character {other:?} at position {at}")),
        };
        tokens.push((at, token));
    }
    Ok(tokens)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    /// Open `(` and `!` around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn or(&mut self) -> Result<Expression, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Expression::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Expression::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        let Some((at, token)) = self.tokens.get(self.pos).cloned() else {
            return Err("the expression ends too early".into());
        };
        self.pos += 1;
        if matches!(token, Token::Not | Token::Open) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!(
                    "more than {MAX_DEPTH} levels of '(' and '!' at position {at}"
                ));
            }
        }
        let expression = match token {
            Token::Not => Expression::Not(Box::new(self.unary()?)),
            Token::Id(id) => return Ok(Expression::Policy(id)),
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(format!("the '(' at position {at} is not closed"));
                }
                self.pos += 1;
                inner
            }
            other => return Err(format!("unexpected {other:?} at position {at}")),
        };
        self.depth -= 1;
        Ok(expression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, allowed: &[&str]) -> bool {
        Expression::parse(text)
            .expect("parses")
            .evaluate(&|id| allowed.contains(&id))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert!(eval("a || b && c", &["a"]));
        assert!(!eval("(a || b) && c", &["a"]));
    }

    #[test]
    fn negation_and_nesting() {
        assert!(eval("!a && (b || !c)", &["b", "c"]));
        assert!(!eval("!!a", &[]));
    }

    #[test]
    fn members_are_listed() {
        let e = Expression::parse("pod-security && (signed || !trusted.v2)").expect("parses");
        assert_eq!(
            e.members().into_iter().collect::<Vec<_>>(),
            ["pod-security", "signed", "trusted.v2"]
        );
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        // Before the bounds, 100k of `!` or `(` overflowed the stack while parsing (a reload of
        // such a file killed the server), and long `&&` chains while dropping.
        let deep_not = format!("{}a", "!".repeat(100_000));
        assert_eq!(
            Expression::parse(&deep_not).unwrap_err(),
            "more than 32 levels of '(' and '!' at position 32"
        );
        let deep_paren = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(
            Expression::parse(&deep_paren).unwrap_err(),
            "more than 32 levels of '(' and '!' at position 32"
        );
        let long = vec!["a"; 200_000].join(" && ");
        assert_eq!(
            Expression::parse(&long).unwrap_err(),
            "more than 64 policy ids in one expression (position 320)"
        );
        let widest = vec!["a"; MAX_TERMS].join(" || ");
        assert!(Expression::parse(&widest).is_ok());
        let deepest = format!("{}a{}", "(!".repeat(16), ")".repeat(16));
        assert!(Expression::parse(&deepest).is_ok());
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(
            Expression::parse("a & b").unwrap_err(),
            "expected && at position 2"
        );
        assert_eq!(
            Expression::parse("(a || b").unwrap_err(),
            "the '(' at position 0 is not closed"
        );
        assert_eq!(
            Expression::parse("a b").unwrap_err(),
            "unexpected Id(\"b\") at position 2"
        );
        assert_eq!(
            Expression::parse("a &&").unwrap_err(),
            "the expression ends too early"
        );
    }
}
