//! The proxy-wasm ABI's enumerations and constants (spec v0.2.1, "Types"), with the values
//! Envoy and proxy-wasm-cpp-host use. Nothing here touches wasmtime.

/// `proxy_status_t`: the result of every hostcall (spec "Status codes"; cpp-host `WasmResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    /// The name the trace prints (the spec's spelling).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::NotFound => "NOT_FOUND",
            Self::BadArgument => "BAD_ARGUMENT",
            Self::ParseFailure => "PARSE_FAILURE",
            Self::InvalidMemoryAccess => "INVALID_MEMORY_ACCESS",
            Self::Empty => "EMPTY",
            Self::CasMismatch => "CAS_MISMATCH",
            Self::InternalFailure => "INTERNAL_FAILURE",
            Self::Unimplemented => "UNIMPLEMENTED",
        }
    }
}

/// `proxy_buffer_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferType {
    HttpRequestBody,
    HttpResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    ForeignFunctionArguments,
}

impl BufferType {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequestBody,
            1 => Self::HttpResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::ForeignFunctionArguments,
            _ => return None,
        })
    }
}

/// `proxy_map_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcReceiveInitialMetadata,
    GrpcReceiveTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcReceiveInitialMetadata,
            5 => Self::GrpcReceiveTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_stream_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamType {
    Request,
    Response,
    Downstream,
    Upstream,
}

impl StreamType {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Request,
            1 => Self::Response,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Records samples.
    Histogram,
}

impl MetricType {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// `proxy_log_level_t`: TRACE 0 .. CRITICAL 5 (Envoy maps them 1:1 onto spdlog).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Level 0.
    Trace,
    /// Level 1.
    Debug,
    /// Level 2.
    Info,
    /// Level 3.
    Warn,
    /// Level 4.
    Error,
    /// Level 5.
    Critical,
}

impl LogLevel {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    pub(crate) fn raw(self) -> i32 {
        self as i32
    }
}

/// What a filter callback returns (`proxy_action_t`): 0 continue, 1 pause; cpp-host treats any
/// other value from a body callback as StopIterationNoBuffer, from headers as pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Pause,
}

impl Action {
    pub(crate) fn from_raw(raw: i32) -> Self {
        if raw == 0 {
            Self::Continue
        } else {
            Self::Pause
        }
    }
}

/// The ABI versions this host links, by the marker export a module carries.
pub(crate) const SUPPORTED_VERSIONS: [&str; 2] = ["0.2.0", "0.2.1"];

/// cpp-host's cap on a header map read from the guest (`PROXY_WASM_HOST_PAIRS_MAX_*`).
pub(crate) const MAX_PAIRS: usize = 1024;
/// cpp-host's cap on the bytes of a serialised header map.
pub(crate) const MAX_PAIRS_BYTES: usize = 1 << 20;
/// cpp-host caps one `random_get` at 64 KiB.
pub(crate) const MAX_RANDOM: usize = 64 << 10;
