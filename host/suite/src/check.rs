//! Whether an outcome is what a case expects: an admission verdict or failure, or a proxy
//! scenario's report. Each returns every problem found, joined, or nothing.

use palisade_proxy::Report;
use palisade_sdk::wire::Verdict;

use crate::Expect;

/// Checks an admission outcome: a verdict, or the text of the failure.
pub(crate) fn admission(expect: &Expect, outcome: Result<Verdict, String>) -> Result<(), String> {
    let verdict = match (outcome, &expect.error) {
        (Err(text), Some(wanted)) if text.contains(wanted.as_str()) => return Ok(()),
        (Err(text), Some(wanted)) => {
            return Err(format!(
                "expected an error containing {wanted:?}, got: {text}"
            ));
        }
        (Err(text), None) => return Err(format!("the policy failed: {text}")),
        (Ok(verdict), Some(wanted)) => {
            return Err(format!(
                "expected an error containing {wanted:?}, got a verdict: {} ({}): {}",
                if verdict.allowed { "allowed" } else { "denied" },
                verdict.reason,
                verdict.message
            ));
        }
        (Ok(verdict), None) => verdict,
    };
    let mut problems = Vec::new();
    if let Some(allowed) = expect.allowed
        && verdict.allowed != allowed
    {
        problems.push(format!(
            "expected allowed={allowed}, got allowed={}",
            verdict.allowed
        ));
    }
    if let Some(reason) = &expect.reason
        && &verdict.reason != reason
    {
        problems.push(format!(
            "expected reason {reason:?}, got {:?}",
            verdict.reason
        ));
    }
    if let Some(message) = &expect.message
        && !verdict.message.contains(message.as_str())
    {
        problems.push(format!(
            "expected the message to contain {message:?}, got {:?}",
            verdict.message
        ));
    }
    joined(&problems)
}

/// Checks a proxy scenario's report.
pub(crate) fn proxy(expect: &Expect, report: &Report) -> Result<(), String> {
    match (&report.rejected, &expect.error) {
        (Some(reason), Some(wanted)) if reason.contains(wanted.as_str()) => return Ok(()),
        (Some(reason), Some(wanted)) => {
            return Err(format!(
                "expected the plugin to be rejected with {wanted:?}, got: {reason}"
            ));
        }
        (None, Some(wanted)) => {
            return Err(format!(
                "expected the plugin to be rejected with {wanted:?}, it was accepted"
            ));
        }
        (Some(reason), None) if expect.accepted != Some(false) => {
            return Err(format!("the plugin was rejected: {reason}"));
        }
        _ => {}
    }
    let mut problems = Vec::new();
    if let Some(accepted) = expect.accepted
        && accepted != report.accepted
    {
        problems.push(format!(
            "expected accepted={accepted}, got {}",
            report.accepted
        ));
    }
    for (i, wanted) in expect.requests.iter().flatten().enumerate() {
        let Some(got) = report.requests.get(i) else {
            problems.push(format!(
                "request {}: the scenario has no such request",
                i.saturating_add(1)
            ));
            continue;
        };
        let label = &got.name;
        let shown = got.outcome.to_string();
        if let Some(outcome) = &wanted.outcome
            && shown != *outcome
        {
            problems.push(format!(
                "{label}: expected outcome {outcome}, got {}",
                got.outcome
            ));
        }
        let response = got.response.as_ref();
        if let Some(status) = wanted.status
            && response.map(|r| r.status) != Some(status)
        {
            problems.push(format!(
                "{label}: expected status {status}, got {}",
                response.map_or("no response".into(), |r| r.status.to_string())
            ));
        }
        if let Some(body) = &wanted.body
            && !response.is_some_and(|r| r.body.contains(body.as_str()))
        {
            problems.push(format!(
                "{label}: expected the response body to contain {body:?}"
            ));
        }
        for (name, value) in wanted.response_headers.iter().flatten() {
            if response.and_then(|r| r.headers.get(name)) != Some(value.as_str()) {
                problems.push(format!("{label}: expected response header {name}: {value}"));
            }
        }
        let upstream = got.upstream.as_ref();
        for (name, value) in wanted.headers_added.iter().flatten() {
            let added = upstream
                .is_some_and(|u| u.headers_added.iter().any(|(k, v)| k == name && v == value));
            if !added {
                problems.push(format!(
                    "{label}: expected the request to gain {name}: {value}"
                ));
            }
        }
        for name in wanted.headers_removed.iter().flatten() {
            if !upstream.is_some_and(|u| u.headers_removed.iter().any(|(k, _)| k == name)) {
                problems.push(format!("{label}: expected the request to lose {name}"));
            }
        }
        if let Some(body) = &wanted.upstream_body
            && upstream.map(|u| u.body.as_str()) != Some(body.as_str())
        {
            problems.push(format!(
                "{label}: expected the upstream to get the body {body:?}, got {}",
                upstream.map_or("no request".to_owned(), |u| format!("{:?}", u.body))
            ));
        }
    }
    joined(&problems)
}

fn joined(problems: &[String]) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
