//! OVF manifests (`.mf`): one `ALGORITHM(file)= hex` line per file of the
//! package, with SHA-1 (OVF 1.x, ovftool's default for years), SHA-256 and
//! SHA-512. Parsing, streaming digests and the comparison that decides
//! whether an import goes on.

use std::collections::BTreeMap;

use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use super::ImageError;

/// A digest algorithm a manifest may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Algorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The name manifests use, e.g. `SHA256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// The expected digest of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expected {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Lower-case hex.
    pub hex: String,
}

/// A parsed manifest: expected digests by file name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: BTreeMap<String, Expected>,
}

impl Manifest {
    /// Parse a manifest. Blank lines are skipped; any other line that is not
    /// `ALGORITHM(file)= hex` with a known algorithm and a digest of the
    /// right length is an error naming the line.
    pub fn parse(text: &str) -> Result<Manifest, ImageError> {
        let mut entries = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| {
                ImageError::InvalidManifest(format!("line {}: {why}: `{line}`", number + 1))
            };
            let (algorithm, rest) = line.split_once('(').ok_or_else(|| bad("no `(`"))?;
            let (file, digest) = rest.rsplit_once(")=").ok_or_else(|| bad("no `)=`"))?;
            let algorithm = Algorithm::parse(algorithm.trim())
                .ok_or_else(|| bad("unknown digest algorithm"))?;
            let hex = digest.trim().to_ascii_lowercase();
            if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("the digest is not hex of the algorithm's length"));
            }
            if entries
                .insert(file.to_string(), Expected { algorithm, hex })
                .is_some()
            {
                return Err(bad("the file is listed twice"));
            }
        }
        Ok(Manifest { entries })
    }

    /// The expected digest of `file`.
    pub fn expected(&self, file: &str) -> Option<&Expected> {
        self.entries.get(file)
    }

    /// Files listed.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether `actual` is what the manifest lists for `file`. A file the
    /// manifest does not list is refused too: a package whose manifest
    /// leaves out a file is not what its publisher signed off.
    pub fn verify(&self, file: &str, actual: &FileDigest) -> Result<(), ImageError> {
        let expected = self
            .expected(file)
            .ok_or_else(|| ImageError::NotInManifest(file.to_string()))?;
        let actual_hex = actual.hex(expected.algorithm);
        if actual_hex != expected.hex {
            return Err(ImageError::ChecksumMismatch {
                file: file.to_string(),
                algorithm: expected.algorithm.name(),
                expected: expected.hex.clone(),
                actual: actual_hex,
            });
        }
        Ok(())
    }
}

/// SHA-1, SHA-256 and SHA-512 of one byte stream, fed as it passes.
#[derive(Clone, Default)]
pub struct FileDigest {
    sha1: Sha1,
    sha256: Sha256,
    sha512: Sha512,
    bytes: u64,
}

impl std::fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDigest")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl FileDigest {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sha1.update(data);
        self.sha256.update(data);
        self.sha512.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The digest so far, lower-case hex.
    pub fn hex(&self, algorithm: Algorithm) -> String {
        match algorithm {
            Algorithm::Sha1 => to_hex(&self.sha1.clone().finalize()),
            Algorithm::Sha256 => to_hex(&self.sha256.clone().finalize()),
            Algorithm::Sha512 => to_hex(&self.sha512.clone().finalize()),
        }
    }
}

/// SHA-256 of one stream only, for whole sources (an OVA, a disk image).
#[derive(Clone, Default)]
pub struct Sha256Stream(Sha256);

impl Sha256Stream {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Lower-case hex of what was fed.
    pub fn hex(&self) -> String {
        to_hex(&self.0.clone().finalize())
    }
}

impl std::fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256Stream")
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` is a SHA-256 digest (64 hex digits); returns it lower-case.
pub fn parse_sha256(text: &str) -> Result<String, ImageError> {
    let hex = text.trim().to_ascii_lowercase();
    let hex = hex.strip_prefix("sha256:").unwrap_or(&hex).to_string();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ImageError::Unsupported(format!(
            "`{text}` is not a SHA-256 digest (64 hex digits)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(data: &[u8]) -> FileDigest {
        let mut d = FileDigest::default();
        // Fed in pieces, as streams arrive.
        for chunk in data.chunks(3) {
            d.update(chunk);
        }
        d
    }

    #[test]
    fn manifests_in_every_algorithm_verify_the_bytes_they_name() {
        let data = b"hello ova";
        let d = digest_of(data);
        let text = format!(
            "SHA256(a.ovf)= {}\nSHA1(b.vmdk)= {}\n\nSHA512(c.iso)={}\n",
            d.hex(Algorithm::Sha256),
            d.hex(Algorithm::Sha1).to_uppercase(),
            d.hex(Algorithm::Sha512)
        );
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(
            manifest.files().collect::<Vec<_>>(),
            ["a.ovf", "b.vmdk", "c.iso"]
        );
        for file in ["a.ovf", "b.vmdk", "c.iso"] {
            manifest.verify(file, &d).unwrap();
        }
        // Known answers (FIPS 180 test vector "abc").
        let abc = digest_of(b"abc");
        assert_eq!(
            abc.hex(Algorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            abc.hex(Algorithm::Sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(abc.len(), 3);
        let other = digest_of(b"hello ovb");
        let err = manifest.verify("b.vmdk", &other).unwrap_err().to_string();
        assert!(err.contains("b.vmdk") && err.contains("SHA1"), "{err}");
        let missing = manifest.verify("d.vmdk", &d).unwrap_err().to_string();
        assert!(missing.contains("d.vmdk"), "{missing}");
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        for (text, line) in [
            ("SHA256(a)= 12", "line 1"),
            ("\nMD5(a)= d41d8cd98f00b204e9800998ecf8427e", "line 2"),
            ("SHA1 a = 0", "line 1"),
            (
                "SHA1(a)= da39a3ee5e6b4b0d3255bfef95601890afd80709\nSHA1(a)= da39a3ee5e6b4b0d3255bfef95601890afd80709",
                "line 2",
            ),
        ] {
            let err = Manifest::parse(text).unwrap_err().to_string();
            assert!(err.contains(line), "{text:?}: {err}");
        }
    }

    #[test]
    fn sha256_arguments_accept_the_usual_forms() {
        let hex = "A".repeat(64);
        assert_eq!(parse_sha256(&hex).unwrap(), "a".repeat(64));
        assert_eq!(
            parse_sha256(&format!("sha256:{hex}")).unwrap(),
            "a".repeat(64)
        );
        assert!(parse_sha256("abc").is_err());
    }
}
