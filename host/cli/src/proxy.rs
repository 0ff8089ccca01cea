//! One-line summaries of what happened to each request of a proxy scenario. The emulation
//! itself is `palisade_proxy`.

use palisade_proxy::RequestReport;

/// `request 1: upstream 200 (via_upstream)`, `request 2: local-reply 403` and the like (Envoy's
/// response code details in parentheses when there are any).
pub(crate) fn summary(request: &RequestReport) -> String {
    let mut line = format!("{}: {}", request.name, request.outcome);
    if let Some(response) = &request.response {
        line.push_str(&format!(" {}", response.status));
        if !response.details.is_empty() {
            line.push_str(&format!(" ({})", response.details));
        }
    }
    line
}
