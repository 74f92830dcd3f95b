//! The image config a build edits, as JSON (so that every field berth does not model, a
//! base image's `Healthcheck`, `OnBuild`, `Shell`…, survives), with the edits each
//! Dockerfile instruction makes.

use berth_registry::PlatformExt as _;
use serde_json::{Map, Value, json};

/// The config being built: the whole JSON object of an image config.
#[derive(Debug, Clone)]
pub(crate) struct ImageConfig {
    pub(crate) top: Map<String, Value>,
}

impl ImageConfig {
    /// A config for `FROM scratch`.
    pub(crate) fn scratch() -> ImageConfig {
        let p = berth_registry::Platform::host();
        let mut top = Map::new();
        top.insert("architecture".into(), json!(p.architecture()));
        top.insert("os".into(), json!(p.os()));
        top.insert("config".into(), json!({}));
        top.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        top.insert("history".into(), json!([]));
        ImageConfig { top }
    }

    /// A base image's config (its JSON bytes).
    pub(crate) fn parse(bytes: &[u8]) -> Option<ImageConfig> {
        let Value::Object(mut top) = serde_json::from_slice(bytes).ok()? else {
            return None;
        };
        // What described the base's own making.
        for k in [
            "container",
            "container_config",
            "docker_version",
            "comment",
            "author",
        ] {
            top.remove(k);
        }
        if !top.get("config").is_some_and(Value::is_object) {
            top.insert("config".into(), json!({}));
        }
        Some(ImageConfig { top })
    }

    pub(crate) fn config(&mut self) -> &mut Map<String, Value> {
        if !self.top.get("config").is_some_and(Value::is_object) {
            self.top.insert("config".into(), json!({}));
        }
        match self.top.get_mut("config") {
            Some(Value::Object(m)) => m,
            _ => unreachable!("made an object above"),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.top.get("config").and_then(|c| c.get(key))
    }

    /// `Env` as (name, value) pairs, in order.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (e.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value.to_string(),
            None => env.push((name.to_string(), value.to_string())),
        }
        let list: Vec<Value> = env.iter().map(|(k, v)| json!(format!("{k}={v}"))).collect();
        self.config().insert("Env".into(), Value::Array(list));
    }

    pub(crate) fn str_field(&self, key: &str) -> String {
        self.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn set(&mut self, key: &str, v: Value) {
        self.config().insert(key.into(), v);
    }

    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    }

    /// Add to a map field (`Labels`, `ExposedPorts`, `Volumes`).
    pub(crate) fn map_insert(&mut self, key: &str, k: &str, v: Value) {
        let c = self.config();
        if !c.get(key).is_some_and(Value::is_object) {
            c.insert(key.into(), json!({}));
        }
        if let Some(Value::Object(m)) = c.get_mut(key) {
            m.insert(k.to_string(), v);
        }
    }

    pub(crate) fn shell(&self) -> Vec<String> {
        self.list("Shell")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(crate) fn onbuild(&self) -> Vec<String> {
        self.list("OnBuild").unwrap_or_default()
    }

    pub(crate) fn history_count(&self) -> usize {
        self.top
            .get("history")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// Append to a list at the top of the config (made if missing).
    pub(crate) fn push_top_list(&mut self, field: &str, entry: Value) {
        if !self.top.get(field).is_some_and(Value::is_array) {
            self.top.insert(field.into(), json!([]));
        }
        if let Some(Value::Array(h)) = self.top.get_mut(field) {
            h.push(entry);
        }
    }

    pub(crate) fn push_history(&mut self, entry: Value) {
        if !self.top.get("history").is_some_and(Value::is_array) {
            self.top.insert("history".into(), json!([]));
        }
        if let Some(Value::Array(h)) = self.top.get_mut("history") {
            h.push(entry);
        }
    }

    /// The config's bytes with these layers and this creation time.
    pub(crate) fn to_bytes(&self, diff_ids: &[String], created: Option<&str>) -> Vec<u8> {
        let mut top = self.top.clone();
        top.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        if let Some(c) = created {
            top.insert("created".into(), json!(c));
        }
        serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
    }
}
