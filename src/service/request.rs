//! The HTTP-agnostic request and response the service speaks.

use serde_json::Value;

use crate::error::{Error, ErrorResponse};

/// The SCIM media type (RFC 7644 §8.1).
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

/// A request, as a host's HTTP stack hands it over: the method, the path relative
/// to the SCIM base (`/Users/2819c223`), the raw query string, the headers and the body.
///
/// ```
/// use scimkit::service::Request;
///
/// let req = Request::new("GET", "/Users?filter=userName%20eq%20%22bjensen%22")
///     .with_header("Accept", "application/scim+json");
/// assert_eq!(req.path, "/Users");
/// assert_eq!(req.query, "filter=userName%20eq%20%22bjensen%22");
/// assert_eq!(req.header("accept"), Some("application/scim+json"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The HTTP method, e.g. `GET` (compared case-insensitively).
    pub method: String,
    /// The path relative to the SCIM base URL, e.g. `/Users/2819c223`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// The headers, names in any case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request for `path_and_query` relative to the base, e.g. `/Users?count=10`.
    pub fn new(method: impl Into<String>, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method: method.into(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body with `Content-Type: application/scim+json`.
    pub fn with_json(mut self, body: &Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.with_header("Content-Type", SCIM_MEDIA_TYPE)
    }

    /// Sets a raw body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first header with this name, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A response: status, headers and body, for the host to write out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for 204 and 304).
    pub body: Vec<u8>,
    /// For a 5xx answer, the chain of causes behind it (a store's backend error,
    /// say); for a success, what failed in work that followed it (a deleted resource
    /// that could not be taken out of every group). For the host's logs; never sent
    /// to the client.
    pub cause: Option<String>,
}

impl Response {
    /// A JSON response with the SCIM media type.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), SCIM_MEDIA_TYPE.to_owned())],
            // Serialising JSON values and the crate's message types cannot fail.
            body: serde_json::to_vec(body).unwrap_or_default(),
            cause: None,
        }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cause: None,
        }
    }

    /// The SCIM error response for `error` (RFC 7644 §3.12). For a 5xx error the
    /// causes go to [`cause`](Response::cause), never into the body.
    ///
    /// ```
    /// use scimkit::{Error, service::Response};
    ///
    /// let io = std::io::Error::other("database is locked");
    /// let resp = Response::error(&Error::internal(io));
    /// assert_eq!(resp.status, 500);
    /// assert_eq!(resp.cause.as_deref(), Some("database is locked"));
    /// assert!(!String::from_utf8_lossy(&resp.body).contains("locked"));
    /// ```
    pub fn error(error: &Error) -> Self {
        let mut resp = Response::json(error.status(), &ErrorResponse::from(error));
        if error.status() >= 500 {
            let mut chain = Vec::new();
            let mut next = std::error::Error::source(error);
            while let Some(e) = next {
                if chain.len() == 16 {
                    break;
                }
                chain.push(e.to_string());
                next = e.source();
            }
            resp.cause = (!chain.is_empty()).then(|| chain.join(": "));
        }
        resp
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header with this name, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON, if it is JSON.
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
