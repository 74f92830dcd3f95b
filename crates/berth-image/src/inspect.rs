//! `docker image inspect` and `docker history` over the store: both read the image config.

use std::collections::HashSet;

use berth_registry::Reference;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{Error, ImageStore, Result};

/// One line of an image's history (`docker history`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The image ID for the top entry, `<missing>` for the others (as Docker shows for pulled
    /// images: the intermediate images are not in the store).
    pub id: String,
    /// When the step ran (RFC 3339), if the config says.
    pub created: Option<String>,
    /// The command of the step (`/bin/sh -c #(nop) CMD ["sh"]`, …).
    pub created_by: String,
    /// Bytes on disk of the layer the step made; 0 for a step that made none.
    pub size: u64,
    /// The step's comment.
    pub comment: String,
    /// The image's tags (full form), on the top entry only.
    pub tags: Vec<String>,
    /// The step made no layer.
    pub empty_layer: bool,
}

/// The familiar form of a full tag, as Docker prints it (`busybox:latest`).
pub(crate) fn familiar(tag: &str) -> String {
    Reference::parse(tag)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| tag.to_string())
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl ImageStore {
    /// The parsed config of image `id`.
    pub(crate) fn config_json(&self, id: &str) -> Result<Value> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::BadConfig {
            digest: id.to_string(),
            why: e.to_string(),
        })
    }

    /// `docker image inspect NAME`: the image as Docker's API shapes it (Id, RepoTags,
    /// RepoDigests, Created, Author, Architecture, Os, Variant, Config, RootFS, Size,
    /// Metadata, …). Tags and digests are in their familiar form, as Docker prints them.
    pub fn inspect(&self, name: &str) -> Result<Value> {
        let rec = self.get(name)?;
        let cfg = self.config_json(&rec.id)?;
        let _lock = self.lock_shared()?;
        let repo_tags: Vec<String> = rec.repo_tags.iter().map(|t| familiar(t)).collect();
        let repo_digests: Vec<String> = rec.repo_digests.iter().map(|d| familiar(d)).collect();
        let empty = json!({
            "Hostname": "", "Domainname": "", "User": "",
            "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
            "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
            "Entrypoint": null, "OnBuild": null, "Labels": null
        });
        let mut config = json!({
            "Hostname": "", "Domainname": "", "User": "",
            "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
            "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
            "Entrypoint": null, "OnBuild": null, "Labels": null
        });
        if let (Some(out), Some(Value::Object(given))) = (config.as_object_mut(), cfg.get("config"))
        {
            for (k, v) in given {
                out.insert(k.clone(), v.clone());
            }
        }
        let distinct: Vec<String> = {
            let mut seen = HashSet::new();
            rec.diff_ids
                .iter()
                .filter(|d| seen.insert(d.as_str()))
                .cloned()
                .collect()
        };
        let sizes = self.layer_sizes(&distinct)?;
        let lower: Vec<String> = rec
            .diff_ids
            .iter()
            .rev()
            .map(|d| self.layer_path(d).display().to_string())
            .collect();
        let mut out = Map::new();
        out.insert("Id".into(), json!(rec.id));
        out.insert("RepoTags".into(), json!(repo_tags));
        out.insert("RepoDigests".into(), json!(repo_digests));
        out.insert(
            "Parent".into(),
            json!(rec.parent.clone().unwrap_or_default()),
        );
        out.insert("Comment".into(), json!(str_field(&cfg, "comment")));
        out.insert(
            "Created".into(),
            json!(
                cfg.get("created")
                    .and_then(Value::as_str)
                    .unwrap_or("0001-01-01T00:00:00Z")
            ),
        );
        out.insert(
            "DockerVersion".into(),
            json!(str_field(&cfg, "docker_version")),
        );
        out.insert("Author".into(), json!(str_field(&cfg, "author")));
        out.insert("Config".into(), config);
        // Dropped from Docker's API in 1.45; docker-compose 1.29 (API 1.38) reads it when it
        // recreates a container.
        out.insert("Container".into(), json!(str_field(&cfg, "container")));
        out.insert(
            "ContainerConfig".into(),
            match cfg.get("container_config") {
                Some(c @ Value::Object(_)) => c.clone(),
                _ => empty,
            },
        );
        out.insert(
            "Architecture".into(),
            json!(str_field(&cfg, "architecture")),
        );
        if let Some(v) = cfg.get("variant").and_then(Value::as_str) {
            out.insert("Variant".into(), json!(v));
        }
        out.insert("Os".into(), json!(str_field(&cfg, "os")));
        if let Some(v) = cfg.get("os.version").and_then(Value::as_str) {
            out.insert("OsVersion".into(), json!(v));
        }
        out.insert("Size".into(), json!(sizes.values().sum::<u64>()));
        out.insert(
            "GraphDriver".into(),
            json!({"Name": "overlay", "Data": {"LowerDir": lower.join(":")}}),
        );
        out.insert(
            "RootFS".into(),
            json!({"Type": "layers", "Layers": rec.diff_ids}),
        );
        out.insert(
            "Metadata".into(),
            json!({"LastTagTime": self.last_tag_time(&rec.id)?.unwrap_or_else(|| "0001-01-01T00:00:00Z".into())}),
        );
        Ok(Value::Object(out))
    }

    /// `docker history NAME`: the config's history, newest first; each step that made a layer
    /// gets that layer's size. An image whose config has no history gets one entry per layer.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let rec = self.get(name)?;
        let cfg = self.config_json(&rec.id)?;
        let _lock = self.lock_shared()?;
        let sizes = self.layer_sizes(&rec.diff_ids)?;
        let steps: Vec<Value> = match cfg.get("history").and_then(Value::as_array) {
            Some(h) if !h.is_empty() => h.clone(),
            _ => rec.diff_ids.iter().map(|_| json!({})).collect(),
        };
        let mut layer = 0usize;
        let mut out = Vec::new();
        for step in &steps {
            let empty_layer = step
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let size = if empty_layer {
                0
            } else {
                let s = rec
                    .diff_ids
                    .get(layer)
                    .and_then(|d| sizes.get(d))
                    .copied()
                    .unwrap_or(0);
                layer += 1;
                s
            };
            out.push(HistoryEntry {
                id: "<missing>".into(),
                created: step
                    .get("created")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                created_by: str_field(step, "created_by"),
                size,
                comment: str_field(step, "comment"),
                tags: Vec::new(),
                empty_layer,
            });
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = rec.id.clone();
            top.tags = rec.repo_tags.clone();
        }
        Ok(out)
    }
}
