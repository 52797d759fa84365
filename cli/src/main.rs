//! `ovpp`: the OpenVPP command line (see `ovpp --help`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let code = ovpp_cli::main_with(std::env::args_os(), None, &mut std::io::stdout(), &mut std::io::stderr()).await;
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
