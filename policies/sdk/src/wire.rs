//! The data that crosses every boundary: Kubernetes AdmissionReview v1 requests and responses,
//! policy verdicts and policy metadata, HTTP requests and verdicts of proxy filters. Serde only;
//! no ABI and no IO here.

mod admission;
mod headers;
mod http;
pub mod json;
mod metadata;
mod text;
mod verdict;

pub use admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, GroupVersionKind, GroupVersionResource,
    Operation, RawJson, Status, UserInfo,
};
pub use headers::{HeaderMapError, Headers, Iter as HeaderIter};
pub use http::{
    Answer, BodyLimit, BodyProgress, Callout, Connection, GrpcCall, HeaderChange, HttpRequest,
    HttpVerdict, MAX_CALLS, Nonce, NonceError, Route,
};
pub use metadata::{PolicyMetadata, Rule};
pub use text::Text;
pub use verdict::{PatchOperation, Verdict};
