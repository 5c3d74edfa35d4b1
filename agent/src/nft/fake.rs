//! A recording fake of `Nft` for unit tests: keeps the last script as "the table", can be told
//! to refuse or to lose the table (as if someone deleted it); a `delete table` script removes
//! it. No I/O.

use std::sync::{Mutex, PoisonError};

use super::{Nft, NftError};

#[derive(Default)]
pub struct FakeNft {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    table: Option<String>,
    applied: Vec<String>,
    listings: usize,
    refuse: Option<String>,
}

impl FakeNft {
    /// Every script applied, in order.
    pub fn applied(&self) -> Vec<String> {
        self.lock().applied.clone()
    }

    /// How many times the table was listed.
    pub fn listings(&self) -> usize {
        self.lock().listings
    }

    /// The next applies fail with this stderr (None: they succeed again).
    pub fn refuse(&self, stderr: Option<&str>) {
        self.lock().refuse = stderr.map(str::to_string);
    }

    /// Someone deleted the table behind manul's back.
    pub fn lose_table(&self) {
        self.lock().table = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Nft for FakeNft {
    async fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut state = self.lock();
        if let Some(stderr) = &state.refuse {
            return Err(NftError::Refused {
                status: "exit status: 1".into(),
                stderr: stderr.clone(),
            });
        }
        state.applied.push(script.to_string());
        // `delete table` (manul-agent cleanup) removes the table; any other script replaces it.
        state.table = if script.trim_start().starts_with("delete table") {
            None
        } else {
            Some(script.to_string())
        };
        Ok(())
    }

    async fn list_table(&self) -> Result<Option<String>, NftError> {
        let mut state = self.lock();
        state.listings += 1;
        Ok(state.table.clone())
    }
}
