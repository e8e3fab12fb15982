//! The synchronous invoke endpoint the binary delivers to (`cargo lambda
//! watch`, `sam local start-lambda`): one HTTP/1.1 request per invocation, and
//! its answer read as Lambda reports it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::async_invoke::{Answer, BoxFuture, Invocation, Target};

/// An `http://host:port` endpoint (the targets are local: no TLS).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// Reads `http://host:port` (the port defaults to 80).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("the target must be an http:// URL, not {url:?}"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!(
                "the target is a bare http://host:port, not {url:?}"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| format!("bad port in the target {url:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("no host in the target {url:?}"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// One HTTP/1.1 POST on a fresh connection.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}:{}\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.host,
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut chunk).await?;
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(parsed) = parse_response(&buffer, read == 0) {
                return parsed.map_err(std::io::Error::other);
            }
        }
    }
}

/// An HTTP response, read whole.
#[derive(Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The response in `buffer` once it is complete: `None` while more is needed.
/// `eof` says the peer closed the connection, which ends a body of no stated
/// length.
pub fn parse_response(buffer: &[u8], eof: bool) -> Option<Result<HttpResponse, String>> {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return eof.then(|| Err("the connection closed before a whole response".to_owned()));
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let Some(status) = status else {
        return Some(Err("not an HTTP response".to_owned()));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &buffer[head_end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        match dechunk(rest) {
            Some(body) => body,
            None if eof => return Some(Err("the chunked body was cut short".to_owned())),
            None => return None,
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < length {
            return eof.then(|| Err("the body was cut short".to_owned()));
        }
        rest[..length].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Ok(HttpResponse {
        status,
        headers,
        body,
    }))
}

/// A chunked body, once its last chunk has arrived.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if data.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The path of Lambda's `Invoke` for `function_name`.
pub fn invoke_path(function_name: &str) -> String {
    format!("/2015-03-31/functions/{function_name}/invocations")
}

/// Whether a body is Lambda's `{"errorType": …, "errorMessage": …}`.
pub fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v["errorType"].is_string() || v["errorMessage"].is_string())
}

/// How Lambda would report what the target answered.
pub fn answer_of(response: &HttpResponse) -> Answer {
    if response.status == 200 {
        return match response.header("x-amz-function-error") {
            Some(function_error) => Answer::Error {
                function_error: function_error.to_owned(),
                payload: response.body.clone(),
            },
            None => Answer::Response(response.body.clone()),
        };
    }
    // cargo lambda watch answers a function error with a 500 and the error body.
    if response.status >= 500 && is_error_body(&response.body) {
        return Answer::Error {
            function_error: "Unhandled".to_owned(),
            payload: response.body.clone(),
        };
    }
    let text = String::from_utf8_lossy(&response.body);
    let excerpt: String = text.chars().take(300).collect();
    Answer::unhandled(
        "LocalLambda.TargetError",
        &format!("the target answered {}: {excerpt}", response.status),
    )
}

/// Runs each delivery as a synchronous `Invoke` of the target.
pub struct HttpTarget {
    pub endpoint: Endpoint,
    /// The name invoked at the target, whatever name the caller used.
    pub target_function: Option<String>,
    /// On top of the function timeout, before a delivery counts as timed out.
    pub grace: Duration,
}

impl Target for HttpTarget {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let name = self
                .target_function
                .as_deref()
                .unwrap_or(invocation.function_name);
            let path = invoke_path(name);
            let headers = [
                ("x-amz-invocation-type", "RequestResponse"),
                ("content-type", "application/json"),
                ("lambda-runtime-aws-request-id", invocation.request_id),
            ];
            let request = self.endpoint.post(&path, &headers, invocation.payload);
            match tokio::time::timeout(invocation.timeout + self.grace, request).await {
                Err(_) => Answer::timed_out(invocation.request_id, invocation.timeout),
                Ok(Err(err)) => Answer::unhandled(
                    "LocalLambda.TargetUnreachable",
                    &format!("{}: {err}", self.endpoint),
                ),
                Ok(Ok(response)) => answer_of(&response),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_by_length_chunks_or_close() {
        let sized =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Amz-Function-Error: Unhandled\r\n\r\n{}";
        let response = parse_response(sized, false)
            .expect("complete")
            .expect("valid");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(response.body, b"{}");
        assert!(parse_response(&sized[..sized.len() - 1], false).is_none());
        let chunked = b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false)
                .expect("complete")
                .expect("valid")
                .body,
            b"abcde"
        );
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(parse_response(until_close, false).is_none());
        assert_eq!(
            parse_response(until_close, true)
                .expect("complete")
                .expect("valid")
                .body,
            b"all of it"
        );
    }

    #[test]
    fn a_function_error_from_watch_or_sam_is_a_failed_delivery() {
        let response = |status, headers: &[(&str, &str)], body: &str| HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        };
        let error = r#"{"errorType":"TaskFailed","errorMessage":"no"}"#;
        // sam local start-lambda, as Lambda.
        assert_eq!(
            answer_of(&response(
                200,
                &[("x-amz-function-error", "Unhandled")],
                error
            )),
            Answer::Error {
                function_error: "Unhandled".to_owned(),
                payload: error.as_bytes().to_vec()
            }
        );
        // cargo lambda watch.
        assert_eq!(
            answer_of(&response(500, &[], error)),
            Answer::Error {
                function_error: "Unhandled".to_owned(),
                payload: error.as_bytes().to_vec()
            }
        );
        assert!(answer_of(&response(404, &[], "missing")).is_error());
        assert_eq!(
            answer_of(&response(200, &[], "null")),
            Answer::Response(b"null".to_vec())
        );
    }
}
