//! manul's nftables table (`table inet manul`): NAT outgoing for pools with natOutgoing, and
//! VXLAN accepted only from known nodes. The table is rendered whole from the desired state
//! with no I/O (`render`) and replaced in one `nft -f` transaction (`NftApplier`, through the
//! narrow `Nft` trait: `real::NftCommand` runs nft, `fake::FakeNft` records). No other table is
//! ever read or written.

pub mod fake;
pub mod real;
pub mod render;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use render::{NftState, TABLE_FAMILY, TABLE_NAME, render};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft refused manul's table ({status}): {stderr}")]
    Refused { status: String, stderr: String },
    #[error("cannot run nft (apt-get install nftables): {0}")]
    Spawn(String),
}

/// The narrow interface to nftables: apply a script as one transaction, list our table.
#[async_trait::async_trait]
pub trait Nft: Send + Sync + 'static {
    /// Runs `script` with `nft -f -`: all of it or nothing.
    async fn apply(&self, script: &str) -> Result<(), NftError>;
    /// `nft list table inet manul`, or None when the table does not exist.
    async fn list_table(&self) -> Result<Option<String>, NftError>;
}

/// Owns the table: applies the desired state when it changed, or when the kernel's table is
/// not what the last apply left (someone changed or deleted it).
pub struct NftApplier {
    nft: Arc<dyn Nft>,
    /// The script last applied and the listing the kernel gave right after it.
    applied: Option<(String, Option<String>)>,
}

/// What one `NftApplier::apply` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NftOutcome {
    Unchanged,
    Replaced,
}

impl NftApplier {
    pub fn new(nft: Arc<dyn Nft>) -> NftApplier {
        NftApplier { nft, applied: None }
    }

    /// Brings the table to `state` (one transaction when anything differs).
    pub async fn apply(&mut self, state: &NftState) -> Result<NftOutcome, NftError> {
        let script = render(state);
        let listing = self.nft.list_table().await?;
        if let Some((last, seen)) = &self.applied
            && *last == script
            && *seen == listing
        {
            return Ok(NftOutcome::Unchanged);
        }
        if let Err(error) = self.nft.apply(&script).await {
            self.applied = None;
            return Err(error);
        }
        let listing = self.nft.list_table().await?;
        self.applied = Some((script, listing));
        Ok(NftOutcome::Replaced)
    }
}
