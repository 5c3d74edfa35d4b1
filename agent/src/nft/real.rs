//! `Nft` over the nft command (nftables package): one `nft -f -` per change with the script on
//! stdin and stderr kept for the error; listing with `nft -s list table inet manul`. Runs nft in
//! the caller's network namespace. Does I/O.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{Nft, NftError, TABLE_FAMILY, TABLE_NAME};

#[derive(Clone, Debug)]
pub struct NftCommand {
    program: String,
}

impl Default for NftCommand {
    fn default() -> NftCommand {
        NftCommand {
            program: "nft".to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Nft for NftCommand {
    async fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| NftError::Spawn(error.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|error| NftError::Spawn(format!("writing to nft: {error}")))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| NftError::Spawn(error.to_string()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(NftError::Refused {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    async fn list_table(&self) -> Result<Option<String>, NftError> {
        let output = tokio::process::Command::new(&self.program)
            // -s: without counters, so that traffic does not look like a change.
            .args(["-s", "list", "table", TABLE_FAMILY, TABLE_NAME])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|error| NftError::Spawn(error.to_string()))?;
        if output.status.success() {
            Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
        } else {
            // "No such file or directory": the table does not exist.
            Ok(None)
        }
    }
}
