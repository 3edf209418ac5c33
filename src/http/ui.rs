//! The web UI's files, embedded in the binary by build.rs (gzip-compressed). `/` is the page
//! (revalidated with its ETag on every load); `/assets/{build}/...` are its scripts and styles,
//! named by this build's hash and cached for good. Clients that do not take gzip get the
//! files decompressed on the fly.

use std::io::Read;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

pub struct Asset {
    pub path: &'static str,
    pub mime: &'static str,
    pub etag: &'static str,
    pub gz: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The page's Content-Security-Policy: its own scripts and styles only; media, live streams and
/// pictures (event thumbnails, MJPEG live and replay, `frame.jpg`) may come from peers (any
/// http/https origin, opened by media tokens).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; \
     media-src 'self' blob: http: https:; connect-src 'self' http: https:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn takes_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !refused
        })
}

fn serve(a: &Asset, h: &HeaderMap, cache: &'static str) -> Response {
    let mut res = if h
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == a.etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if takes_gzip(h) {
        let mut r = a.gz.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let mut plain = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(a.gz).read_to_end(&mut plain) {
            return ApiError::internal(format!("embedded {}: {e}", a.path)).into_response();
        }
        plain.into_response()
    };
    let hs = res.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    hs.insert(header::ETAG, HeaderValue::from_static(a.etag));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    hs.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    res
}

/// `GET /`: the page.
pub async fn index(h: HeaderMap) -> Response {
    let Some(a) = find("index.html") else {
        return ApiError::internal("the UI is not built in").into_response();
    };
    let mut res = serve(a, &h, "no-cache");
    let hs = res.headers_mut();
    hs.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    hs.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    hs.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// `GET /assets/{build}/{file}`: a script, style or icon of this build.
pub async fn asset(Path((build, file)): Path<(String, String)>, h: HeaderMap) -> Response {
    match find(&file) {
        Some(a) if build == BUILD && file != "index.html" => {
            serve(a, &h, "public, max-age=31536000, immutable")
        }
        _ => ApiError::not_found("no such file in this build of the UI").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_decompresses_and_the_page_names_this_build() {
        for a in ASSETS {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(a.gz)
                .read_to_end(&mut plain)
                .unwrap();
            assert!(!plain.is_empty(), "{}", a.path);
            if a.path == "index.html" {
                let text = String::from_utf8(plain).unwrap();
                assert!(text.contains(&format!("/assets/{BUILD}/")));
                assert!(!text.contains("%ASSETS%"));
            }
        }
        assert!(find("index.html").is_some());
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!takes_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br".parse().unwrap(),
        );
        assert!(takes_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, "br, gzip;q=0".parse().unwrap());
        assert!(!takes_gzip(&h));
    }
}
