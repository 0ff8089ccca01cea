//! The request body in an OPA-Envoy input: what Envoy's ext_authz filter puts in the
//! CheckRequest when it buffers bodies (`with_request_body`), and the plugin's `parsed_body` and
//! `truncated_body` (open-policy-agent/opa-envoy-plugin `envoyauth/request.go`,
//! `getParsedBody`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// Envoy ext_authz's `with_request_body` (`BufferSettings`), moved into the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WithRequestBody {
    /// The most bytes of the body held for the decision (Envoy requires more than 0).
    pub max_request_bytes: u32,
    /// Decide on the first `maxRequestBytes` of a longer body (marked partial) instead of
    /// answering 413.
    #[serde(default)]
    pub allow_partial_message: bool,
    /// Send the body as bytes (`raw_body`, base64 in protobuf JSON) instead of `body` (text).
    #[serde(default)]
    pub pack_as_bytes: bool,
}

/// The largest `maxRequestBytes` taken: the body is held in the filter's VM memory, and Envoy's
/// own connection buffer limit (1 MiB by default) answers 413 above its own size anyway.
pub(super) const MAX_REQUEST_BYTES: u32 = 16 << 20;

/// The header ext_authz adds to the CheckRequest's headers when it sends a body.
pub(super) const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// Puts the body into `http` (`attributes.request.http`) as ext_authz does: `body` or
/// `raw_body`, omitted when empty (protobuf JSON leaves empty fields out).
pub(super) fn attach(
    http: &mut serde_json::Map<String, serde_json::Value>,
    body: &[u8],
    pack_as_bytes: bool,
) {
    if body.is_empty() {
        return;
    }
    if pack_as_bytes {
        http.insert(
            "raw_body".to_owned(),
            base64::engine::general_purpose::STANDARD
                .encode(body)
                .into(),
        );
    } else {
        http.insert(
            "body".to_owned(),
            String::from_utf8_lossy(body).into_owned().into(),
        );
    }
}

/// `parsed_body` and `truncated_body` as the plugin computes them from the CheckRequest's
/// headers (names lower-case, repeated ones joined) and body.
///
/// # Errors
/// What the plugin answers as an evaluation error: a JSON body that does not parse, a form that
/// does not parse, a `content-length` that is not a number.
pub(super) fn parse(
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(serde_json::Value, bool), String> {
    if headers.get(PARTIAL_BODY_HEADER).map(String::as_str) == Some("true") {
        return Ok((serde_json::Value::Null, true));
    }
    let Some(content_type) = headers.get("content-type") else {
        return Ok((serde_json::Value::Null, false));
    };
    let kind = if content_type.contains("application/json") {
        Kind::Json
    } else if content_type.contains("application/x-www-form-urlencoded") {
        Kind::Form
    } else if content_type.contains("multipart/form-data") {
        Kind::Multipart
    } else {
        // gRPC bodies need the services' descriptors (the plugin's `proto-descriptor`), which
        // the filter does not take; other types are not parsed by the plugin either.
        return Ok((serde_json::Value::Null, false));
    };
    if body.is_empty() {
        return Ok((serde_json::Value::Null, false));
    }
    if let Some(length) = headers.get("content-length") {
        let length: i64 = length
            .trim()
            .parse()
            .map_err(|_| format!("content-length {length:?} is not a number"))?;
        if length != -1 && usize::try_from(length).is_ok_and(|l| l > body.len()) {
            return Ok((serde_json::Value::Null, true));
        }
    }
    let parsed = match kind {
        Kind::Json => serde_json::from_slice(body)
            .map_err(|e| format!("the JSON request body does not parse: {e}"))?,
        Kind::Form => form(&String::from_utf8_lossy(body))?,
        Kind::Multipart => match boundary(content_type) {
            Some(boundary) => multipart(body, &boundary)?,
            None => serde_json::Value::Null,
        },
    };
    Ok((parsed, false))
}

enum Kind {
    Json,
    Form,
    Multipart,
}

/// Go's `url.ParseQuery`: every name to the list of its values; a bad escape or a `;` is an
/// error.
fn form(text: &str) -> Result<serde_json::Value, String> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        if pair.contains(';') {
            return Err(format!("the form body has a semicolon in {pair:?}"));
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name =
            unescape(name).ok_or_else(|| format!("the form body has a bad escape in {name:?}"))?;
        let value = unescape(value)
            .ok_or_else(|| format!("the form body has a bad escape in {value:?}"))?;
        parsed.entry(name).or_default().push(value);
    }
    serde_json::to_value(parsed).map_err(|e| e.to_string())
}

