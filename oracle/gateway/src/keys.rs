//! One ed25519 key per device, made and kept by the gateway: `<state dir>/keys/<name>.json`
//! in Solana's keypair format (what `ovpp device register --device-keypair` reads), owner
//! read/write only. Keys are never logged; only public keys leave this module.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ovpp_wire::device::DeviceKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a Solana keypair file (a JSON array of 64 bytes whose second half is the first half's public key)")]
    Malformed { path: String },
    #[error("{path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
}

pub struct KeyStore {
    dir: PathBuf,
    keys: BTreeMap<String, SigningKey>,
}

/// `CP-1/ev` -> `CP-1%2Fev.json` (charger ids have no '/', device names may).
fn file_name(name: &str) -> String {
    format!("{}.json", name.replace('%', "%25").replace('/', "%2F"))
}

impl KeyStore {
    /// Loads the keys of `names`, making a new one for every device that has none yet.
    pub fn open(state_dir: &Path, names: impl IntoIterator<Item = String>) -> Result<Self, KeyError> {
        let dir = state_dir.join("keys");
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut keys = BTreeMap::new();
        for name in names {
            let path = dir.join(file_name(&name));
            let key = match std::fs::metadata(&path) {
                Ok(_) => read_keypair(&path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = SigningKey::from_bytes(&rand::random());
                    write_keypair(&path, &key)?;
                    tracing::info!(device = %name, key = %bs58::encode(key.verifying_key().as_bytes()).into_string(), "made a new device key");
                    key
                }
                Err(e) => return Err(io(&path)(e)),
            };
            keys.insert(name, key);
        }
        Ok(Self { dir, keys })
    }

    /// Puts a key made elsewhere in place (a simulated device's seeded key, or a device's
    /// own key moved to this gateway), replacing none: an existing key file stays.
    pub fn import(&mut self, name: &str, key: SigningKey) -> Result<(), KeyError> {
        let path = self.dir.join(file_name(name));
        if path.exists() {
            let existing = read_keypair(&path)?;
            self.keys.insert(name.to_string(), existing);
            return Ok(());
        }
        write_keypair(&path, &key)?;
        self.keys.insert(name.to_string(), key);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&SigningKey> {
        self.keys.get(name)
    }

    pub fn public(&self, name: &str) -> Option<DeviceKey> {
        self.keys.get(name).map(|k| k.verifying_key().to_bytes())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.keys.keys()
    }
}

/// One device as `ovpp-gateway keys list|export` shows it: what its owner registers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyExport {
    pub name: String,
    /// Base58 public key.
    pub device_key: String,
    /// `ovpp device register --kind` name.
    pub kind: &'static str,
    pub power_w: u64,
    pub capacity_wh: u64,
    pub region: String,
    /// With `export`: the keypair file written for the CLI, and the command that registers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypair: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
}

pub fn read_keypair(path: &Path) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|source| KeyError::Io { path: shown.clone(), source })?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path: shown, mode: mode & 0o777 });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: shown.clone(), source })?;
    let bytes: Vec<u8> = serde_json::from_str(&text).map_err(|_| KeyError::Malformed { path: shown.clone() })?;
    let pair: [u8; 64] = bytes.try_into().map_err(|_| KeyError::Malformed { path: shown.clone() })?;
    SigningKey::from_keypair_bytes(&pair).map_err(|_| KeyError::Malformed { path: shown })
}

/// Writes `key` as a new file, owner read/write only, then syncs it: a key the gateway has
/// signed with is never lost to a crash.
pub fn write_keypair(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    let text = serde_json::to_string(&key.to_keypair_bytes().to_vec()).expect("bytes serialize");
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}
