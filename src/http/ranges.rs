//! Byte-range file serving (RFC 9110) for every recorded file this node hands out: views,
//! segments and CartaNVR's segment files go through this one code path. A file is a
//! [`VirtualFile`] with a size and an ETag; the answer is 304 for a matching `If-None-Match`,
//! 206 for one satisfiable range (unless `If-Range` names another version), 416 for an
//! unsatisfiable one, else 200 with the whole file. Several ranges in one request, or a malformed
//! `Range`, get the whole file (RFC 9110 lets a server ignore `Range`). Ranges are checked
//! against the file's size before any byte is read.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::media::view::VirtualFile;

/// Serves a virtual file: 304 for a matching `If-None-Match`, 206 for one satisfiable range
/// (unless `If-Range` names another version), 416 for an unsatisfiable one, else 200.
pub fn serve(headers: &HeaderMap, file: &VirtualFile, download: Option<&str>) -> Response {
    let len = file.size();
    let etag = file.etag();
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Some(name) = download {
        builder = builder.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        );
    }
    let matches = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(matches) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap();
    }
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = headers
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok());
    if let Some(r) = range {
        match http_range_header::parse_range_header(r).map(|p| p.validate(len)) {
            Ok(Ok(ranges)) if ranges.len() == 1 && *ranges[0].start() < len => {
                let (a, b) = (*ranges[0].start(), *ranges[0].end());
                return builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"))
                    .header(header::CONTENT_LENGTH, b + 1 - a)
                    .body(Body::from_stream(file.body(a, b + 1)))
                    .unwrap();
            }
            // Past the end: the crate clamps a range of an empty file to its byte 0, which it
            // does not have (found by fuzzing: a 206 promising a byte that never came).
            Ok(Ok(ranges)) if ranges.len() == 1 => return unsatisfiable(len),
            Ok(Err(_)) => return unsatisfiable(len),
            // Malformed, or several ranges: RFC 9110 lets a server ignore Range; send it all.
            _ => {}
        }
    }
    builder
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(file.body(0, len)))
        .unwrap()
}

fn unsatisfiable(len: u64) -> Response {
    let error = format!("range not satisfiable; the file has {len} bytes");
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        Json(serde_json::json!({ "error": error })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(size: usize, range: &str) -> (StatusCode, Option<String>) {
        let file = VirtualFile::in_memory(vec![7; size].into(), "\"e\"".into());
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        let r = serve(&headers, &file, None);
        let cr = r.headers().get(header::CONTENT_RANGE);
        (r.status(), cr.map(|v| v.to_str().unwrap().to_string()))
    }

    #[test]
    fn ranges_are_served_or_refused_against_the_size() {
        assert_eq!(
            answer(100, "bytes=10-19"),
            (StatusCode::PARTIAL_CONTENT, Some("bytes 10-19/100".into()))
        );
        assert_eq!(
            answer(100, "bytes=100-"),
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                Some("bytes */100".into())
            )
        );
        assert_eq!(answer(100, "bytes=0-1,5-6").0, StatusCode::OK);
        // Found by fuzzing (`range`): an empty file answered 206 for byte 0.
        assert_eq!(
            answer(0, "bytes=0-90109"),
            (StatusCode::RANGE_NOT_SATISFIABLE, Some("bytes */0".into()))
        );
    }
}
