//! The webhook's integration tests, one module per concern, linked into one binary (one link of
//! the host instead of one per file).

mod hardening;
mod mutation;
mod router;
mod server;
mod support;
mod tls_end_to_end;
