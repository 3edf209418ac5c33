//! SOAP 1.2 over HTTP to a camera: envelopes with an optional WS-Security UsernameToken
//! (PasswordDigest), one bounded POST per call (connect timeout, one deadline, body cap), and
//! faults turned into errors people can act on.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use quick_xml::escape::escape;

use super::xml::{self, Element};
use crate::base::client;

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The camera's clock less this node's: the UsernameToken's `Created` is given in the
    /// camera's time, since cameras refuse tokens created too far from their own clock.
    pub clock_offset: jiff::SignedDuration,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.username)
    }
}

/// Connect timeout, one deadline for the whole exchange, and the answer's size cap.
pub use crate::base::client::Limits;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("{0}")]
    Transport(String),
    #[error("the camera refused the username or password ({0})")]
    NotAuthorized(String),
    #[error("the camera answered with a SOAP fault: {0}")]
    Fault(String),
    #[error("the camera's answer is not valid SOAP: {0}")]
    Malformed(String),
}

/// `Base64(SHA-1(nonce + created + password))`, the WS-Security UsernameToken PasswordDigest.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(nonce);
    ctx.update(created.as_bytes());
    ctx.update(password.as_bytes());
    B64.encode(ctx.finish().as_ref())
}

fn security_header(c: &Credentials, nonce: &[u8], created: &str) -> String {
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" "#,
            r#"xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
            r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>",
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{nonce}</wsse:Nonce>"#,
            "<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        user = escape(c.username.as_str()),
        digest = password_digest(nonce, created, &c.password),
        nonce = B64.encode(nonce),
        created = created,
    )
}

/// A SOAP 1.2 envelope around `body` (which declares its own namespaces), signed with a fresh
/// nonce when there are credentials.
pub fn envelope(body: &str, creds: Option<&Credentials>) -> String {
    envelope_with(body, "", creds)
}

/// [`envelope`] with more header elements (`extra`, which declare their own namespaces).
fn envelope_with(body: &str, extra: &str, creds: Option<&Credentials>) -> String {
    let header = match creds {
        Some(c) => {
            let nonce: [u8; 16] = crate::base::secret::random_bytes();
            let now = jiff::Timestamp::now();
            let created = now
                .checked_add(c.clock_offset)
                .unwrap_or(now)
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string();
            security_header(c, &nonce, &created)
        }
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>{extra}{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

/// What a SOAP fault says: its (sub)code and reason, SOAP 1.2 or 1.1.
fn fault_of(fault: &Element) -> SoapError {
    let mut codes = Vec::new();
    let mut code = fault.child("Code");
    while let Some(c) = code {
        if let Some(v) = c.text_at(&["Value"]) {
            codes.push(v);
        }
        code = c.child("Subcode");
    }
    if let Some(v) = fault.text_at(&["faultcode"]) {
        codes.push(v);
    }
    let reason = fault
        .text_at(&["Reason", "Text"])
        .or_else(|| fault.text_at(&["faultstring"]))
        .unwrap_or_default();
    let code = codes.last().cloned().unwrap_or_default();
    let what: String = format!("{code} {reason}")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if codes
        .iter()
        .any(|c| c.ends_with("NotAuthorized") || c.ends_with("FailedAuthentication"))
    {
        SoapError::NotAuthorized(what)
    } else {
        SoapError::Fault(what)
    }
}

/// Reads an answer: the first element inside the Body, or the fault.
pub fn read_answer(status: u16, body: &[u8]) -> Result<Element, SoapError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        SoapError::Malformed(format!("HTTP {status} with a body that is not UTF-8"))
    })?;
    let doc = match xml::parse(text) {
        Ok(d) => d,
        Err(e) if status == 401 || status == 403 => {
            return Err(SoapError::NotAuthorized(format!("HTTP {status} ({e})")));
        }
        Err(e) => return Err(SoapError::Malformed(format!("HTTP {status}: {e}"))),
    };
    if doc.name != "Envelope" {
        return Err(SoapError::Malformed(format!(
            "HTTP {status}: root element is <{}>, not a SOAP Envelope",
            doc.name
        )));
    }
    let first = doc
        .child("Body")
        .and_then(|b| b.children.first())
        .ok_or_else(|| SoapError::Malformed(format!("HTTP {status}: empty SOAP Body")))?;
    if first.name == "Fault" {
        return Err(fault_of(first));
    }
    if status == 401 || status == 403 {
        return Err(SoapError::NotAuthorized(format!("HTTP {status}")));
    }
    if !(200..300).contains(&status) {
        return Err(SoapError::Malformed(format!(
            "HTTP {status} without a fault"
        )));
    }
    Ok(first.clone())
}

