//! The engine's database: `engine.redb` under the data root, open for the daemon's lifetime
//! (redb: crash-safe, one writer at a time; the daemon is its only user). Containers by ID
//! (JSON records) and the event log (by sequence number).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::model::Container;
use crate::{Error, Result};

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

/// The open database.
pub struct Db {
    db: Database,
}

impl Db {
    /// Open (creating) the database at `path`, root's only. A second daemon on the same data
    /// root fails here: redb locks its file.
    pub fn open(path: &Path) -> Result<Db> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Conflict(format!(
                "{} is in use: is another berth daemon running on this data root?",
                path.display()
            )),
            e => Error::internal(format!("opening {}", path.display()), e),
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::internal(format!("protecting {}", path.display()), e))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(CONTAINERS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(VOLUMES)?;
            txn.open_table(NETWORKS)?;
        }
        txn.commit()?;
        Ok(Db { db })
    }

    /// Every container record.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CONTAINERS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            match serde_json::from_slice::<Container>(v.value()) {
                Ok(c) => out.push(c),
                Err(e) => tracing::error!("container record {} unreadable: {e}", k.value()),
            }
        }
        Ok(out)
    }

    /// Write (insert or replace) a container record, durably.
    pub fn put_container(&self, c: &Container) -> Result<()> {
        let json = serde_json::to_vec(c).map_err(|e| Error::internal("encoding", e))?;
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(CONTAINERS)?;
            t.insert(c.id.as_str(), json.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Delete a container record.
    pub fn delete_container(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(CONTAINERS)?;
            t.remove(id)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Append events (JSON) with their sequence numbers; drop the oldest beyond `keep`.
    pub fn append_events(&self, events: &[(u64, Vec<u8>)], keep: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(EVENTS)?;
            for (seq, json) in events {
                t.insert(*seq, json.as_slice())?;
            }
            let len = t.len()?;
            if len > keep {
                let excess = len - keep;
                let first: Vec<u64> = t
                    .iter()?
                    .take(excess as usize)
                    .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                    .collect();
                for k in first {
                    t.remove(k)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Events with sequence numbers from `from` on, oldest first.
    pub fn events_from(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in t.range(from..)? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The last event's sequence number (0 if none).
    pub fn last_event(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EVENTS)?;
        Ok(t.last()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// Every volume record (JSON).
    pub fn volumes(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(VOLUMES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Write a volume record.
    pub fn put_volume(&self, name: &str, json: &[u8]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(VOLUMES)?;
            t.insert(name, json)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Delete a volume record.
    pub fn delete_volume(&self, name: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(VOLUMES)?;
            t.remove(name)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every network record (ID, JSON).
    pub fn networks(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(NETWORKS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Write a network record.
    pub fn put_network(&self, id: &str, json: &[u8]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(NETWORKS)?;
            t.insert(id, json)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Delete a network record.
    pub fn delete_network(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(NETWORKS)?;
            t.remove(id)?;
        }
        txn.commit()?;
        Ok(())
    }
}
