//! `slsd --audit-export FILE|-`: the embedded store's trail in a data directory as JSON lines
//! (one [`sls_protocol::AuditEntry::to_json`] object a line), user by user, each user's oldest
//! first, for a SIEM. It reads the files only (a running slsd may hold the directory) and keeps
//! to the retention settings given.

use std::io::Write;
use std::path::Path;

use sls_protocol::AuditEntry;

use super::{file, Rings};
use crate::config::AuditConfig;

/// Writes the trail in `data_dir` to `out`; returns the entries written.
///
/// # Errors
/// The files cannot be read, or `out` written.
pub fn export(data_dir: &Path, config: &AuditConfig, out: &mut dyn Write) -> std::io::Result<u64> {
    let dir = data_dir.join("audit");
    let rings = Rings::new(config.keep.max(1), super::ms(config.max_age));
    if dir.exists() {
        file::load(&dir, &rings, super::now_ms(), false)?;
    }
    let mut n = 0;
    let mut failed = None;
    rings.each(|user, bytes| {
        if failed.is_some() {
            return;
        }
        if let Ok(mut e) = AuditEntry::decode(bytes) {
            user.clone_into(&mut e.user);
            if e.node.is_empty() {
                e.node.clone_from(&config.node);
            }
            match writeln!(out, "{}", e.to_json()) {
                Ok(()) => n += 1,
                Err(err) => failed = Some(err),
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => out.flush().map(|()| n),
    }
}
