//! The rate limit service's messages (`envoy.service.ratelimit.v3.RateLimitService/
//! ShouldRateLimit`), written by hand with prost's derive, no protoc. Field numbers and types
//! mirror envoyproxy/envoy `api/envoy/service/ratelimit/v3/rls.proto`,
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto` (`RateLimitDescriptor`),
//! `api/envoy/config/core/v3/base.proto` (`HeaderValue`), `api/envoy/type/v3/ratelimit_unit.proto`
//! and google/protobuf `duration.proto` / `wrappers.proto`. What the filter never reads
//! (`dynamic_metadata`, `quota`) is left out: prost skips unknown fields when it decodes.

/// The gRPC service.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The method the filter calls.
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitRequest`: what the filter asks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitRequest {
    /// The domain of the service's configuration (`domain`, 1).
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The request's descriptors, in the order `rate_limits` made them (`descriptors`, 2).
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// Hits the request adds to every limit; 0 (unset) means 1 (`hits_addend`, 3).
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitDescriptor {
    /// The entries, in order (`entries`, 1).
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// A limit to apply instead of the service's own (`limit`, 2).
    #[prost(message, optional, tag = "2")]
    pub limit: Option<RateLimitOverride>,
    /// This descriptor's hits, instead of the request's (`hits_addend`, 3, a `UInt64Value`).
    #[prost(message, optional, tag = "3")]
    pub hits_addend: Option<UInt64Value>,
}

/// `RateLimitDescriptor.Entry`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Entry {
    /// The key (`key`, 1).
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value (`value`, 2).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitDescriptor.RateLimitOverride`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct RateLimitOverride {
    /// Requests per unit (`requests_per_unit`, 1).
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The unit (`unit`, 2; `envoy.type.v3.RateLimitUnit`, numbered as [`Unit`]).
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

/// `google.protobuf.UInt64Value`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct UInt64Value {
    /// The value (`value`, 1).
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `RateLimitResponse`: the service's answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    /// The decision over every descriptor (`overall_code`, 1).
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    /// One status per descriptor sent, in order (`statuses`, 2).
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
    /// Headers for the response (`response_headers_to_add`, 3).
    #[prost(message, repeated, tag = "3")]
    pub response_headers_to_add: Vec<HeaderValue>,
    /// Headers for the request going upstream (`request_headers_to_add`, 4).
    #[prost(message, repeated, tag = "4")]
    pub request_headers_to_add: Vec<HeaderValue>,
    /// The body of the limited reply (`raw_body`, 5).
    #[prost(bytes = "vec", tag = "5")]
    pub raw_body: Vec<u8>,
}

/// `RateLimitResponse.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    /// Not known (Envoy's client treats it as OK).
    Unknown = 0,
    /// Under the limit.
    Ok = 1,
    /// Over the limit.
    OverLimit = 2,
}

/// `RateLimitResponse.DescriptorStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorStatus {
    /// This descriptor's code (`code`, 1).
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    /// The limit the service applied, if any (`current_limit`, 2).
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    /// Hits left in the window (`limit_remaining`, 3).
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    /// Time until the window resets (`duration_until_reset`, 4).
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<Duration>,
}

/// `RateLimitResponse.RateLimit`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RateLimit {
    /// The limit's name (`name`, 3).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Requests per unit (`requests_per_unit`, 1).
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The unit (`unit`, 2).
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

/// `RateLimitResponse.RateLimit.Unit` (and `envoy.type.v3.RateLimitUnit`, numbered alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Unit {
    /// Not known.
    Unknown = 0,
    /// A second.
    Second = 1,
    /// A minute.
    Minute = 2,
    /// An hour.
    Hour = 3,
    /// A day.
    Day = 4,
    /// A month (30 days).
    Month = 5,
    /// A year (365 days).
    Year = 6,
    /// A week.
    Week = 7,
}

impl Unit {
    /// The window in seconds, as Envoy's `XRateLimitHeaderUtils::convertRateLimitUnit` counts
    /// it (envoyproxy/envoy `source/extensions/filters/http/ratelimit/ratelimit_headers.cc`):
    /// 0 for a unit it does not know.
    #[must_use]
    pub fn window_seconds(unit: i32) -> u32 {
        match Self::try_from(unit) {
            Ok(Self::Second) => 1,
            Ok(Self::Minute) => 60,
            Ok(Self::Hour) => 3_600,
            Ok(Self::Day) => 86_400,
            Ok(Self::Week) => 604_800,
            Ok(Self::Month) => 2_592_000,
            Ok(Self::Year) => 31_536_000,
            Ok(Self::Unknown) | Err(_) => 0,
        }
    }
}

/// `envoy.config.core.v3.HeaderValue` (`raw_value`, 3, is not read, as Envoy's client does not).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HeaderValue {
    /// The name (`key`, 1).
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value (`value`, 2).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Duration {
    /// Whole seconds (`seconds`, 1).
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds (`nanos`, 2).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use prost::Message;

    /// The bytes protoc's encoder writes for a small request, field by field.
    #[test]
    fn a_request_is_encoded_as_protobuf_writes_it() {
        let request = RateLimitRequest {
            domain: "ab".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "k".into(),
                    value: "v".into(),
                }],
                limit: None,
                hits_addend: Some(UInt64Value { value: 5 }),
            }],
            hits_addend: 0,
        };
        let bytes = request.encode_to_vec();
        assert_eq!(
            bytes,
            [
                0x0a, 2, b'a', b'b', // domain (1, length-delimited): "ab"
                0x12, 12, // descriptors (2, length-delimited), 12 bytes
                0x0a, 6, // entries (1), 6 bytes
                0x0a, 1, b'k', // key (1): "k"
                0x12, 1, b'v', // value (2): "v"
                0x1a, 2, // hits_addend (3), 2 bytes
                0x08,
                5, // value (1, varint): 5
                   // hits_addend (3) is 0: not written (proto3)
            ]
        );
        assert_eq!(RateLimitRequest::decode(bytes.as_slice()).unwrap(), request);
    }

    #[test]
    fn unknown_fields_of_a_response_are_skipped() {
        // overall_code OVER_LIMIT, then dynamic_metadata (6) as an empty Struct.
        let response = RateLimitResponse::decode([0x08, 2, 0x32, 0].as_slice()).unwrap();
        assert_eq!(response.overall_code, Code::OverLimit as i32);
    }

    #[test]
    fn windows_as_envoy_counts_them() {
        assert_eq!(Unit::window_seconds(Unit::Week as i32), 604_800);
        assert_eq!(Unit::window_seconds(Unit::Month as i32), 2_592_000);
        assert_eq!(Unit::window_seconds(0), 0);
        assert_eq!(Unit::window_seconds(99), 0);
    }
}
