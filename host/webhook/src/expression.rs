//! Boolean expressions over policy ids, for policy groups: `a && (b || !c)`.
//! Grammar: `or := and ("||" and)*`, `and := unary ("&&" unary)*`, `unary := "!" unary | atom`,
//! `atom := id | "(" or ")"`; ids are policy ids.

use std::collections::BTreeSet;

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
        let mut parser = Parser { tokens, pos: 0 };
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
        match token {
            Token::Not => Ok(Expression::Not(Box::new(self.unary()?))),
            Token::Id(id) => Ok(Expression::Policy(id)),
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(format!("the '(' at position {at} is not closed"));
                }
                self.pos += 1;
                Ok(inner)
            }
            other => Err(format!("unexpected {other:?} at position {at}")),
        }
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
