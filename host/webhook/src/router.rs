//! The HTTP surface: `POST /validate/{id}` and `/mutate/{id}` take an AdmissionReview and answer
//! in the version it came in; `/policies`, `/healthz`, `/readyz`, `/metrics` for operations.
//! Every rejection is a JSON `{"error": ...}` and counted. No socket here: [`router`] is a plain
//! `Router`, driven by `serve` or by tests.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use palisade_runtime::review;

use http_body_util::BodyExt;

use crate::AppState;
use crate::config::ServerLimits;
use crate::metrics::{ErrorLabels, InstanceLabels, PolicyLabels, RequestLabels, StatusLabels};
use crate::policy_set::Endpoint;

/// Health, readiness and metrics: served by both listeners.
fn probe_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The probes listener's router: health, readiness and metrics only.
pub fn probes_router(state: Arc<AppState>) -> Router {
    probe_routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The webhook's router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate/{id}", post(validate))
        .route("/mutate/{id}", post(mutate))
        .route("/audit/{id}", post(audit))
        .route("/policies", get(policies))
        .merge(probe_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(State(state): State<Arc<AppState>>, uri: axum::http::Uri) -> ApiError {
    state.reject(ApiError::NotFound(format!("no endpoint at {}", uri.path())))
}

async fn method_not_allowed(
    State(state): State<Arc<AppState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    state.reject(ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}",
        uri.path()
    )))
}

async fn validate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    review_request(&state, &id, body, Endpoint::Validate).await
}

/// policy-server's `/audit/<id>`, for audit scanners: the policy's own decision, whatever its
/// mode.
async fn audit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    review_request(&state, &id, body, Endpoint::Audit).await
}

async fn mutate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    review_request(&state, &id, body, Endpoint::Mutate).await
}

/// Reads the body within the limits: at most `maxBodyBytes` (413 past it) before the deadline
/// (408 past it, the client's doing); every rejection is counted and answered with a JSON error.
async fn read_body(
    state: &AppState,
    limits: &ServerLimits,
    deadline: Instant,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let collected = tokio::time::timeout_at(deadline.into(), limited.collect()).await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(state.reject(ApiError::PayloadTooLarge(format!(
                "the body is larger than the limit of {} bytes (limits.maxBodyBytes)",
                limits.max_body_bytes
            ))))
        }
        Ok(Err(error)) => Err(state.reject(ApiError::BadRequest(format!(
            "the body could not be read: {error}"
        )))),
        Err(_) => Err(state.reject(ApiError::RequestTimeout(format!(
            "the body was not received within {} (limits.requestTimeout)",
            humantime::format_duration(limits.request_timeout)
        )))),
    }
}

/// Decides one AdmissionReview. The body is read first (a client that announces a body and
/// sends none holds no evaluation slot), then the request waits for a slot and is evaluated;
/// the whole within `requestTimeout`, past which the answer is the policy's failurePolicy. The
/// policy runs on this task: its evaluation yields to the runtime at every epoch tick, so a
/// slow or looping policy never holds a worker thread for longer than a tick at a time.
async fn review_request(
    state: &AppState,
    id: &str,
    body: Body,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let limits = state.limits();
    let deadline = Instant::now() + limits.request_timeout;
    let body = read_body(state, &limits, deadline, body).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| state.reject(ApiError::BadRequest(format!("the body is not UTF-8: {e}"))))?;
    let review::Review {
        api_version,
        request,
    } = review::parse(text).map_err(|e| state.reject(ApiError::BadRequest(e.to_string())))?;
    let set = state.policies();
    if !set.contains(id) {
        return Err(state.reject(ApiError::NotFound(format!(
            "no policy or group has the id {id:?}"
        ))));
    }
    let started = Instant::now();
    let slots = state.slots();
    let evaluation = async {
        let _slot = slots.acquire().await;
        set.decide(id, &request, endpoint).await
    };
    let decision = match tokio::time::timeout_at(deadline.into(), evaluation).await {
        Ok(decision) => decision,
        Err(_) => set.timed_out(id, &request, limits.request_timeout),
    }
    .ok_or_else(|| {
        state.reject(ApiError::NotFound(format!(
            "no policy or group has the id {id:?}"
        )))
    })?;
    let elapsed = started.elapsed();
    let metrics = &state.metrics;
    for spent in &decision.spent {
        let labels = PolicyLabels {
            policy: spent.policy.clone(),
        };
        metrics
            .policy_busy
            .get_or_create(&labels)
            .inc_by(spent.ran.as_secs_f64());
        metrics
            .policy_waits
            .get_or_create(&labels)
            .inc_by(spent.waited.as_secs_f64());
    }
    metrics
        .latency
        .get_or_create(&PolicyLabels {
            policy: id.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
    let mode = decision.mode.label();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            policy: id.to_owned(),
            decision: decision.outcome.label(),
            mode,
            endpoint: endpoint.label(),
        })
        .inc();
    for policy in &decision.started {
        metrics
            .instance_starts
            .get_or_create(&PolicyLabels {
                policy: policy.clone(),
            })
            .inc();
    }
    for kind in &decision.errors {
        metrics
            .errors
            .get_or_create(&ErrorLabels {
                policy: id.to_owned(),
                kind,
            })
            .inc();
    }
    // Allowed requests are logged at debug only, so info-level logging costs nothing per request.
    if decision.verdict.allowed {
        tracing::debug!(uid = %request.uid, policy = %id, decision = decision.outcome.label(), "admission decided");
    } else {
        tracing::info!(uid = %request.uid, policy = %id, decision = decision.outcome.label(), reason = %decision.verdict.reason, message = %decision.verdict.message, "admission denied");
    }
    let json = review::encode(&api_version, &request.uid, &decision.verdict)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

async fn policies(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(state.policies().statuses()).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let set = state.policies();
    if state.strict_ready && !set.all_loaded() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: some policies failed to load (see /policies)",
        )
            .into_response();
    }
    "ready".into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let instances = &state.metrics.instances;
    // Policies gone with a reload leave the gauge with the set they belonged to.
    instances.clear();
    for counts in state.policies().instances() {
        for (label, value) in [("idle", counts.idle), ("busy", counts.busy)] {
            instances
                .get_or_create(&InstanceLabels {
                    policy: counts.policy.clone(),
                    state: label,
                })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Every error the webhook answers with, as JSON `{"error": "..."}` and a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a usable AdmissionReview (400).
    #[error("{0}")]
    BadRequest(String),
    /// No policy or group has the id (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not allowed on the path (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body did not arrive in time (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The body is over the configured limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The server failed to write its answer (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), axum::Json(body)).into_response()
    }
}

impl AppState {
    /// Counts and logs a rejected request.
    fn reject(&self, error: ApiError) -> ApiError {
        self.metrics
            .rejected
            .get_or_create(&StatusLabels {
                status: error.status().as_u16(),
            })
            .inc();
        tracing::warn!(status = error.status().as_u16(), error = %error, "request rejected");
        error
    }
}
