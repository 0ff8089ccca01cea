//! The HTTP surface: `POST /validate/{id}` and `/mutate/{id}` take an AdmissionReview and answer
//! in the version it came in; `/policies`, `/healthz`, `/readyz`, `/metrics` for operations.
//! No socket here: [`router`] is a plain `Router`, driven by `serve` or by tests.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use palisade_runtime::review;

use crate::AppState;
use crate::metrics::{ErrorLabels, InstanceLabels, PolicyLabels, RequestLabels, StatusLabels};

/// The webhook's router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/validate/{id}", post(validate))
        .route("/mutate/{id}", post(mutate))
        .route("/policies", get(policies))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn validate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body)?;
    review_request(&state, &id, &body, false).await
}

async fn mutate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body)?;
    review_request(&state, &id, &body, true).await
}

/// The body, or a counted rejection: over the limit is 413 with a JSON error like every other
/// rejection (the API server shows it in the admission failure).
fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "the body is larger than the limit of {} bytes (limits.maxBodyBytes)",
                state.limits.max_body_bytes
            ))
        } else {
            ApiError::BadRequest(format!("the body could not be read: {rejection}"))
        };
        state.reject(error)
    })
}

/// Decides one AdmissionReview. The policy runs on this task: its evaluation yields to the
/// runtime at every epoch tick, so a slow or looping policy never holds a worker thread for
/// longer than a tick at a time.
async fn review_request(
    state: &AppState,
    id: &str,
    body: &[u8],
    mutating: bool,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| state.reject(ApiError::BadRequest(format!("the body is not UTF-8: {e}"))))?;
    let review::Review {
        api_version,
        request,
    } = review::parse(text).map_err(|e| state.reject(ApiError::BadRequest(e.to_string())))?;
    let set = state.policies();
    let started = Instant::now();
    let decision = set.decide(id, &request, mutating).await.ok_or_else(|| {
        state.reject(ApiError::NotFound(format!(
            "no policy or group has the id {id:?}"
        )))
    })?;
    let elapsed = started.elapsed();
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&PolicyLabels {
            policy: id.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
    let mode = decision.mode.label();
    let endpoint = if mutating { "mutate" } else { "validate" };
    metrics
        .requests
        .get_or_create(&RequestLabels {
            policy: id.to_owned(),
            decision: decision.outcome.label(),
            mode,
            endpoint,
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
