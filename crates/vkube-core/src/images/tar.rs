//! The tar format an OVA is (POSIX ustar, with the pax and GNU extensions
//! for long names and large sizes): header blocks are parsed here, while the
//! caller streams the entries' data, so an OVA is read once from a file or an
//! HTTP response without being unpacked.

use std::collections::BTreeMap;

use super::ImageError;

/// Size of a tar block.
pub const BLOCK: usize = 512;
/// Largest extension header (pax or GNU long name) vkube reads.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// What a header block announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (no data).
    Directory,
    /// pax extended header for the next entry.
    PaxNext,
    /// pax global header.
    PaxGlobal,
    /// GNU long name for the next entry.
    GnuLongName,
    /// Anything else (links, devices): its data is skipped.
    Other(u8),
}

/// One parsed header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Path (ustar prefix joined), before any extension applies.
    pub name: String,
    /// Data size in bytes.
    pub size: u64,
    /// Entry type.
    pub kind: EntryKind,
}

/// The data blocks after a header hold `size` bytes padded to whole blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

fn field(block: &[u8], start: usize, len: usize) -> &[u8] {
    let raw = &block[start..start + len];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
    &raw[..end]
}

fn octal(raw: &[u8], what: &str) -> Result<u64, ImageError> {
    // GNU base-256 for values that do not fit in octal digits.
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(raw[0] & 0x7f);
        for &b in &raw[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| corrupt(format!("the {what} field overflows")))?;
        }
        return Ok(value);
    }
    let text: String = raw
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim_matches(|c: char| c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| corrupt(format!("the {what} field is not octal")))
}

fn corrupt(problem: String) -> ImageError {
    ImageError::CorruptArchive(problem)
}

/// Parse one header block. `None` for an all-zero block (the end of the
/// archive). Refuses a block whose checksum does not match: the first sign
/// that a file is not a tar archive, or a damaged one.
pub fn parse_header(block: &[u8; BLOCK]) -> Result<Option<Header>, ImageError> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = octal(&block[148..156], "checksum")?;
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != computed {
        return Err(corrupt(
            "a header's checksum does not match (not a tar archive, or a damaged one)".into(),
        ));
    }
    let size = octal(&block[124..136], "size")?;
    let kind = match block[156] {
        b'0' | 0 | b'7' => EntryKind::File,
        b'5' => EntryKind::Directory,
        b'x' => EntryKind::PaxNext,
        b'g' => EntryKind::PaxGlobal,
        b'L' => EntryKind::GnuLongName,
        other => EntryKind::Other(other),
    };
    let name = String::from_utf8_lossy(field(block, 0, 100)).into_owned();
    let ustar = &block[257..262] == b"ustar";
    let prefix = if ustar {
        String::from_utf8_lossy(field(block, 345, 155)).into_owned()
    } else {
        String::new()
    };
    let name = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    Ok(Some(Header { name, size, kind }))
}

/// Records of a pax extended header (`LEN key=value\n` each).
pub fn pax_records(data: &[u8]) -> Result<BTreeMap<String, String>, ImageError> {
    let mut records = BTreeMap::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| corrupt("a pax record has no length".into()))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or_else(|| corrupt("a pax record's length is wrong".into()))?;
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let text = String::from_utf8_lossy(record);
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| corrupt("a pax record has no `=`".into()))?;
        records.insert(key.to_string(), value.to_string());
        rest = &rest[len..];
    }
    Ok(records)
}

/// Applies extension headers to the entry that follows them.
#[derive(Debug, Default)]
pub struct Entries {
    next_name: Option<String>,
    next_size: Option<u64>,
}

/// A file entry with its final name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `./`.
    pub name: String,
    /// Data size in bytes.
    pub size: u64,
    /// Entry type.
    pub kind: EntryKind,
}

impl Entries {
    /// Take in an extension header's data (`header.kind` is one of the
    /// extension kinds).
    pub fn extension(&mut self, header: &Header, data: &[u8]) -> Result<(), ImageError> {
        match header.kind {
            EntryKind::PaxNext => {
                let records = pax_records(data)?;
                if let Some(path) = records.get("path") {
                    self.next_name = Some(path.clone());
                }
                if let Some(size) = records.get("size") {
                    self.next_size = Some(
                        size.parse()
                            .map_err(|_| corrupt("a pax size is not a number".into()))?,
                    );
                }
            }
            EntryKind::GnuLongName => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                self.next_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            _ => {}
        }
        Ok(())
    }

    /// The entry a non-extension header describes, with pending extensions applied.
    pub fn entry(&mut self, header: Header) -> Entry {
        let name = self.next_name.take().unwrap_or(header.name);
        let size = self.next_size.take().unwrap_or(header.size);
        Entry {
            name: name.trim_start_matches("./").to_string(),
            size,
            kind: header.kind,
        }
    }
}

/// Whether a header kind carries data for the entry after it.
pub fn is_extension(kind: EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::PaxNext | EntryKind::PaxGlobal | EntryKind::GnuLongName
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header as `tar` writes it.
    fn header(name: &str, size: u64, kind: u8) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..107].copy_from_slice(b"0000644");
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        block[156] = kind;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        block
    }

    #[test]
    fn ustar_headers_parse_and_end_blocks_end() {
        let h = parse_header(&header("image.ovf", 1234, b'0'))
            .unwrap()
            .unwrap();
        assert_eq!(
            h,
            Header {
                name: "image.ovf".into(),
                size: 1234,
                kind: EntryKind::File
            }
        );
        assert_eq!(parse_header(&[0; BLOCK]).unwrap(), None);
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), 512);
        assert_eq!(padded(512), 512);
        assert_eq!(padded(513), 1024);
    }

    #[test]
    fn damaged_headers_are_refused() {
        let mut h = header("image.ovf", 1234, b'0');
        h[0] = b'X';
        let err = parse_header(&h).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let mut text = [0u8; BLOCK];
        text[..20].copy_from_slice(b"this is not a tar!!!");
        assert!(parse_header(&text).is_err());
    }

    #[test]
    fn pax_and_gnu_names_and_sizes_apply_to_the_next_entry() {
        let mut entries = Entries::default();
        let long = "d/".repeat(80) + "disk.vmdk";
        let record = format!("path={long}\n");
        let len = record.len() + 4; // "NNN " prefix, three digits
        let data = format!("{len} {record}");
        let pax = parse_header(&header("PaxHeader", data.len() as u64, b'x'))
            .unwrap()
            .unwrap();
        entries.extension(&pax, data.as_bytes()).unwrap();
        let file = parse_header(&header("short", 10, b'0')).unwrap().unwrap();
        assert_eq!(entries.entry(file.clone()).name, long);
        // Applied once only.
        assert_eq!(entries.entry(file).name, "short");
        let gnu = parse_header(&header("././@LongLink", 5, b'L'))
            .unwrap()
            .unwrap();
        entries.extension(&gnu, b"x.mf\0").unwrap();
        let next = parse_header(&header("./y", 1, b'0')).unwrap().unwrap();
        assert_eq!(entries.entry(next).name, "x.mf");
        assert!(pax_records(b"99 path=x\n").is_err());
    }

    #[test]
    fn base256_sizes_read() {
        let mut raw = [0u8; 12];
        raw[0] = 0x80;
        raw[8..12].copy_from_slice(&0x1_0000_0000u64.to_be_bytes()[4..]);
        raw[7] = 1;
        assert_eq!(octal(&raw, "size").unwrap(), 0x1_0000_0000);
    }
}
