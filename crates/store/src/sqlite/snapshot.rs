//! A consistent copy of the database while it is in use, by SQLite's backup API.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::error::{Result, StoreError};

/// Copies every page in one step, so the copy is one read transaction: writers go on (WAL)
/// and the copy shows the database as it was when the step began.
pub(crate) fn write(src: &Connection, dest: &Path) -> Result<()> {
    let fail = |e: rusqlite::Error| {
        StoreError::Snapshot(format!(
            "cannot copy the database to {}: {e}",
            dest.display()
        ))
    };
    let mut out = Connection::open(dest).map_err(fail)?;
    {
        let backup = Backup::new(src, &mut out).map_err(fail)?;
        let mut waits = 0;
        loop {
            match backup.step(-1).map_err(fail)? {
                StepResult::Done => break,
                StepResult::More => {}
                // Another connection holds a lock the copy needs: wait briefly, then again.
                StepResult::Busy | StepResult::Locked => {
                    waits += 1;
                    if waits > 600 {
                        return Err(StoreError::Snapshot(
                            "the database stayed locked for a minute; no copy was made".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {}
            }
        }
    }
    // The copy is a plain database file, complete in itself.
    out.pragma_update(None, "journal_mode", "DELETE")
        .map_err(fail)?;
    out.close().map_err(|(_, e)| fail(e))
}
