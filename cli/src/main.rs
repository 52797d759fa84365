//! `ovpp`: the owner and operator CLI. Not built yet: it says so and exits non-zero rather
//! than pretend to run. The instruction builders it will use live in `ovpp::client`.

fn main() -> std::process::ExitCode {
    eprintln!(
        "ovpp {}: the command-line interface is not implemented yet (device registration, \
         claims and operator commands arrive with the CLI issue)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
