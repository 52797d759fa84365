//! `ovpp-oracle`: not built yet. It says so and exits non-zero rather than pretend to run.

fn main() -> std::process::ExitCode {
    eprintln!(
        "ovpp-oracle {}: the oracle service is not implemented yet (telemetry ingest, dispatch, \
         scoring and relaying arrive with the oracle issues)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
