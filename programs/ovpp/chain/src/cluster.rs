//! Solana CLI cluster monikers for `--url/-u`.

/// The RPC URL of a moniker (`mainnet-beta`, `devnet`, `testnet`, `localhost` or their
/// first letters); anything else is taken as a URL.
pub fn cluster_url(moniker: &str) -> String {
    match moniker {
        "mainnet-beta" | "m" => "https://api.mainnet-beta.solana.com".into(),
        "devnet" | "d" => "https://api.devnet.solana.com".into(),
        "testnet" | "t" => "https://api.testnet.solana.com".into(),
        "localhost" | "l" => "http://127.0.0.1:8899".into(),
        url => url.into(),
    }
}
