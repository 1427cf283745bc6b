//! One HTTP endpoint (the source or the destination): URL, credentials, extra headers, TLS.
//! Credentials come from files and are marked sensitive, so they never reach logs or errors;
//! a URL's `user:password@` part is moved into a basic-auth header and removed from the URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::name_value::NameValue;

/// A credential held in memory (from a Secret, through the environment): never printed.
#[derive(Clone, Default, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    /// `--source` or `--dest`, for messages.
    pub role: &'static str,
    pub url: String,
    pub basic_user: Option<String>,
    pub basic_password_file: Option<PathBuf>,
    /// The password itself, when a Job passes it from a Secret.
    pub basic_password: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    /// The token itself, when a Job passes it from a Secret.
    pub bearer_token: Option<Secret>,
    /// Extra headers, e.g. `X-Scope-OrgID=tenant`.
    pub headers: Vec<NameValue>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    /// The name to verify the server's certificate for, when the URL's host is not in it.
    pub tls_server_name: Option<String>,
    pub connect_timeout: Duration,
    /// For the source: the longest silence inside a streamed answer. For the destination: the
    /// whole request.
    pub timeout: Duration,
}

/// A ready client and the URL it talks to, with credentials removed from the URL.
#[derive(Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    pub client: reqwest::Client,
}

impl Endpoint {
    /// The URL as it may be shown to a person.
    pub fn display_url(&self) -> String {
        self.url.to_string()
    }
}

