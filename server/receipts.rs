//! Receipt signing: an Ed25519 key generated at first start (kept in a file
//! readable only by its owner) or given in the config.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::{Path, PathBuf};

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("receipts.key_file: {0}")]
pub struct KeyError(String);

/// The server's receipt key.
#[derive(Debug)]
pub struct ReceiptKey {
    key: SigningKey,
}

/// A signed receipt as `witness receipt get` writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptFile {
    /// Canonical JSON text; the signature covers its UTF-8 bytes.
    pub body: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
    pub key_id: String,
}

/// Where the key lives when the config does not say: beside a SQLite
/// database, else in the working directory.
pub fn default_key_file(store_url: &str) -> PathBuf {
    let dir = store_url
        .strip_prefix("sqlite://")
        .and_then(|p| Path::new(p).parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join("witness-receipt.key")
}

/// A short id for a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &VerifyingKey) -> String {
    crate::core::canonical::sha256_hex(public.as_bytes())[..16].to_string()
}

impl ReceiptKey {
    /// Loads the hex seed in `path`; a missing file is an error (read-only
    /// tools must not create a key).
    pub fn load(path: &Path) -> Result<ReceiptKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            KeyError(format!(
                "{}: {e} (the server creates it on first start)",
                path.display()
            ))
        })?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| {
            KeyError(format!(
                "{}: not a 64-hex-digit Ed25519 seed",
                path.display()
            ))
        })?;
        Ok(ReceiptKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Loads the hex seed in `path`, or creates it (mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> Result<ReceiptKey, KeyError> {
        let err = |e: std::io::Error| KeyError(format!("{}: {e}", path.display()));
        if path.exists() {
            return Self::load(path);
        }
        let seed: [u8; 32] = rand::random();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(err)?;
        std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(seed)).as_bytes())
            .map_err(err)?;
        tracing::info!(path = %path.display(), "generated a new receipt signing key");
        Ok(ReceiptKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    pub fn sign(&self, body: &str) -> Vec<u8> {
        self.key.sign(body.as_bytes()).to_bytes().to_vec()
    }
}

/// Checks a receipt file against a hex public key.
pub fn verify(receipt: &ReceiptFile, public_key_hex: &str) -> Result<(), String> {
    let mut public = [0u8; 32];
    hex::decode_to_slice(public_key_hex.trim(), &mut public)
        .map_err(|_| "public key: not 64 hex digits".to_string())?;
    let public = VerifyingKey::from_bytes(&public).map_err(|e| format!("public key: {e}"))?;
    if key_id(&public) != receipt.key_id {
        return Err(format!(
            "key_id {} is not this public key's ({})",
            receipt.key_id,
            key_id(&public)
        ));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&receipt.signature)
        .map_err(|_| "signature: not base64".to_string())?;
    let signature = Signature::from_slice(&signature).map_err(|e| format!("signature: {e}"))?;
    public
        .verify(receipt.body.as_bytes(), &signature)
        .map_err(|_| "signature does not match the body".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_refuses_any_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = ReceiptKey::load_or_create(&path).unwrap();
        assert_eq!(
            ReceiptKey::load_or_create(&path).unwrap().public_key_hex(),
            key.public_key_hex(),
            "kept"
        );
        let body = r#"{"decision_id":"d","outcome":"APPROVED"}"#.to_string();
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&body));
        let good = ReceiptFile {
            body: body.clone(),
            signature,
            key_id: key.key_id(),
        };
        assert_eq!(verify(&good, &key.public_key_hex()), Ok(()));
        for i in 0..body.len() {
            let mut bytes = body.clone().into_bytes();
            bytes[i] ^= 0x01;
            let bad = ReceiptFile {
                body: String::from_utf8_lossy(&bytes).into_owned(),
                ..good.clone()
            };
            assert!(
                verify(&bad, &key.public_key_hex()).is_err(),
                "byte {i} changed"
            );
        }
        let other = ReceiptKey::load_or_create(&dir.path().join("other")).unwrap();
        assert!(verify(&good, &other.public_key_hex()).is_err());
    }
}
