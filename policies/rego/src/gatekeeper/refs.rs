//! The references Gatekeeper allows in a template's Rego (frameworks `regorewriter`): data
//! only under `data.lib` (the template's libraries), `data.inventory` (referential data) and
//! the template's own package; imports only of `data.lib.*` and `future.*`. A reference
//! elsewhere is refused at load, as Gatekeeper refuses it ("disallowed ref"), instead of
//! silently reading nothing. A small lexer: strings and comments are skipped, so `"data.x"` in
//! a message is not a reference.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Punct(char),
}

/// Splits Rego source into identifiers, string literals and punctuation, with 1-based lines.
fn tokens(source: &str) -> Vec<(usize, Token<'_>)> {
    let mut out = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut line = 1_usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => {
                line = line.saturating_add(1);
                i = i.saturating_add(1);
            }
            b'#' => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i = i.saturating_add(1);
                }
            }
            b'"' => {
                let mut text = String::new();
                i = i.saturating_add(1);
                while let Some(&c) = bytes.get(i) {
                    i = i.saturating_add(1);
                    match c {
                        b'\\' => {
                            if let Some(&e) = bytes.get(i) {
                                text.push(char::from(e));
                                i = i.saturating_add(1);
                            }
                        }
                        b'"' | b'\n' => break,
                        _ => text.push(char::from(c)),
                    }
                }
                out.push((line, Token::Str(text)));
            }
            b'`' => {
                let start = i.saturating_add(1);
                i = start;
                while bytes.get(i).is_some_and(|&c| c != b'`') {
                    if bytes.get(i) == Some(&b'\n') {
                        line = line.saturating_add(1);
                    }
                    i = i.saturating_add(1);
                }
                let text = source.get(start..i).unwrap_or_default().to_owned();
                i = i.saturating_add(1);
                out.push((line, Token::Str(text)));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    i = i.saturating_add(1);
                }
                out.push((line, Token::Ident(source.get(start..i).unwrap_or_default())));
            }
            c if c.is_ascii_digit() => {
                while bytes
                    .get(i)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.')
                {
                    i = i.saturating_add(1);
                }
            }
            c => {
                if !c.is_ascii_whitespace() {
                    out.push((line, Token::Punct(char::from(c))));
                }
                i = i.saturating_add(1);
            }
        }
    }
    out
}

/// Checks the references and imports of one module (its own package may be referred to).
///
/// # Errors
/// A message naming the line and the reference or import Gatekeeper would refuse.
pub(super) fn check(source: &str) -> Result<(), String> {
    let tokens = tokens(source);
    let package = tokens
        .iter()
        .position(|(_, t)| *t == Token::Ident("package"))
        .map(|at| dotted(&tokens, at.saturating_add(1)))
        .unwrap_or_default();
    let own = package.split('.').next().filter(|p| !p.is_empty());
    let mut index = 0;
    while let Some((line, token)) = tokens.get(index) {
        let previous = index
            .checked_sub(1)
            .and_then(|p| tokens.get(p))
            .map(|(_, t)| t);
        match token {
            Token::Ident("import") if starts_statement(&tokens, index) => {
                let path = dotted(&tokens, index.saturating_add(1));
                let allowed = path.starts_with("data.lib.")
                    || path == "future"
                    || path.starts_with("future.");
                if !allowed {
                    return Err(format!(
                        "line {line}: `import {path}` is not allowed: Gatekeeper templates may import only data.lib.* and future.*{}",
                        if path == "rego.v1" {
                            " (write a Rego v1 template with `code: [{engine: Rego, source: {version: v1, rego: ...}}]` instead)"
                        } else {
                            ""
                        }
                    ));
                }
                // Skips the import's path.
                index = index.saturating_add(1);
                while matches!(
                    tokens.get(index),
                    Some((_, Token::Ident(_) | Token::Punct('.')))
                ) {
                    index = index.saturating_add(1);
                }
                continue;
            }
            Token::Ident("data") if previous != Some(&Token::Punct('.')) => {
                let first = match (
                    tokens.get(index.saturating_add(1)),
                    tokens.get(index.saturating_add(2)),
                ) {
                    (Some((_, Token::Punct('.'))), Some((_, Token::Ident(name)))) => {
                        Some((*name).to_owned())
                    }
                    (Some((_, Token::Punct('['))), Some((_, Token::Str(name)))) => {
                        Some(name.clone())
                    }
                    _ => None,
                };
                let allowed = first
                    .as_deref()
                    .is_some_and(|f| f == "lib" || f == "inventory" || Some(f) == own);
                if !allowed {
                    let what = first.map_or_else(|| "data".to_owned(), |f| format!("data.{f}"));
                    return Err(format!(
                        "line {line}: disallowed ref {what}: a template may read only data.lib (its libraries) and data.inventory"
                    ));
                }
            }
            _ => {}
        }
        index = index.saturating_add(1);
    }
    Ok(())
}

/// Whether the token at `index` starts a line (an `import` keyword, not a field named so).
fn starts_statement(tokens: &[(usize, Token<'_>)], index: usize) -> bool {
    let Some(previous) = index.checked_sub(1).and_then(|p| tokens.get(p)) else {
        return true;
    };
    let here = tokens.get(index).map_or(0, |(l, _)| *l);
    previous.0 < here && previous.1 != Token::Punct('.')
}

/// The dotted path starting at `index` (`data.lib.x`, `future.keywords.in`).
fn dotted(tokens: &[(usize, Token<'_>)], mut index: usize) -> String {
    let mut path = String::new();
    let mut want_name = true;
    while let Some((_, token)) = tokens.get(index) {
        match token {
            Token::Ident(name) if want_name => path.push_str(name),
            Token::Punct('.') if !want_name => path.push('.'),
            _ => break,
        }
        want_name = !want_name;
        index = index.saturating_add(1);
    }
    path
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::check;

    #[test]
    fn libraries_inventory_and_the_own_package_are_allowed() {
        let rego = "package t\nimport data.lib.helpers\nimport future.keywords.in\nx := data.lib.helpers.f\ny := data.inventory.cluster\nz := data.t.x\nmsg := \"data.other is text\" # data.other in a comment\nw := input.data.other\n";
        assert_eq!(check(rego), Ok(()));
    }

    #[test]
    fn other_data_and_imports_are_refused_with_their_line() {
        let e = check("package t\n\nx := data.other.thing\n").unwrap_err();
        assert!(e.starts_with("line 3: disallowed ref data.other"), "{e}");
        let e = check("package t\ny := data[\"other\"]\n").unwrap_err();
        assert!(e.contains("data.other"), "{e}");
        let e = check("package t\ny := data.inventoryx.a\n").unwrap_err();
        assert!(e.contains("data.inventoryx"), "{e}");
        let e = check("package t\ny := data[k]\n").unwrap_err();
        assert!(e.contains("disallowed ref data:"), "{e}");
        let e = check("package t\nimport data.other\n").unwrap_err();
        assert!(e.contains("`import data.other` is not allowed"), "{e}");
        let e = check("package t\nimport rego.v1\n").unwrap_err();
        assert!(e.contains("version: v1"), "{e}");
    }
}
