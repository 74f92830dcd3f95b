//! Events: every change Docker reports (`docker events`), kept in the database (the last
//! [`KEEP`]) so `--since` works across a daemon restart, and sent live to subscribers. A slow
//! subscriber is never silently dropped: when it falls behind the live channel it catches up
//! from the database (Docker keeps 256 in memory and loses the rest).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::db::Db;

/// How many events the database keeps.
pub const KEEP: u64 = 100_000;

/// Who an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// The object's ID (container ID, image ID or reference, volume name).
    #[serde(rename = "ID")]
    pub id: String,
    /// name, image, labels, exitCode, signal, …
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// An event in Docker's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Legacy field: the action (containers and images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Legacy field: the object's ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Legacy field: the image of a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// container, image, volume, network, daemon.
    #[serde(rename = "Type")]
    pub kind: String,
    /// create, start, die, …
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// The owner (not sent to clients).
    #[serde(skip)]
    pub owner: String,
}

impl Event {
    /// An event now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let legacy = kind == "container" || kind == "image";
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if kind == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
            owner: String::new(),
        }
    }
}

/// A stored event: its sequence number, its owner and the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    owner: String,
    event: Event,
}

/// The event log.
pub struct Events {
    db: Arc<Db>,
    tx: broadcast::Sender<(u64, Arc<Event>)>,
    next: Mutex<u64>,
}

impl Events {
    /// The log over `db`, continuing its numbering.
    pub fn new(db: Arc<Db>) -> crate::Result<Events> {
        let last = db.last_event()?;
        let (tx, _) = broadcast::channel(1024);
        Ok(Events {
            db,
            tx,
            next: Mutex::new(last + 1),
        })
    }

    /// Record and send an event owned by `owner`.
    pub fn emit(&self, owner: &str, mut ev: Event) {
        ev.owner = owner.to_string();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let seq = *next;
        *next += 1;
        let stored = Stored {
            owner: owner.to_string(),
            event: ev.clone(),
        };
        if let Ok(json) = serde_json::to_vec(&stored) {
            if let Err(e) = self.db.append_events(&[(seq, json)], KEEP) {
                tracing::warn!("recording event: {e}");
            }
        }
        let _ = self.tx.send((seq, Arc::new(ev)));
    }

    /// A live subscription and the sequence number it starts after.
    pub fn subscribe(&self) -> (broadcast::Receiver<(u64, Arc<Event>)>, u64) {
        let next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        (self.tx.subscribe(), *next - 1)
    }

    /// Stored events after `after` (sequence), oldest first.
    pub fn stored_after(&self, after: u64) -> Vec<(u64, Event)> {
        match self.db.events_from(after + 1) {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(seq, json)| {
                    let s: Stored = serde_json::from_slice(&json).ok()?;
                    let mut ev = s.event;
                    ev.owner = s.owner;
                    Some((seq, ev))
                })
                .collect(),
            Err(e) => {
                tracing::warn!("reading events: {e}");
                Vec::new()
            }
        }
    }
}

/// Docker's event filters (`type`, `container`, `image`, `label`, `event`, `volume`,
/// `network`, `daemon`, `scope`).
#[derive(Debug, Clone, Default)]
pub struct Filter(pub HashMap<String, Vec<String>>);

impl Filter {
    /// Does `ev` pass?
    pub fn matches(&self, ev: &Event) -> bool {
        let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str);
        for (key, values) in &self.0 {
            if values.is_empty() {
                continue;
            }
            let ok = match key.as_str() {
                "type" => values.iter().any(|v| v == &ev.kind),
                "event" => values
                    .iter()
                    .any(|v| v == &ev.action || ev.action.split(':').next() == Some(v.as_str())),
                "container" => {
                    ev.kind == "container"
                        && values
                            .iter()
                            .any(|v| ev.actor.id.starts_with(v.as_str()) || attr("name") == Some(v))
                }
                "image" => values.iter().any(|v| {
                    (ev.kind == "image" && (ev.actor.id == *v || attr("name") == Some(v)))
                        || attr("image") == Some(v)
                        || attr("image").map(|i| i.split(':').next() == Some(v.as_str()))
                            == Some(true)
                }),
                "volume" => ev.kind == "volume" && values.contains(&ev.actor.id),
                "network" => {
                    ev.kind == "network"
                        && values
                            .iter()
                            .any(|v| ev.actor.id == *v || attr("name") == Some(v))
                }
                "daemon" => ev.kind == "daemon",
                "scope" => values.iter().any(|v| v == "local"),
                "label" => values.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => attr(k) == Some(v),
                    None => attr(l).is_some(),
                }),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}