/// Query unescaping (`+` is a space); `None` for a `%` not followed by two hex digits.
fn unescape(text: &str) -> Option<String> {
    super::decode(text, true, true)
}

/// The `boundary` parameter of a `multipart/form-data` content type (quoted or not).
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// A `multipart/form-data` body as the plugin reads it: every part with a form name, as the list
/// of its values by name; a part whose content type is JSON as its parsed value, others as text.
fn multipart(body: &[u8], boundary: &str) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut values: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut sections = text.split(delimiter.as_str());
    // What comes before the first delimiter is the preamble.
    if sections.next().is_none() {
        return Ok(serde_json::Value::Null);
    }
    let mut closed = false;
    for section in sections {
        if section.starts_with("--") {
            closed = true;
            break;
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .ok_or("multipart: a delimiter is not followed by a line break")?;
        let (head, content) = section
            .split_once("\r\n\r\n")
            .or_else(|| section.split_once("\n\n"))
            .ok_or("multipart: a part has no blank line after its headers")?;
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut name = None;
        let mut json = false;
        for line in head.lines() {
            let Some((header, value)) = line.split_once(':') else {
                return Err(format!("multipart: malformed part header {line:?}"));
            };
            let header = header.trim();
            if header.eq_ignore_ascii_case("content-disposition") {
                name = disposition_name(value);
            } else if header.eq_ignore_ascii_case("content-type") {
                json = value.contains("application/json");
            }
        }
        let Some(name) = name else {
            continue;
        };
        let value = if json {
            serde_json::from_str(content)
                .map_err(|e| format!("multipart: the JSON part {name:?} does not parse: {e}"))?
        } else {
            serde_json::Value::String(content.to_owned())
        };
        values.entry(name).or_default().push(value);
    }
    if !closed {
        return Err("multipart: the body ends before its closing delimiter".to_owned());
    }
    serde_json::to_value(values).map_err(|e| e.to_string())
}

/// The `name` of a `form-data` content disposition (Go's `FormName`: none for other
/// dispositions).
fn disposition_name(value: &str) -> Option<String> {
    let mut params = value.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    params.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("name")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn json_bodies_are_parsed_and_short_ones_are_truncated() {
        let h = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(
            parse(&h, br#"{"a": [1]}"#).unwrap(),
            (serde_json::json!({"a": [1]}), false)
        );
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-length", "100"),
        ]);
        assert_eq!(parse(&h, b"{}").unwrap(), (serde_json::Value::Null, true));
        let h = headers(&[("content-type", "application/json")]);
        assert!(parse(&h, b"{").unwrap_err().contains("does not parse"));
        let h = headers(&[
            ("content-type", "application/json"),
            (PARTIAL_BODY_HEADER, "true"),
        ]);
        assert_eq!(parse(&h, b"{").unwrap(), (serde_json::Value::Null, true));
        let h = headers(&[("content-type", "text/plain")]);
        assert_eq!(parse(&h, b"{}").unwrap(), (serde_json::Value::Null, false));
    }

    #[test]
    fn forms_are_parsed_as_go_parses_queries() {
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            parse(&h, b"a=1&a=x+y&b=%2F&c").unwrap().0,
            serde_json::json!({"a": ["1", "x y"], "b": ["/"], "c": [""]})
        );
        assert!(parse(&h, b"a=%zz").is_err());
        assert!(parse(&h, b"a=1;b=2").is_err());
    }

    #[test]
    fn multipart_forms_keep_text_and_json_parts_by_name() {
        let h = headers(&[("content-type", "multipart/form-data; boundary=XyZ")]);
        let body = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"k\": 1}\r\n\
            --XyZ\r\nContent-Disposition: attachment; filename=\"x\"\r\n\r\nskipped\r\n--XyZ--\r\n";
        assert_eq!(
            parse(&h, body.as_bytes()).unwrap().0,
            serde_json::json!({"note": ["hello"], "meta": [{"k": 1}]})
        );
        assert!(
            parse(
                &h,
                b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx"
            )
            .is_err()
        );
        let no_boundary = headers(&[("content-type", "multipart/form-data")]);
        assert_eq!(
            parse(&no_boundary, b"x").unwrap().0,
            serde_json::Value::Null
        );
    }
}
