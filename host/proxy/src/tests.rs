//! Load-time checks and start-up rules, with tiny WAT modules: what cpp-host refuses, we refuse
//! with a message naming the problem.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;
use palisade_runtime::{Engine, EngineConfig, LoadError};

/// A minimal 0.2.1 module: memory, allocator, the version marker, plus `body`.
fn module(version: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            {body}
            (memory (export "memory") 1)
            (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
            (func (export "proxy_abi_version_{version}")))"#
    ))
    .unwrap()
}

fn load(bytes: &[u8]) -> Result<Filter, LoadError> {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    Filter::new(&engine, bytes)
}

fn scenario() -> Scenario {
    serde_json::from_str(r#"{"steps": [{"request": {}}]}"#).unwrap()
}

#[test]
fn unknown_imports_are_refused_by_name() {
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_frobnicate" (func (param i32)))
           (import "env" "envoy_resolve_dns" (func (param i32 i32 i32) (result i32)))"#,
    );
    let error = load(&bytes).unwrap_err();
    let text = format!("{error:#}");
    assert!(matches!(error, LoadError::Link(_)), "{text}");
    let source = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains("env::proxy_frobnicate"), "{source}");
    assert!(source.contains("env::envoy_resolve_dns"), "{source}");
}

#[test]
fn abi_0_1_0_is_not_supported() {
    let error = load(&module("0_1_0", "")).unwrap_err();
    assert!(matches!(error, LoadError::AbiVersion { .. }), "{error}");
    assert!(error.to_string().contains("0.2.0 or 0.2.1"), "{error}");
}

#[test]
fn abi_0_2_0_modules_cannot_import_get_log_level() {
    let import = r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32)))"#;
    assert!(load(&module("0_2_1", import)).is_ok());
    assert!(matches!(
        load(&module("0_2_0", import)),
        Err(LoadError::Link(_))
    ));
}

#[test]
fn a_module_without_allocator_is_refused() {
    let bytes = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .unwrap();
    assert!(matches!(load(&bytes), Err(LoadError::MissingExport(_))));
}

#[test]
fn hostcalls_other_than_log_trap_during_initialisation() {
    // As under V8: `_initialize` may log, but reading shared data there is a restricted
    // callback, so the VM never starts and the plugin is rejected.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
           (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
           (func (export "_initialize")
             (drop (call $log (i32.const 2) (i32.const 0) (i32.const 0)))
             (drop (call $get (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 16) (i32.const 24))))"#,
    );
    let filter = load(&bytes).unwrap();
    let (report, _) = run(&filter, &scenario(), RunOptions::default());
    assert!(!report.accepted);
    let reason = report.rejected.unwrap();
    assert!(reason.contains("restricted_callback"), "{reason}");
    assert!(reason.contains("proxy_get_shared_data"), "{reason}");
}

#[test]
fn a_module_without_callbacks_passes_requests_through() {
    // Every callback is optional: an absent one is Continue / true.
    let filter = load(&module("0_2_1", "")).unwrap();
    let (report, _) = run(&filter, &scenario(), RunOptions::default());
    assert!(report.accepted, "{:?}", report.rejected);
    let request = report.requests.first().unwrap();
    assert_eq!(request.outcome, Outcome::Upstream);
    assert_eq!(request.response.as_ref().unwrap().status, 200);
}

#[test]
fn header_values_are_handed_over_through_the_guest_allocator() {
    // on_request_headers reads :path into memory the guest allocates (its allocator returns
    // 1024), then sends a local reply whose body is that value.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
           (data (i32.const 0) ":path")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $get (i32.const 0) (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 20))
               (then unreachable))
             (drop (call $reply (i32.const 418) (i32.const 0) (i32.const 0)
                                (i32.load (i32.const 16)) (i32.load (i32.const 20))
                                (i32.const 0) (i32.const 0) (i32.const -1)))
             i32.const 1)"#,
    );
    let filter = load(&bytes).unwrap();
    let scenario: Scenario =
        serde_json::from_str(r#"{"steps": [{"request": {"path": "/teapot?x=1"}}]}"#).unwrap();
    let (report, _) = run(&filter, &scenario, RunOptions::default());
    let request = report.requests.first().unwrap();
    assert_eq!(request.outcome, Outcome::LocalReply);
    let response = request.response.as_ref().unwrap();
    assert_eq!(response.status, 418);
    assert_eq!(response.body, "/teapot?x=1");
}

