//! Golden tests, one binary with the libtest-mimic harness: every policy's fixtures through its
//! compiled wasm (`policies`), and the proxy-wasm host's scenarios through the probe filter
//! (`proxy`).

use std::process::ExitCode;

use libtest_mimic::Arguments;

mod policies;
mod proxy;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = policies::trials();
    trials.extend(proxy::trials());
    libtest_mimic::run(&args, trials).exit_code()
}
