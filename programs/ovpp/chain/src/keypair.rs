//! Solana CLI keypair files.

use std::path::{Path, PathBuf};

use solana_sdk::signature::Keypair;

/// A keypair file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot read keypair {path}: {reason} (create one with `solana-keygen new -o {path}`)")]
pub struct KeypairError {
    pub path: String,
    pub reason: String,
}

/// Reads a Solana CLI keypair file (a JSON array of the 64 bytes secret || public).
pub fn read_keypair(path: &Path) -> Result<Keypair, KeypairError> {
    let reason = match std::fs::read_to_string(path) {
        Err(e) => e.to_string(),
        Ok(text) => match serde_json::from_str::<Vec<u8>>(&text) {
            Ok(bytes) if bytes.len() == 64 => match Keypair::try_from(bytes.as_slice()) {
                Ok(keypair) => return Ok(keypair),
                Err(e) => format!("not a valid ed25519 keypair: {e}"),
            },
            _ => "not a Solana keypair file (a JSON array of 64 bytes)".to_string(),
        },
    };
    Err(KeypairError { path: path.display().to_string(), reason })
}

/// `~/.config/solana/id.json`, where the Solana CLI keeps the default keypair.
pub fn default_keypair_path() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".config/solana/id.json")
}
