//! The metadata database, open only while it is used.
//!
//! redb locks its file for as long as a [`redb::Database`] is open, and a second process that
//! opens it fails. The image commands are separate processes (`berth pull` and `berth images`
//! may run at the same time), and a pull or a load lasts as long as its download, so the store
//! must not keep the database open for its whole life: [`Db::get`] opens it (waiting while
//! another process has it), every user in this process shares that one open database, and
//! the last one to let go closes it. Transactions are short, so a waiting process waits for
//! one transaction, not for another command.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result, db_err};

/// How long to wait for another process to close the database before giving up.
const WAIT: Duration = Duration::from_secs(120);
/// How often to try again meanwhile.
const RETRY: Duration = Duration::from_millis(5);

/// The database file, opened on demand.
pub(crate) struct Db {
    path: PathBuf,
    open: Mutex<Option<Arc<redb::Database>>>,
}

/// The open database, shared by everyone in this process holding one; closed when the last
/// holder drops it. Declare it before the transactions taken from it, so it outlives them.
pub(crate) struct DbRef<'a> {
    db: Arc<redb::Database>,
    owner: &'a Db,
}

impl std::ops::Deref for DbRef<'_> {
    type Target = redb::Database;
    fn deref(&self) -> &redb::Database {
        &self.db
    }
}

impl Drop for DbRef<'_> {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        // Held by this one and the shared slot only: the last holder. The database closes when
        // this one's `db` is dropped, right after; a `get` in between finds the file still
        // locked and tries again.
        if open
            .as_ref()
            .is_some_and(|db| Arc::ptr_eq(db, &self.db) && Arc::strong_count(db) == 2)
        {
            *open = None;
        }
    }
}

impl Db {
    pub(crate) fn new(path: &Path) -> Db {
        Db {
            path: path.to_path_buf(),
            open: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<redb::Database>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open database (opened now if nobody in this process has it open).
    pub(crate) fn get(&self) -> Result<DbRef<'_>> {
        let mut open = self.lock();
        let db = match open.as_ref() {
            Some(db) => db.clone(),
            None => {
                let db = Arc::new(self.open_waiting()?);
                *open = Some(db.clone());
                db
            }
        };
        Ok(DbRef { db, owner: self })
    }

    fn open_waiting(&self) -> Result<redb::Database> {
        let start = Instant::now();
        loop {
            match redb::Database::create(&self.path) {
                Ok(db) => return Ok(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if start.elapsed() < WAIT => {
                    std::thread::sleep(RETRY);
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(Error::Busy(self.path.clone()));
                }
                Err(e) => return Err(db_err(e)),
            }
        }
    }
}
