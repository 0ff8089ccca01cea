//! Image references as the container runtime reads them (distribution's `reference`
//! normalisation: `nginx` is `docker.io/library/nginx:latest`), and the globs rules match them
//! with.

use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host (`docker.io`, `registry.example.com:5000`).
    pub registry: String,
    /// The repository path (`library/nginx`, `team/app`).
    pub repository: String,
    /// The tag, if written.
    pub tag: Option<String>,
    /// The digest (`sha256:<hex>`), if written.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `image`.
    ///
    /// # Errors
    /// What is wrong with it: empty, upper-case repository, a bad tag or digest.
    pub fn parse(image: &str) -> Result<Self, String> {
        if image.is_empty() {
            return Err("the image is empty".to_owned());
        }
        if image.chars().any(char::is_whitespace) {
            return Err("the image contains white space".to_owned());
        }
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (image, None),
        };
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        let last_slash = name.rfind('/');
        let (name, tag) = match name.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (name.get(..colon).unwrap_or_default(), name.get(colon + 1..))
            }
            _ => (name, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(format!("{tag:?} is not a valid tag"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first != first.to_lowercase() =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io".to_owned()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        };
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(format!(
                "the repository component {bad:?} is not valid (lower-case letters, digits and . _ - inside)"
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// `registry/repository`: what rules and allowed registries match.
    #[must_use]
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether it names the `latest` tag, written or implied (no tag and no digest).
    #[must_use]
    pub fn is_latest(&self) -> bool {
        match &self.tag {
            Some(tag) => tag == "latest",
            None => self.digest.is_none(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks a `sha256:<64 hex>` (or `sha384`, `sha512`) digest.
fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("the digest {digest:?} has no algorithm"))?;
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "the digest algorithm {algorithm:?} is not supported"
            ));
        }
    };
    if hex.len() != length
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "the digest {digest:?} is not {length} lower-case hex digits"
        ));
    }
    Ok(())
}

/// A pattern over `registry/repository` names: `*` stands for any run of characters but `/`,
/// `**` for any run including `/`, `?` for one character but `/`. A pattern without wildcards
/// that names only a registry (no `/`) matches every repository in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// The pattern `text`.
    ///
    /// # Errors
    /// When it is empty or contains white space.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(format!("{text:?} is not a pattern of image names"));
        }
        let text = if text.contains('/') {
            text.to_owned()
        } else {
            format!("{text}/**")
        };
        Ok(Self(text))
    }

    /// A pattern over any text, as written (builder ids, source repositories).
    ///
    /// # Errors
    /// When it is empty or contains white space.
    pub fn any(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(format!("{text:?} is not a pattern"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The pattern as written (with `/**` added to a bare registry).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

/// Glob matching with backtracking over `*`, `**` and `?`.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let (crosses, rest) = match rest.split_first() {
                Some((b'*', after)) => (true, after),
                _ => (false, rest),
            };
            // `**/` also matches nothing at all (`a/**/b` matches `a/b`).
            if crosses
                && let Some(after) = rest.strip_prefix(b"/")
                && glob_match(after, text)
            {
                return true;
            }
            for (at, &byte) in text.iter().enumerate() {
                if glob_match(rest, text.get(at..).unwrap_or_default()) {
                    return true;
                }
                if byte == b'/' && !crosses {
                    return false;
                }
            }
            glob_match(rest, &[])
        }
        Some((b'?', rest)) => match text.split_first() {
            Some((&byte, tail)) if byte != b'/' => glob_match(rest, tail),
            _ => false,
        },
        Some((&byte, rest)) => match text.split_first() {
            Some((&first, tail)) if first == byte => glob_match(rest, tail),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn references_are_normalised_as_the_runtime_reads_them() {
        let nginx = Reference::parse("nginx").unwrap();
        assert_eq!(nginx.to_string(), "docker.io/library/nginx");
        assert!(nginx.is_latest());
        let pinned = Reference::parse(
            "127.0.0.1:5000/team/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(pinned.registry, "127.0.0.1:5000");
        assert_eq!(pinned.repository, "team/app");
        assert_eq!(pinned.tag.as_deref(), Some("v1"));
        assert!(!pinned.is_latest());
        assert_eq!(
            Reference::parse("localhost/app:latest").unwrap().name(),
            "localhost/app"
        );
        assert_eq!(
            Reference::parse("index.docker.io/user/app:1")
                .unwrap()
                .name(),
            "docker.io/user/app"
        );
        assert!(
            Reference::parse("Team/App")
                .unwrap_err()
                .contains("\"App\"")
        );
        assert!(
            Reference::parse("app@sha256:12")
                .unwrap_err()
                .contains("64")
        );
        assert!(Reference::parse("app:").unwrap_err().contains("tag"));
        assert!(Reference::parse("").is_err());
    }

    #[test]
    fn globs_cross_slashes_only_with_two_stars() {
        let team = Glob::new("registry.example.com/team/*").unwrap();
        assert!(team.matches("registry.example.com/team/app"));
        assert!(!team.matches("registry.example.com/team/sub/app"));
        let deep = Glob::new("registry.example.com/team/**").unwrap();
        assert!(deep.matches("registry.example.com/team/sub/app"));
        assert!(!deep.matches("registry.example.com/teams/app"));
        let registry = Glob::new("registry.example.com").unwrap();
        assert!(registry.matches("registry.example.com/a/b"));
        assert!(!registry.matches("registry.example.com.evil.org/a"));
        assert!(
            Glob::new("*.example.com/**")
                .unwrap()
                .matches("eu.example.com/x")
        );
        assert!(
            !Glob::new("*.example.com/**")
                .unwrap()
                .matches("a/b.example.com/x")
        );
        assert!(Glob::new("r.io/**/app").unwrap().matches("r.io/app"));
        assert!(Glob::new("r.io/a?c").unwrap().matches("r.io/abc"));
        assert!(Glob::new("").is_err());
    }
}
