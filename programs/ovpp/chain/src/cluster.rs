//! Solana CLI cluster monikers for `--url/-u`.

/// The RPC URL of a moniker (`mainnet-beta`, `devnet`, `testnet`, `localhost` or their
/// first letters); anything else is taken as a URL, `http://` when it names no scheme
/// (`localhost:18899`, `10.0.0.5:8899`).
pub fn cluster_url(moniker: &str) -> String {
    match moniker.trim() {
        "mainnet-beta" | "m" => "https://api.mainnet-beta.solana.com".into(),
        "devnet" | "d" => "https://api.devnet.solana.com".into(),
        "testnet" | "t" => "https://api.testnet.solana.com".into(),
        "localhost" | "l" => "http://127.0.0.1:8899".into(),
        url if url.contains("://") => url.into(),
        host_and_port => format!("http://{host_and_port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_url;

    #[test]
    fn monikers_urls_and_bare_hosts() {
        assert_eq!(cluster_url("devnet"), "https://api.devnet.solana.com");
        assert_eq!(cluster_url("l"), "http://127.0.0.1:8899");
        assert_eq!(cluster_url("https://rpc.example.org"), "https://rpc.example.org");
        assert_eq!(cluster_url("localhost:18899"), "http://localhost:18899");
        assert_eq!(cluster_url("10.0.0.5:8899"), "http://10.0.0.5:8899");
    }
}
