//! The routes of a metrics listener (`--listen-metrics-urls`), as etcd's metrics mux has
//! them: `/metrics`, `/health`, `/livez[/<check>]`, `/readyz[/<check>]`. Matching is exact
//! (Go's `ServeMux`): anything else is `404 page not found`, and a path that is not clean
//! (`//health`, `/./health`, `/livez/../health`) is redirected (307) to its clean form.
//! etcd does not serve `/version` here (only on the client port).

use super::checks::{respond_probe, Probe};
use super::connection::Handler;
use super::health::respond_health;
use super::member::MemberView;
use super::metrics::respond_metrics;
use super::request::Request;
use super::response::Response;
use std::rc::Rc;

/// The handler of a metrics listener.
pub struct MetricsRoutes {
    pub member: Rc<MemberView>,
}

impl Handler for MetricsRoutes {
    async fn respond(&self, request: Request) -> Response {
        let clean = clean_path(&request.path);
        if clean != request.path {
            return redirect(&clean, &request);
        }
        let member = self.member.as_ref();
        match request.path.as_str() {
            "/health" => respond_health(&request, member).await,
            "/metrics" => respond_metrics(member),
            path => match Probe::route(path) {
                Some((probe, only)) => respond_probe(&request, member, probe, only).await,
                None => Response::not_found(),
            },
        }
    }
}

/// Go's `http.Redirect` with 307.
pub fn redirect(clean: &str, request: &Request) -> Response {
    let mut location = clean.to_string();
    if !request.raw_query.is_empty() {
        location.push('?');
        location.push_str(&request.raw_query);
    }
    let location = escape_location(&location);
    let mut response = Response::new(307).with_header("Location", location.clone());
    if request.method == "GET" || request.method == "HEAD" {
        response = response
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(format!(
                "<a href=\"{}\">Temporary Redirect</a>.\n\n",
                html_escape(&location)
            ));
    }
    response
}

/// Percent-escapes what may not appear raw in a `Location` header (controls, spaces,
/// non-ASCII: the decoded path may hold them).
fn escape_location(location: &str) -> String {
    let mut out = String::with_capacity(location.len());
    for byte in location.bytes() {
        if byte.is_ascii_graphic() {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Go's `cleanPath`: `path.Clean` of a rooted path, keeping a trailing slash.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut clean = String::with_capacity(path.len() + 1);
    for part in &parts {
        clean.push('/');
        clean.push_str(part);
    }
    if clean.is_empty() || (path.ends_with('/') && !parts.is_empty()) {
        clean.push('/');
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths_like_go() {
        assert_eq!(clean_path("/health"), "/health");
        assert_eq!(clean_path("//health"), "/health");
        assert_eq!(clean_path("/./health"), "/health");
        assert_eq!(clean_path("/livez/../health"), "/health");
        assert_eq!(clean_path("/livez/"), "/livez/");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("/../.."), "/");
        assert_eq!(clean_path("/a//b/./c/.."), "/a/b");
    }

    #[test]
    fn redirects_carry_the_query_and_escape_the_location() {
        let request = Request {
            method: "GET".to_string(),
            path: "//health".to_string(),
            raw_query: "exclude=NOSPACE".to_string(),
            minor_version: 1,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let response = redirect("/health", &request);
        assert_eq!(response.status, 307);
        assert_eq!(
            response.headers[0],
            ("Location", "/health?exclude=NOSPACE".to_string())
        );
        assert_eq!(escape_location("/a b\r\n"), "/a%20b%0D%0A");
    }
}
