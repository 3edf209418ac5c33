//! `/api/federation/keys`: the keys this node issues to peers that may read it.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, State, blocking, rfc3339};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyInput {
    name: String,
}

#[derive(Debug, Serialize)]
pub struct KeyView {
    id: String,
    name: String,
    created: String,
    last_used: Option<String>,
}

pub async fn list(st: State) -> Json<Vec<KeyView>> {
    Json(
        st.keys
            .list()
            .into_iter()
            .map(|k| KeyView {
                id: k.id,
                name: k.name,
                created: rfc3339(k.created_ms),
                last_used: k.last_used_ms.map(rfc3339),
            })
            .collect(),
    )
}

pub async fn create(st: State, Json(input): Json<NewKeyInput>) -> ApiResult<impl IntoResponse> {
    let name = crate::base::names::label(&input.name)
        .map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let keys = st.keys.clone();
    let k = blocking(move || Ok(keys.create(&name)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": k.id,
            "name": k.name,
            "key": k.key,
            "created": rfc3339(k.created_ms),
            "note": "copy the key now: it is stored only as a hash and never shown again",
        })),
    ))
}

pub async fn revoke(st: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("no such key"));
    }
    let keys = st.keys.clone();
    if blocking(move || Ok(keys.revoke(&id)?)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such key"))
    }
}