/// POSTs `body` in an envelope to `url` and returns the answer element.
pub async fn call(
    url: &url::Url,
    action: &str,
    body: &str,
    creds: Option<&Credentials>,
    limits: Limits,
) -> Result<Element, SoapError> {
    let request = envelope(body, creds);
    let (status, bytes) = post(url, action, request, limits).await?;
    read_answer(status, &bytes)
}

/// [`call`] with WS-Addressing `Action` and `To` headers, which WS-Notification endpoints
/// (event subscriptions) need to tell calls apart.
pub async fn call_addressed(
    url: &url::Url,
    action: &str,
    body: &str,
    creds: Option<&Credentials>,
    limits: Limits,
) -> Result<Element, SoapError> {
    let extra = format!(
        r#"<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">{}</wsa:Action><wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing">{}</wsa:To>"#,
        escape(action),
        escape(url.as_str())
    );
    let request = envelope_with(body, &extra, creds);
    let (status, bytes) = post(url, action, request, limits).await?;
    read_answer(status, &bytes)
}

async fn post(
    url: &url::Url,
    action: &str,
    request: String,
    limits: Limits,
) -> Result<(u16, bytes::Bytes), SoapError> {
    if url.scheme() != "http" {
        return Err(SoapError::Transport(format!(
            "{}:// device services are not supported (only http://)",
            url.scheme()
        )));
    }
    let content_type = format!(r#"application/soap+xml; charset=utf-8; action="{action}""#);
    let got = client::post(url, &content_type, request.into(), &[], limits, None)
        .await
        .map_err(|e| SoapError::Transport(e.to_string()))?;
    Ok((got.status, got.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_ws_security_example() {
        // The ONVIF Application Programmer's Guide example (section 6.1.1.3).
        let nonce = B64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn envelopes_escape_the_username_and_sign() {
        let c = Credentials {
            username: "a<b&".into(),
            password: "p".into(),
            clock_offset: jiff::SignedDuration::ZERO,
        };
        let e = envelope("<x/>", Some(&c));
        assert!(
            e.contains("<wsse:Username>a&lt;b&amp;</wsse:Username>"),
            "{e}"
        );
        let doc = xml::parse(&e).unwrap();
        assert!(doc.find("Nonce").is_some() && doc.find("Created").is_some());
        assert!(!envelope("<x/>", None).contains("Security"));
    }

    #[test]
    fn answers_and_faults_are_told_apart() {
        let ok = br#"<s:Envelope xmlns:s="x"><s:Body><r:AResponse><r:V>1</r:V></r:AResponse></s:Body></s:Envelope>"#;
        assert_eq!(read_answer(200, ok).unwrap().name, "AResponse");
        let fault = br#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not authorized</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;
        assert!(matches!(
            read_answer(400, fault),
            Err(SoapError::NotAuthorized(m)) if m.contains("Sender not authorized")
        ));
        assert!(matches!(
            read_answer(401, b"Unauthorized"),
            Err(SoapError::NotAuthorized(_))
        ));
        assert!(matches!(
            read_answer(200, b"\x00\xffgarbage"),
            Err(SoapError::Malformed(_))
        ));
        assert!(matches!(
            read_answer(200, b"<html><body>hi</body></html>"),
            Err(SoapError::Malformed(m)) if m.contains("<html>")
        ));
    }
}
