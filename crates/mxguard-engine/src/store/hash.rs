//! A stable, keyed 128-bit hash of store keys (SipHash-2-4 with 128-bit output).
//!
//! Compact backends (the embedded store) keep a 16-byte hash of a greylist key in memory
//! instead of the ~60-byte text. The hash must be stable across restarts and Rust releases
//! (it is persisted), so `std`'s randomly keyed `DefaultHasher` will not do, and it must be
//! keyed with a per-database secret so that nobody can craft a triplet whose hash collides
//! with an already passed one (FNV and friends are invertible). SipHash is the standard
//! keyed PRF for this (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012; the
//! 128-bit output variant is from the reference implementation). With 128 bits, accidental
//! collisions among even 10^9 keys have probability below 10^-20.

/// A 128-bit key hash as stored by compact backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub u128);

impl std::fmt::Display for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 state after absorbing `data` (padding block included).
fn absorb(key: [u64; 2], data: &[u8], wide: bool) -> [u64; 4] {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    if wide {
        v[1] ^= 0xee;
    }
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let m = u64::from_le_bytes(word);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    // The last block carries the message length mod 256 in its top byte.
    tail[7] = (data.len() & 0xff) as u8;
    let m = u64::from_le_bytes(tail);
    v[3] ^= m;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= m;
    v
}

/// SipHash-2-4 with 128-bit output of `data` under `key`; the low 64 bits are the first
/// output word (the reference implementation's byte order read as little-endian u128).
pub fn keyed_hash128(key: [u64; 2], data: &[u8]) -> KeyHash {
    let mut v = absorb(key, data, true);
    v[2] ^= 0xee;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    let lo = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    let hi = v[0] ^ v[1] ^ v[2] ^ v[3];
    KeyHash((u128::from(hi) << 64) | u128::from(lo))
}

#[cfg(test)]
fn siphash64(key: [u64; 2], data: &[u8]) -> u64 {
    let mut v = absorb(key, data, false);
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference key 00 01 .. 0f of the SipHash paper's test vectors.
    const REF_KEY: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

    #[test]
    fn matches_reference_vectors() {
        // vectors.h of the SipHash reference implementation, message of length 0.
        assert_eq!(siphash64(REF_KEY, &[]), 0x726f_db47_dd0e_0e31);
        let expected128: [u8; 16] = [
            0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
            0x02, 0x93,
        ];
        assert_eq!(
            keyed_hash128(REF_KEY, &[]).0.to_le_bytes(),
            expected128,
            "128-bit output"
        );
        // Message 00 01 .. 0e (length 15, vector 15 of the 64-bit table).
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash64(REF_KEY, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn key_and_data_change_the_hash() {
        let a = keyed_hash128([1, 2], b"192.0.2.0/a@b/c@d");
        assert_eq!(a, keyed_hash128([1, 2], b"192.0.2.0/a@b/c@d"));
        assert_ne!(a, keyed_hash128([1, 3], b"192.0.2.0/a@b/c@d"));
        assert_ne!(a, keyed_hash128([1, 2], b"192.0.2.0/a@b/c@e"));
    }
}
