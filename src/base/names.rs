//! Checks for the names and addresses people and peers give: labels (of nodes, cameras and
//! keys), web origins, and the base URLs of nodes.
//!
//! Invariants: each check either returns the value in its one stored form (trimmed,
//! normalised) or says, in a sentence for people, what the value must be; none panics on any
//! input, and none keeps text longer than its bound.

/// Why a name or address was refused: a sentence for people (without the field's name, which
/// the caller adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// Longest label, in characters.
pub const LABEL_CHARS: usize = 64;
/// Longest node URL, in bytes.
pub const URL_BYTES: usize = 512;

/// A label for people (a node's, a camera's, a key's): trimmed, 1 to 64 characters, no control
/// characters.
pub fn label(text: &str) -> Result<String, Invalid> {
    let label = text.trim();
    if label.is_empty()
        || label.chars().count() > LABEL_CHARS
        || label.chars().any(char::is_control)
    {
        return Err(Invalid("1 to 64 characters, no control characters"));
    }
    Ok(label.to_string())
}

/// `scheme://host[:port]` of `url`, normalised (default ports dropped, host lower-cased), or
/// `None` when it has no tuple origin (`null`, `file:`, garbage).
pub fn origin_of_url(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// An origin as written in the config (`http://host:port`, nothing after it), normalised.
pub fn origin_setting(text: &str) -> Option<String> {
    let u = url::Url::parse(text).ok()?;
    let bare = u.username().is_empty()
        && u.password().is_none()
        && u.path() == "/"
        && u.query().is_none()
        && u.fragment().is_none();
    bare.then(|| origin_of_url(text)).flatten()
}

/// What is wrong with an address that does not parse, in words for the person who typed it
/// (the parser's own texts, such as "relative URL without a base", are for developers).
pub fn url_problem(e: &url::ParseError) -> &'static str {
    use url::ParseError as P;
    match *e {
        P::RelativeUrlWithoutBase | P::RelativeUrlWithCannotBeABaseBase => {
            "it must start with its scheme, such as http:// or rtsp://"
        }
        P::EmptyHost => "the host name or IP address is missing",
        P::InvalidPort => "the port must be a number from 1 to 65535",
        P::InvalidIpv4Address | P::InvalidIpv6Address => "the IP address is not valid",
        P::IdnaError | P::InvalidDomainCharacter => {
            "the host name has characters a name cannot have"
        }
        _ => "it is not a valid address",
    }
}

/// A node's base URL: `http(s)://host[:port][/path]`, no credentials, query or fragment, at
/// most [`URL_BYTES`]; returned without a trailing slash.
pub fn node_url(raw: &str) -> Result<String, NodeUrlError> {
    if raw.len() > URL_BYTES {
        return Err(NodeUrlError::TooLong);
    }
    let u = url::Url::parse(raw.trim()).map_err(NodeUrlError::Parse)?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(NodeUrlError::Scheme);
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(NodeUrlError::Credentials);
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(NodeUrlError::QueryOrFragment);
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(NodeUrlError::NoHost);
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeUrlError {
    #[error("at most 512 characters")]
    TooLong,
    #[error("not a web address: {}", url_problem(.0))]
    Parse(url::ParseError),
    #[error("only http:// and https:// peers")]
    Scheme,
    #[error("no credentials in the URL: give the key in \"key\"")]
    Credentials,
    #[error("no query or fragment")]
    QueryOrFragment,
    #[error("a host is needed")]
    NoHost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_whole() {
        assert_eq!(
            origin_of_url("http://NVR.local:80/x").as_deref(),
            Some("http://nvr.local")
        );
        assert_eq!(
            origin_of_url("https://10.0.0.2:8443").as_deref(),
            Some("https://10.0.0.2:8443")
        );
        assert_eq!(origin_of_url("null"), None);
        assert_eq!(
            origin_setting("http://ui.example:9000").as_deref(),
            Some("http://ui.example:9000")
        );
        assert_eq!(origin_setting("http://ui.example/app"), None);
        assert_eq!(origin_setting("*"), None);
        assert_eq!(origin_of_url("file:///etc/passwd"), None);
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(label("  Garage ").as_deref(), Ok("Garage"));
        assert!(label("   ").is_err());
        assert!(label(&"é".repeat(64)).is_ok());
        assert!(label(&"é".repeat(65)).is_err());
        assert!(label("a\u{7}b").is_err());
    }

    #[test]
    fn a_bad_address_is_said_in_plain_words() {
        let e = node_url("10.0.0.2:8080").unwrap_err().to_string();
        assert!(!e.contains("relative URL"), "{e}");
        assert_eq!(
            e,
            "not a web address: it must start with its scheme, such as http:// or rtsp://"
        );
        let e = node_url("http://shop:99999").unwrap_err().to_string();
        assert!(e.contains("port must be a number"), "{e}");
    }

    #[test]
    fn node_urls_have_one_form() {
        assert_eq!(
            node_url(" http://10.0.0.2:8080/ ").as_deref(),
            Ok("http://10.0.0.2:8080")
        );
        assert_eq!(node_url("ftp://x"), Err(NodeUrlError::Scheme));
        assert_eq!(node_url("http://u:p@x"), Err(NodeUrlError::Credentials));
        assert_eq!(node_url("http://x/?q"), Err(NodeUrlError::QueryOrFragment));
        assert_eq!(
            node_url(&format!("http://x/{}", "a".repeat(600))),
            Err(NodeUrlError::TooLong)
        );
    }
}
