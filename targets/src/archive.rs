//! Static archives (`.a`) with a symbol index, written with
//! `ar_archive_writer` (GNU format, mtime/uid/gid 0 for reproducible output)
//! so that GNU ld accepts them.

use std::io::Cursor;

use ar_archive_writer::{write_archive_to_stream, ArchiveKind, NewArchiveMember, DEFAULT_OBJECT_READER};

use crate::TargetError;

/// Writes a GNU archive holding `members` (file name, object bytes).
pub fn write_archive(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, TargetError> {
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
    write_archive_to_stream(&mut out, &ms, ArchiveKind::Gnu, false, None)
        .map_err(|e| TargetError::Archive(e.to_string()))?;
    Ok(out.into_inner())
}
