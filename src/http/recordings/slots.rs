//! Places for the recordings answers that hold a connection, a file and memory for as long as
//! they stream (`view.mp4`, `replay.mjpeg`): a [`Slots`] admits at most `most` at once on the
//! node and at most `per_caller` for one caller (one user, one peer key, one media token). A
//! [`Slot`] is taken before any work is done for the request and given back when it drops,
//! which is when the answer's body is dropped: sent in full, or the client gone. A request
//! beyond either bound is answered 503 with `Retry-After`.
//!
//! Invariant: the map holds only callers with at least one slot, so it never has more than
//! `most` entries.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::auth::Caller;

/// Seconds a refused client is asked to wait before trying again.
const RETRY_AFTER_S: &str = "5";

#[derive(Debug)]
pub(super) struct Slots {
    /// What is bounded, for the refusal ("views", "replays").
    what: &'static str,
    most: usize,
    per_caller: usize,
    /// Slots in use in all, and per caller.
    held: Mutex<(usize, BTreeMap<String, usize>)>,
}

/// One place, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: &'static Slots,
    caller: String,
}

impl Slots {
    pub(super) const fn new(what: &'static str, most: usize, per_caller: usize) -> Slots {
        Slots {
            what,
            most,
            per_caller,
            held: Mutex::new((0, BTreeMap::new())),
        }
    }

    /// A place for `caller`, or the refusal saying which bound it met.
    pub(super) fn take(&'static self, caller: &Caller) -> Result<Slot, Refused> {
        let key = match caller {
            Caller::User { name } => format!("user {name}"),
            Caller::Peer { key_id } => format!("key {key_id}"),
            Caller::Token(t) => format!("token {t}"),
            Caller::Anonymous => "anonymous".to_string(),
        };
        // Lock poisoning cannot happen: the build aborts on panic.
        let mut held = self.held.lock().unwrap();
        let mine = held.1.get(&key).copied().unwrap_or(0);
        let refusal = if held.0 >= self.most {
            format!(
                "{} {} are being sent already; try again when one ends",
                self.most, self.what
            )
        } else if mine >= self.per_caller {
            format!(
                "at most {} {} at once for one caller; try again when one ends",
                self.per_caller, self.what
            )
        } else {
            held.0 += 1;
            held.1.insert(key.clone(), mine + 1);
            return Ok(Slot {
                slots: self,
                caller: key,
            });
        };
        Err(Refused(refusal))
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.held.lock().unwrap().0
    }
}

/// No place free: answered 503 with `Retry-After`.
#[derive(Debug)]
pub(super) struct Refused(String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_S)],
            Json(serde_json::json!({ "error": self.0 })),
        )
            .into_response()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap();
        held.0 -= 1;
        match held.1.get_mut(&self.caller) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                held.1.remove(&self.caller);
            }
        }
    }
}

/// `res` with its body holding `slot` until the body is dropped.
pub(super) fn hold(res: Response, slot: Slot) -> Response {
    use futures::StreamExt;
    res.map(|body| {
        axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &slot;
            chunk
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST: Slots = Slots::new("tests", 3, 2);

    #[test]
    fn bounds_per_node_and_per_caller_and_gives_back() {
        let a = Caller::Token("a".into());
        let b = Caller::Token("b".into());
        let a1 = TEST.take(&a).unwrap();
        let a2 = TEST.take(&a).unwrap();
        let refused = TEST
            .take(&a)
            .expect_err("a third for one caller is refused")
            .into_response();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], RETRY_AFTER_S);
        let b1 = TEST.take(&b).unwrap();
        assert!(TEST.take(&b).is_err(), "the node's 3 are taken");
        assert_eq!(TEST.in_use(), 3);
        drop(a1);
        let a3 = TEST.take(&a).expect("a place given back is free again");
        drop((a2, a3, b1));
        assert_eq!(TEST.in_use(), 0);
        assert!(TEST.held.lock().unwrap().1.is_empty());
    }
}