#[test]
fn maps_envoy_no_longer_holds_are_bad_argument_and_close_stream_resets() {
    // on_request_headers replaces the whole map and reads its byte size, then continues; by
    // on_response_headers Envoy has dropped the request headers, so reading one is BAD_ARGUMENT
    // (2); the filter then resets the stream.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_set_header_map_pairs" (func $set (param i32 i32 i32) (result i32)))
           (import "env" "proxy_get_header_map_size" (func $size (param i32 i32) (result i32)))
           (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
           (data (i32.const 0) "\01\00\00\00\03\00\00\00\01\00\00\00x-a\001\00")
           (data (i32.const 32) ":path")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $set (i32.const 0) (i32.const 0) (i32.const 18)) (then unreachable))
             (if (call $size (i32.const 0) (i32.const 64)) (then unreachable))
             ;; byte size of {x-a: 1} is 4
             (if (i32.ne (i32.load (i32.const 64)) (i32.const 4)) (then unreachable))
             i32.const 0)
           (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
             (if (i32.ne (call $get (i32.const 0) (i32.const 32) (i32.const 5) (i32.const 80) (i32.const 84))
                         (i32.const 2))
               (then unreachable))
             (if (call $close (i32.const 1)) (then unreachable))
             i32.const 0)"#,
    );
    let filter = load(&bytes).unwrap();
    let (report, _) = run(&filter, &scenario(), RunOptions::default());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let request = report.requests.first().unwrap();
    assert_eq!(request.outcome, Outcome::Reset);
    let upstream = request.upstream.as_ref().unwrap();
    assert_eq!(
        upstream.headers_added,
        vec![("x-a".to_owned(), "1".to_owned())]
    );
    assert_eq!(
        upstream.headers_removed.len(),
        4,
        "the pseudo-headers were replaced"
    );
}

