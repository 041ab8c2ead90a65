//! The operating system's randomness, for key material and cluster ids
//! (`vkube-core` takes randomness as a parameter).

/// Fill `dest` from the OS generator.
pub(crate) fn fill(dest: &mut [u8]) {
    getrandom::getrandom(dest).expect("the operating system's random generator");
}

/// A random lowercase hex id of `bytes` bytes.
pub(crate) fn hex_id(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
