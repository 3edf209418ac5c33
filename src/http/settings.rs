//! `GET/PUT /api/system/settings`: the node label, segment length and retention limits the
//! admin changes in the web UI. They are kept in the index, win over eyrie.toml, and apply at
//! once: the label in every answer, in pairing requests and on mDNS (a goodbye for the old
//! name, an announcement of the new); segment length from each camera's next cut; retention
//! limits in the next pass, which starts at once; update keys (public keys trusted to sign
//! updates, docs/update.md) from the next update.

use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, State, blocking};
use crate::config::AdminSettings;
use crate::storage::retention::RetentionConfig;
use crate::system::signature::PublicKey;

/// A change: any of the fields; sizes as bytes or as text ("20 GiB"); `budget` null for none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    label: Option<String>,
    segment_seconds: Option<u64>,
    /// Absent: unchanged; null: no budget.
    #[serde(default, deserialize_with = "present")]
    budget: Option<Option<Size>>,
    min_free: Option<Size>,
    /// Replaces the list.
    update_keys: Option<Vec<String>>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from one not given (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self, name: &str) -> ApiResult<u64> {
        match self {
            Size::Bytes(b) => Ok(*b),
            Size::Text(t) => t
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name}: '{t}' is not a size (bytes, or text like \"20 GiB\")"
                    ))
                }),
        }
    }
}

fn current(st: &super::AppState) -> ApiResult<AdminSettings> {
    if let Some(raw) = st.index.setting(AdminSettings::KEY)? {
        if let Ok(s) = serde_json::from_slice::<AdminSettings>(&raw) {
            return Ok(s);
        }
    }
    let r = st.retention.config();
    Ok(AdminSettings {
        label: st.label(),
        segment_seconds: st.recorder.segment_target().get().as_secs(),
        budget_bytes: r.budget,
        min_free_bytes: r.min_free,
        update_keys: Vec::new(),
    })
}

/// The update keys the admin stored.
pub(super) fn update_keys(st: &super::AppState) -> ApiResult<Vec<PublicKey>> {
    current(st)?.update_keys().map_err(ApiError::internal)
}

fn answer(s: &AdminSettings) -> Value {
    json!({
        "label": s.label,
        "segment_seconds": s.segment_seconds,
        "budget_bytes": s.budget_bytes,
        "min_free_bytes": s.min_free_bytes,
        "update_keys": s.update_keys,
    })
}

pub async fn get(st: State) -> ApiResult<Json<Value>> {
    let st = st.0;
    blocking(move || Ok(Json(answer(&current(&st)?)))).await
}

pub async fn put(st: State, body: Json<Change>) -> ApiResult<Json<Value>> {
    let st = st.0;
    let change = body.0;
    let s = {
        let st = st.clone();
        blocking(move || {
            let mut s = current(&st)?;
            if let Some(l) = &change.label {
                s.label = l.trim().to_string();
            }
            if let Some(v) = change.segment_seconds {
                s.segment_seconds = v;
            }
            if let Some(b) = &change.budget {
                s.budget_bytes = b.as_ref().map(|b| b.bytes("budget")).transpose()?;
            }
            if let Some(m) = &change.min_free {
                s.min_free_bytes = m.bytes("min_free")?;
            }
            let keys_before = s.update_keys.clone();
            if let Some(keys) = change.update_keys {
                s.update_keys = keys;
            }
            s.validate()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            // One spelling of each key, once.
            let mut keys: Vec<String> = Vec::new();
            for k in s.update_keys().map_err(ApiError::internal)? {
                let k = k.to_string();
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            s.update_keys = keys;
            let raw = serde_json::to_vec(&s).map_err(ApiError::internal)?;
            st.index.set_setting(AdminSettings::KEY, Some(&raw))?;
            if s.update_keys != keys_before {
                // Who may sign what this appliance runs: a line that stands out.
                tracing::warn!(update_keys = ?s.update_keys, "the update keys in settings changed");
            }
            st.recorder
                .segment_target()
                .set(std::time::Duration::from_secs(s.segment_seconds));
            st.retention.set_config(RetentionConfig {
                budget: s.budget_bytes,
                min_free: s.min_free_bytes,
                ..st.retention.config()
            });
            *st.label.write().unwrap() = s.label.clone();
            st.link.set_label(&s.label);
            tracing::info!(
                label = %s.label,
                segment_seconds = s.segment_seconds,
                budget = ?s.budget_bytes,
                min_free = s.min_free_bytes,
                "settings changed"
            );
            Ok(s)
        })
        .await?
    };
    if let Some(d) = &st.discovery {
        d.relabel(&s.label).await;
    }
    Ok(Json(answer(&s)))
}