/// The hostcalls `worker-0` made from its root context (start-up), as the trace shows them:
/// `name(args) -> STATUS`, for the names starting with `prefix`.
fn worker_hostcalls(trace: &[String], prefix: &str) -> Vec<String> {
    trace
        .iter()
        .filter_map(|line| line.strip_prefix("worker-0 ctx=1 "))
        .filter(|call| call.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_ids_and_answers_follow_envoy() {
    // Envoy's Context::defineMetric/incrementMetric/recordMetric/getMetric with cpp-host's ids:
    // per VM and per type, from the type's value in steps of 4 (counters 4, 8; gauge 5;
    // histogram 6), a new id for a name defined twice (the same stat), the type in the low two
    // bits deciding the answer for ids never handed out.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
           (import "env" "proxy_record_metric" (func $rec (param i32 i64) (result i32)))
           (import "env" "proxy_get_metric" (func $get (param i32 i32) (result i32)))
           (data (i32.const 0) "cgh")
           (func $unknown (param $id i32)
             (drop (call $inc (local.get $id) (i64.const 1)))
             (drop (call $rec (local.get $id) (i64.const 1)))
             (drop (call $get (local.get $id) (i32.const 224))))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $define (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 100)))
             (drop (call $define (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 104)))
             (drop (call $define (i32.const 1) (i32.const 1) (i32.const 1) (i32.const 108)))
             (drop (call $define (i32.const 2) (i32.const 2) (i32.const 1) (i32.const 112)))
             (drop (call $define (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 116)))
             (drop (call $define (i32.const 3) (i32.const 70000) (i32.const 1) (i32.const 116)))
             (drop (call $inc (i32.load (i32.const 100)) (i64.const 1)))
             (drop (call $inc (i32.load (i32.const 104)) (i64.const 2)))
             (drop (call $rec (i32.load (i32.const 100)) (i64.const 3)))
             (drop (call $get (i32.load (i32.const 104)) (i32.const 200)))
             (drop (call $inc (i32.load (i32.const 100)) (i64.const 0)))
             (drop (call $inc (i32.load (i32.const 108)) (i64.const 0)))
             (drop (call $inc (i32.load (i32.const 108)) (i64.const -2)))
             (drop (call $rec (i32.load (i32.const 108)) (i64.const 9)))
             (drop (call $get (i32.load (i32.const 108)) (i32.const 208)))
             (drop (call $inc (i32.load (i32.const 112)) (i64.const 1)))
             (drop (call $rec (i32.load (i32.const 112)) (i64.const 7)))
             (drop (call $get (i32.load (i32.const 112)) (i32.const 216)))
             (call $unknown (i32.const 0))
             (call $unknown (i32.const 1))
             (call $unknown (i32.const 2))
             (call $unknown (i32.const 3))
             i32.const 1)"#,
    );
    let filter = load(&bytes).unwrap();
    let scenario: Scenario = serde_json::from_str(r#"{"plugin": {"workers": 1}}"#).unwrap();
    let options = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    let (report, trace) = run(&filter, &scenario, options);
    assert!(report.accepted, "{:?}", report.rejected);
    let expected = [
        "proxy_define_metric(0, 0, 1, 100) -> OK",
        "proxy_define_metric(0, 0, 1, 104) -> OK",
        "proxy_define_metric(1, 1, 1, 108) -> OK",
        "proxy_define_metric(2, 2, 1, 112) -> OK",
        "proxy_define_metric(3, 0, 1, 116) -> BAD_ARGUMENT",
        "proxy_define_metric(3, 70000, 1, 116) -> INVALID_MEMORY_ACCESS",
        "proxy_increment_metric(4, 1) -> OK",
        "proxy_increment_metric(8, 2) -> OK",
        "proxy_record_metric(4, 3) -> OK",
        "proxy_get_metric(8, 200) -> OK",
        "proxy_increment_metric(4, 0) -> BAD_ARGUMENT",
        "proxy_increment_metric(5, 0) -> OK",
        "proxy_increment_metric(5, -2) -> OK",
        "proxy_record_metric(5, 9) -> OK",
        "proxy_get_metric(5, 208) -> OK",
        "proxy_increment_metric(6, 1) -> BAD_ARGUMENT",
        "proxy_record_metric(6, 7) -> OK",
        "proxy_get_metric(6, 216) -> BAD_ARGUMENT",
        "proxy_increment_metric(0, 1) -> NOT_FOUND",
        "proxy_record_metric(0, 1) -> NOT_FOUND",
        "proxy_get_metric(0, 224) -> NOT_FOUND",
        "proxy_increment_metric(1, 1) -> NOT_FOUND",
        "proxy_record_metric(1, 1) -> NOT_FOUND",
        "proxy_get_metric(1, 224) -> NOT_FOUND",
        "proxy_increment_metric(2, 1) -> BAD_ARGUMENT",
        "proxy_record_metric(2, 1) -> NOT_FOUND",
        "proxy_get_metric(2, 224) -> BAD_ARGUMENT",
        "proxy_increment_metric(3, 1) -> BAD_ARGUMENT",
        "proxy_record_metric(3, 1) -> NOT_FOUND",
        "proxy_get_metric(3, 224) -> BAD_ARGUMENT",
    ];
    assert_eq!(worker_hostcalls(&trace, "proxy_"), expected);
    // Stats are the proxy's, by name: the canary's configure counted too (1 + 2 + 3 twice).
    let metric = |name: &str| report.metrics.get(name).unwrap();
    assert_eq!(metric("c").value, 12);
    assert_eq!(metric("g").value, 9);
    assert_eq!(metric("h").samples, vec![7, 7]);
}

