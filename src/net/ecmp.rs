//! The ECMP hash every level shares, so that a message takes the same hashed path at the
//! packet and the flow level.

use crate::topology::NodeId;

/// The ECMP hash of message `index` in a run with `seed`. Every level uses it, so a
/// message takes the same hashed path at the packet and the flow level.
pub fn message_hash(seed: u64, index: u32) -> u64 {
    mix(seed ^ mix(index as u64))
}

/// Which of `n` equal-cost next hops a message with `hash` takes at node `at` under ECMP
/// (and where its packets start rotating under spraying).
pub fn ecmp_pick(hash: u64, at: NodeId, n: usize) -> usize {
    (mix(hash ^ at.0 as u64) % n as u64) as usize
}

/// SplitMix64: a fixed, portable mix for ECMP hashes.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
