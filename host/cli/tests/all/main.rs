//! The `palisade` command's integration tests, one module per concern, linked into one binary
//! (one link of the host instead of one per file).

mod cli;
mod gator;
mod istio;
mod kubewarden;
mod oci;
mod proxy;
mod rego;
mod supply_chain;
mod support;