pub fn parse_url(role: &'static str, input: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(input.trim()).map_err(|e| {
        Error::invalid(
            role,
            redact_url(input),
            format!("{e}; expected a URL such as http://prometheus:9090/api/v1/read"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            role,
            redact_url(input),
            "expected an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

/// Tries before an endpoint is called unreachable, a second apart: enough for a restart's
/// blink, short enough that a wrong URL ends an import in seconds.
const PROBE_TRIES: usize = 3;
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a connection can be made to the URL's host and port. Only a TCP connection is
/// made: no request is sent, so no credential leaves, no certificate is judged (the first
/// request does that, with the CA it is given) and a server counts no extra request. Skipped
/// when a proxy is configured, since the connection then goes through it.
pub async fn probe(role: &'static str, url: &reqwest::Url) -> Result<()> {
    let proxied = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let (Some(host), Some(port), false) = (url.host_str(), url.port_or_known_default(), proxied)
    else {
        return Ok(());
    };
    // An IPv6 host comes bracketed from the URL; the resolver takes it bare.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut attempt = 1;
    loop {
        let tried =
            tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await;
        let cause = match tried {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {}s", PROBE_TIMEOUT.as_secs()),
        };
        if attempt == PROBE_TRIES {
            let mut shown = url.clone();
            // Cannot fail for http(s) URLs, which parse_url guarantees.
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            return Err(Error::EndpointUnreachable {
                role,
                url: shown.to_string(),
                attempts: PROBE_TRIES,
                cause,
                check: "check the host and port in the URL, that the server runs, and the network \
                        path (in a cluster: the Service's name and namespace; from a laptop: a port-forward)",
            });
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Endpoint {
    /// `probe` of this endpoint's URL.
    pub async fn probe(&self, role: &'static str) -> Result<()> {
        probe(role, &self.url).await
    }
}

/// Reads at most `limit` bytes of an error body: enough for a message, never a whole page. A
/// body cut short by the connection is shown as far as it came.
pub async fn read_bounded(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(piece)) => bytes.extend_from_slice(&piece),
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Removes `user:password@` from a URL-ish string so it can appear in an error.
pub fn redact_url(input: &str) -> String {
    match (input.find("://"), input.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &input[..scheme_end], &input[at + 1..])
        }
        _ => input.to_string(),
    }
}

impl EndpointConfig {
    /// The URL as it may be shown to a person, without building a client (which reads
    /// credential files and loads the system's root certificates).
    pub fn display_url(&self) -> Result<String> {
        let mut url = parse_url(self.role, &self.url)?;
        // Cannot fail for http(s) URLs, which parse_url guarantees.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(url.to_string())
    }

    pub fn build(&self) -> Result<Endpoint> {
        let mut url = parse_url(self.role, &self.url)?;
        let headers = self.headers(&mut url)?;
        let builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(crate::protocol::USER_AGENT)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout);
        let builder = self.tls(builder, &url)?;
        let client = builder.build().map_err(|source| Error::HttpClient {
            url: url.to_string(),
            cause: source.without_url(),
        })?;
        Ok(Endpoint { url, client })
    }

    /// The headers every request carries: the credentials (from files, a Job's Secrets, or the
    /// URL's `user:password@`, which is taken out of `url`) and the extra headers, all marked
    /// sensitive.
    fn headers(&self, url: &mut reqwest::Url) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        let mut basic = match &self.basic_user {
            Some(user) => {
                let password = match (&self.basic_password, &self.basic_password_file) {
                    (Some(secret), _) => Some(secret.0.clone()),
                    (None, Some(path)) => Some(read_secret("basic auth password file", path)?),
                    (None, None) => None,
                };
                Some((user.clone(), password))
            }
            None => None,
        };
        if !url.username().is_empty() {
            basic = Some((
                percent_decode(url.username()),
                url.password().map(percent_decode),
            ));
            // Cannot fail for http(s) URLs, which parse_url guarantees.
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let bearer = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(secret), _) => Some(secret.0.clone()),
            (None, Some(path)) => Some(read_secret("bearer token file", path)?),
            (None, None) => None,
        };
        let authorization = match (basic, bearer) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    self.role,
                    url.as_str(),
                    "give basic auth or a bearer token, not both",
                ));
            }
            (Some((user, password)), None) => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{}", password.unwrap_or_default()))
            )),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        if let Some(value) = authorization {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&value, self.role)?,
            );
        }
        for header in &self.headers {
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|e| Error::invalid("header name", &header.name, e.to_string()))?;
            // Extra headers may carry API keys: treat every value as a secret.
            headers.insert(name, sensitive(header.value.trim(), self.role)?);
        }

        Ok(headers)
    }

    /// A CA bundle, a client certificate, or (warned about) no verification at all.
    fn tls(
        &self,
        mut builder: reqwest::ClientBuilder,
        url: &reqwest::Url,
    ) -> Result<reqwest::ClientBuilder> {
        if let Some(name) = &self.tls_server_name {
            return self.tls_for_name(builder, url, name);
        }
        if let Some(pem) = self.ca()? {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::invalid("CA", Self::shown(&self.ca_file), e.to_string()))?;
            builder = builder.tls_certs_merge(certs);
        }
        if let Some((mut pem, key)) = self.identity(url)? {
            pem.extend_from_slice(b"\n");
            pem.extend(key);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::invalid(
                    "client certificate",
                    Self::shown(&self.cert_file),
                    format!("{e}; expected PEM certificate and PEM private key"),
                )
            })?;
            builder = builder.identity(identity);
        }
        if self.insecure_skip_verify {
            tracing::warn!(endpoint = %url, "TLS certificate verification is OFF for this endpoint; anyone on the path can read and change the data");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }

    /// TLS that verifies the server's certificate for `name` instead of the URL's host, against
    /// the CA given (required: a name to verify means a private CA, as Opni's Cortex has).
    fn tls_for_name(
        &self,
        builder: reqwest::ClientBuilder,
        url: &reqwest::Url,
        name: &str,
    ) -> Result<reqwest::ClientBuilder> {
        let flag = if self.role == "--source" {
            "--source-tls-server-name"
        } else {
            "--dest-tls-server-name"
        };
        if self.insecure_skip_verify {
            return Err(Error::invalid(
                flag,
                name,
                "a name to verify and skipping verification contradict each other: give one",
            ));
        }
        let Some(ca) = self.ca()? else {
            return Err(Error::invalid(
                flag,
                name,
                format!(
                    "needs the CA that signed the server's certificate ({}-ca-file)",
                    self.role
                ),
            ));
        };
        let identity = self.identity(url)?;
        let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        let config = crate::tls::client_config(&ca, name, identity)
            .map_err(|reason| Error::invalid(flag, name, reason))?;
        Ok(builder.tls_backend_preconfigured(config))
    }

    /// The CA bundle (PEM), from its file (in a Job, a Secret's volume).
    pub(crate) fn ca(&self) -> Result<Option<Vec<u8>>> {
        self.ca_file
            .as_ref()
            .map(|path| read_file("CA file", path))
            .transpose()
    }

    /// The client certificate chain and key (PEM), from their files.
    fn identity(&self, url: &reqwest::Url) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let cert = self.cert_file.as_ref();
        let cert = cert
            .map(|path| read_file("client certificate", path))
            .transpose()?;
        let key = self.key_file.as_ref();
        let key = key.map(|path| read_file("client key", path)).transpose()?;
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err(Error::invalid(
                self.role,
                url.as_str(),
                "a client certificate needs both the certificate and the key",
            )),
        }
    }

    /// A file's path for a message (the CA or the certificate is read only from a file).
    fn shown(path: &Option<PathBuf>) -> String {
        path.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

fn sensitive(value: &str, role: &'static str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::invalid(
            role,
            "(a header value, not shown)",
            "contains characters not allowed in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a credential file; the trailing newline an editor or `kubectl create secret` leaves is
/// not part of the secret.
fn read_secret(what: &'static str, path: &Path) -> Result<String> {
    let bytes = read_file(what, path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid(what, path.display().to_string(), "is not UTF-8 text"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Decodes a URL's user or password as RFC 3986 says: `%XX` only. Form decoding would turn
/// a `+` in a password into a space.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_named_without_their_password() {
        for bad in ["not a url", "ftp://host/x", "http://user:hunter2@/x"] {
            let err = parse_url("--source", bad).unwrap_err().to_string();
            assert!(err.contains("--source"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn userinfo_moves_from_the_url_into_a_header() {
        let config = EndpointConfig {
            role: "--dest",
            url: "http://alice:s%40cret@127.0.0.1:1/api/v1/write".into(),
            ..Default::default()
        };
        let endpoint = config.build().unwrap();
        assert_eq!(endpoint.display_url(), "http://127.0.0.1:1/api/v1/write");
        assert_eq!(
            config.display_url().unwrap(),
            "http://127.0.0.1:1/api/v1/write"
        );
        assert_eq!(percent_decode("s%40cret"), "s@cret");
        for (encoded, password) in [
            ("pa+ss%2Bw", "pa+ss+w"),
            ("a%3Ab%40c", "a:b@c"),
            ("100%25+", "100%+"),
            ("sp%20ace", "sp ace"),
        ] {
            assert_eq!(percent_decode(encoded), password, "{encoded}");
        }
    }

    #[test]
    fn a_missing_token_file_is_named() {
        let config = EndpointConfig {
            role: "--source",
            url: "http://127.0.0.1:1/api/v1/read".into(),
            bearer_token_file: Some("/nonexistent/token".into()),
            ..Default::default()
        };
        let err = config.build().err().unwrap().to_string();
        assert!(
            err.contains("bearer token file /nonexistent/token"),
            "{err}"
        );
    }
}