#[test]
fn callout_tokens_are_unique_per_vm_and_taken_only_by_calls_envoy_starts() {
    // cpp-host 0318597: HTTP calls 4, 8, ...; gRPC calls 5, 9, ...; gRPC streams 6, 10, ...
    // A call Envoy refuses before starting it takes no token: a bad token pointer, an unknown
    // cluster, a negative timeout, missing :path/:method/:authority (HTTP: BAD_ARGUMENT; gRPC
    // to an unknown cluster name: PARSE_FAILURE). A gRPC stream that cannot start took its
    // token (6) first, and so does a GrpcService naming an unknown cluster (9).
    // proxy_grpc_send/cancel/close judge a token by its type bits.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_http_call" (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_grpc_stream" (func $stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
           (import "env" "proxy_grpc_cancel" (func $cancel (param i32) (result i32)))
           (import "env" "proxy_grpc_close" (func $close (param i32) (result i32)))
           (data (i32.const 0) "authz")
           (data (i32.const 8) "grpc")
           (data (i32.const 16) "nope")
           ;; {:path: /, :method: GET, :authority: authz}, 65 bytes
           (data (i32.const 64) "\03\00\00\00\05\00\00\00\01\00\00\00\07\00\00\00\03\00\00\00\0a\00\00\00\05\00\00\00:path\00/\00:method\00GET\00:authority\00authz\00")
           ;; {:path: /, :method: GET}, 40 bytes
           (data (i32.const 160) "\02\00\00\00\05\00\00\00\01\00\00\00\07\00\00\00\03\00\00\00:path\00/\00:method\00GET\00")
           (data (i32.const 220) "s")
           (data (i32.const 224) "m")
           ;; GrpcService{envoy_grpc{cluster_name}}: "nope", then "grpc"
           (data (i32.const 240) "\0a\06\0a\04nope")
           (data (i32.const 248) "\0a\06\0a\04grpc")
           (func $get (param $cluster i32) (param $len i32) (param $headers i32) (param $headers_len i32) (param $timeout i32) (param $out i32)
             (drop (call $http (local.get $cluster) (local.get $len) (local.get $headers) (local.get $headers_len)
                               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (local.get $timeout) (local.get $out))))
           (func $unary (param $cluster i32) (param $len i32) (param $out i32)
             (drop (call $grpc (local.get $cluster) (local.get $len) (i32.const 220) (i32.const 1) (i32.const 224) (i32.const 1)
                               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (local.get $out))))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (call $get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 65) (i32.const 0) (i32.const 300))
             (call $unary (i32.const 8) (i32.const 4) (i32.const 304))
             (call $get (i32.const 16) (i32.const 4) (i32.const 64) (i32.const 65) (i32.const 0) (i32.const 320))
             (call $get (i32.const 0) (i32.const 5) (i32.const 160) (i32.const 40) (i32.const 0) (i32.const 320))
             (call $get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 65) (i32.const -1) (i32.const 320))
             (call $get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 65) (i32.const 0) (i32.const 70000))
             (call $unary (i32.const 16) (i32.const 4) (i32.const 320))
             (drop (call $stream (i32.const 8) (i32.const 4) (i32.const 220) (i32.const 1) (i32.const 224) (i32.const 1)
                                 (i32.const 0) (i32.const 0) (i32.const 320)))
             (call $unary (i32.const 240) (i32.const 8) (i32.const 320))
             (call $get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 65) (i32.const 0) (i32.const 308))
             (call $unary (i32.const 8) (i32.const 4) (i32.const 312))
             (call $unary (i32.const 248) (i32.const 8) (i32.const 316))
             (drop (call $send (i32.load (i32.const 304)) (i32.const 0) (i32.const 0) (i32.const 0)))
             (drop (call $send (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 0)))
             (drop (call $send (i32.load (i32.const 300)) (i32.const 0) (i32.const 0) (i32.const 0)))
             (drop (call $cancel (i32.load (i32.const 300))))
             (drop (call $cancel (i32.const 21)))
             (drop (call $close (i32.const 3)))
             (drop (call $cancel (i32.load (i32.const 312))))
             i32.const 1)"#,
    );
    let filter = load(&bytes).unwrap();
    let scenario: Scenario = serde_json::from_str(
        r#"{"plugin": {"workers": 1},
            "clusters": {"authz": [{"status": 200}], "grpc": [{"body": "x"}]},
            "steps": [{"advance": 1}]}"#,
    )
    .unwrap();
    let options = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    let (report, trace) = run(&filter, &scenario, options);
    assert!(report.accepted, "{:?}", report.rejected);
    let expected = [
        "proxy_http_call(0, 5, 64, 65, 0, 0, 0, 0, 0, 300) -> OK",
        "proxy_grpc_call(8, 4, 220, 1, 224, 1, 0, 0, 0, 0, 0, 304) -> OK",
        "proxy_http_call(16, 4, 64, 65, 0, 0, 0, 0, 0, 320) -> BAD_ARGUMENT",
        "proxy_http_call(0, 5, 160, 40, 0, 0, 0, 0, 0, 320) -> BAD_ARGUMENT",
        "proxy_http_call(0, 5, 64, 65, 0, 0, 0, 0, -1, 320) -> BAD_ARGUMENT",
        "proxy_http_call(0, 5, 64, 65, 0, 0, 0, 0, 0, 70000) -> INVALID_MEMORY_ACCESS",
        "proxy_grpc_call(16, 4, 220, 1, 224, 1, 0, 0, 0, 0, 0, 320) -> PARSE_FAILURE",
        "proxy_grpc_stream(8, 4, 220, 1, 224, 1, 0, 0, 320) -> INTERNAL_FAILURE",
        "proxy_grpc_call(240, 8, 220, 1, 224, 1, 0, 0, 0, 0, 0, 320) -> PARSE_FAILURE",
        "proxy_http_call(0, 5, 64, 65, 0, 0, 0, 0, 0, 308) -> OK",
        "proxy_grpc_call(8, 4, 220, 1, 224, 1, 0, 0, 0, 0, 0, 312) -> OK",
        "proxy_grpc_call(248, 8, 220, 1, 224, 1, 0, 0, 0, 0, 0, 316) -> OK",
        "proxy_grpc_send(5, 0, 0, 0) -> BAD_ARGUMENT",
        "proxy_grpc_send(6, 0, 0, 0) -> NOT_FOUND",
        "proxy_grpc_send(4, 0, 0, 0) -> BAD_ARGUMENT",
        "proxy_grpc_cancel(4) -> BAD_ARGUMENT",
        "proxy_grpc_cancel(21) -> NOT_FOUND",
        "proxy_grpc_close(3) -> BAD_ARGUMENT",
        "proxy_grpc_cancel(13) -> OK",
    ];
    assert_eq!(worker_hostcalls(&trace, "proxy_"), expected);
    // The answers reach the root context under the tokens handed out; the cancelled call's
    // answer does not come.
    let answers: Vec<&str> = trace
        .iter()
        .filter_map(|line| line.strip_prefix("worker-0 => "))
        .filter(|call| {
            call.starts_with("proxy_on_http_call_response") || call.starts_with("proxy_on_grpc")
        })
        .collect();
    assert_eq!(
        answers,
        [
            "proxy_on_http_call_response(1, 4, 1, 0, 0)",
            "proxy_on_grpc_receive(1, 5, 1)",
            "proxy_on_http_call_response(1, 8, 1, 0, 0)",
            "proxy_on_grpc_receive(1, 17, 1)",
        ]
    );
    assert_eq!(report.callouts.len(), 4, "{:?}", report.callouts);
}

#[test]
fn callback_time_counts_the_stream_and_tells_hostcalls_apart() {
    // on_request_headers logs once (a hostcall), then spins 200,000 times in the guest.
    let bytes = module(
        "0_2_1",
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
           (data (i32.const 0) "spin")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (local $n i32)
             (drop (call $log (i32.const 2) (i32.const 0) (i32.const 4)))
             (local.set $n (i32.const 200000))
             (loop $spin
               (local.set $n (i32.sub (local.get $n) (i32.const 1)))
               (br_if $spin (local.get $n)))
             i32.const 0)"#,
    );
    let filter = load(&bytes).unwrap();
    let (report, _) = run(&filter, &scenario(), RunOptions::default());
    let request = report.requests.first().unwrap();
    assert_eq!(request.hostcalls, 1);
    assert!(request.hostcall_time > std::time::Duration::ZERO);
    assert!(
        request.callback_time > request.hostcall_time,
        "{:?} in callbacks, {:?} of it in hostcalls",
        request.callback_time,
        request.hostcall_time
    );
    // Timings stay out of the report's JSON, which must not change from run to run.
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("callbackTime") && !json.contains("hostcallTime"));
}
