//! The metadata database, open only while it is used.
//!
//! redb locks its file for as long as a [`redb::Database`] is open, and a second process that
//! opens it fails. The image commands are separate processes (`berth pull` and `berth images`
//! may run at the same time), and a pull or a load lasts as long as its download, so the store
//! must not keep the database open for its whole life: [`Db::get`] opens it (waiting while
//! another process has it), every user in this process shares that one open database, and
//! the last one to let go closes it. Transactions are short, so a waiting process waits for
//! one transaction, not for another command.
//!
//! Opening and closing cost syncs (redb writes its allocator state on close), so work made
//! of several transactions holds one [`DbRef`] across them, and a long-lived process that
//! owns the store (the engine) keeps it open for its whole life with [`Db::hold`].

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
    /// Set by [`Db::hold`]: the database stays open while this store lives.
    held: Mutex<Option<Arc<redb::Database>>>,
    /// Run on the database the first time this process opens it (makes missing tables).
    init: fn(&redb::Database) -> Result<()>,
    /// Whether `init` has run.
    ready: std::sync::atomic::AtomicBool,
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
        let held = self.owner.held.lock().map(|h| h.is_some()).unwrap_or(false);
        if !held
            && open
                .as_ref()
                .is_some_and(|db| Arc::ptr_eq(db, &self.db) && Arc::strong_count(db) == 2)
        {
            *open = None;
        }
    }
}

impl Db {
    pub(crate) fn new(path: &Path, init: fn(&redb::Database) -> Result<()>) -> Db {
        Db {
            path: path.to_path_buf(),
            open: Mutex::new(None),
            held: Mutex::new(None),
            init,
            ready: std::sync::atomic::AtomicBool::new(false),
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
                let db = self.open_waiting()?;
                if !self.ready.load(std::sync::atomic::Ordering::Acquire) {
                    (self.init)(&db)?;
                    self.ready.store(true, std::sync::atomic::Ordering::Release);
                }
                let db = Arc::new(db);
                *open = Some(db.clone());
                db
            }
        };
        Ok(DbRef { db, owner: self })
    }

    /// Keep the database open until this `Db` is dropped (no other process can use the store
    /// meanwhile: for a process that owns it, as the engine does).
    pub(crate) fn hold(&self) -> Result<()> {
        let db = self.get()?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        *held = Some(db.db.clone());
        Ok(())
    }

    fn open_waiting(&self) -> Result<redb::Database> {
        let start = Instant::now();
        loop {
            match redb::Database::create(&self.path) {
                Ok(db) => {
                    // Root's only (it names private images), also when redb just made it.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
                        .map_err(|source| Error::Io {
                            op: "protecting",
                            path: self.path.clone(),
                            cause: source,
                        })?;
                    return Ok(db);
                }
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
