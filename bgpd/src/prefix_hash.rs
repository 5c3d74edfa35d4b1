//! A fast hasher for the per-consumer prefix sets and maps (`watch`, `outbound`): SipHash,
//! std's default, was about an eighth of the receiver's time with a watcher attached. A
//! multiply-and-rotate mix of the key's words with a per-process random seed, finished with
//! an avalanche step; not cryptographic, but the seed keeps collisions from being chosen in
//! advance by a peer. No I/O.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
};

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Builds `PrefixHasher`s seeded once per map.
#[derive(Clone, Debug)]
pub struct PrefixHashBuilder {
    seed: u64,
}

impl Default for PrefixHashBuilder {
    fn default() -> Self {
        PrefixHashBuilder {
            seed: RandomState::new().hash_one(0x006d_616e_756c_u64),
        }
    }
}

impl BuildHasher for PrefixHashBuilder {
    type Hasher = PrefixHasher;

    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher { state: self.seed }
    }
}

#[derive(Clone, Debug)]
pub struct PrefixHasher {
    state: u64,
}

impl PrefixHasher {
    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(MULTIPLIER).rotate_left(29);
    }
}

impl Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.mix(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn finish(&self) -> u64 {
        let mut state = self.state;
        state ^= state >> 32;
        state = state.wrapping_mul(MULTIPLIER);
        state ^ (state >> 29)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use ipnet::IpNet;

    use super::*;

    #[test]
    fn distinct_prefixes_spread_over_buckets() {
        let builder = PrefixHashBuilder::default();
        let mut low_bits = HashSet::new();
        for index in 0u32..4096 {
            let prefix: IpNet = format!("10.{}.{}.0/24", index >> 8, index & 255)
                .parse()
                .unwrap();
            low_bits.insert(builder.hash_one(prefix) & 0xfff);
        }
        // 4096 keys into 4096 buckets: a uniform hash fills about 63% of them.
        assert!(low_bits.len() > 2400, "{} buckets used", low_bits.len());
        let other = PrefixHashBuilder::default();
        let prefix: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_ne!(
            builder.hash_one(prefix),
            other.hash_one(prefix),
            "seeded per map"
        );
    }
}
