//! Static archives with a symbol index, written with `ar_archive_writer`
//! (mtime/uid/gid 0 for reproducible output) in the format the target's
//! linker expects: GNU for ELF (GNU ld, lld), BSD/Darwin for Mach-O (`ld64`),
//! COFF for Windows (`link.exe`/`lld-link` `.lib`).

use std::io::Cursor;

use ar_archive_writer::{write_archive_to_stream, ArchiveKind, NewArchiveMember, DEFAULT_OBJECT_READER};

use crate::TargetError;

/// Writes an archive for `triple`'s object format holding `members` (file
/// name, object bytes).
pub fn write_archive(triple: &str, members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, TargetError> {
    let t: target_lexicon::Triple = triple.parse().map_err(|e| TargetError::Archive(format!("{triple}: {e}")))?;
    let kind = match t.binary_format {
        target_lexicon::BinaryFormat::Macho => ArchiveKind::Darwin,
        target_lexicon::BinaryFormat::Coff => ArchiveKind::Coff,
        _ => ArchiveKind::Gnu,
    };
    let ms: Vec<NewArchiveMember> = members
        .iter()
        .map(|(name, bytes)| {
            let mut m = NewArchiveMember::new(bytes.as_slice(), &DEFAULT_OBJECT_READER, name.clone());
            m.mtime = 0;
            m.uid = 0;
            m.gid = 0;
            m.perms = 0o644;
            m
        })
        .collect();
    let mut out = Cursor::new(Vec::new());
    write_archive_to_stream(&mut out, &ms, kind, false, None).map_err(|e| TargetError::Archive(e.to_string()))?;
    Ok(out.into_inner())
}
