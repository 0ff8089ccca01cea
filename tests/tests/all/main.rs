//! End-to-end tests with the standard harness, one module per concern, linked into one binary.

mod cache;
mod capabilities;
mod deploy;
mod gatekeeper;
mod hostile;
mod image_signature;
mod kubewarden;
mod kubewarden_images;
mod kubewarden_wasi;
mod rate_limits;
mod rego_library;
mod serving;
