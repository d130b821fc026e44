//! Picks a request's route: the most specific host (exact, then `*.` wildcard, then any),
//! and among those the longest path prefix that matches on whole segments.

use crate::spec::RouteSpec;

/// The routes, in the order they are tried.
#[derive(Debug)]
pub(crate) struct Router {
    /// Indexes into the caller's routes, most specific first.
    order: Vec<usize>,
    hosts: Vec<HostMatch>,
    paths: Vec<String>,
}

#[derive(Debug, Clone)]
enum HostMatch {
    Exact(String),
    /// `*.example.org`, kept as `.example.org`.
    Suffix(String),
    Any,
}

impl HostMatch {
    fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 2,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 0,
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            HostMatch::Any => true,
        }
    }
}

impl Router {
    pub(crate) fn new(routes: &[RouteSpec]) -> Self {
        let hosts: Vec<HostMatch> = routes
            .iter()
            .map(|r| match &r.host {
                None => HostMatch::Any,
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => HostMatch::Suffix(suffix.to_owned()),
                    None => HostMatch::Exact(h.clone()),
                },
            })
            .collect();
        let paths: Vec<String> = routes.iter().map(|r| r.path.clone()).collect();
        let mut order: Vec<usize> = (0..routes.len()).collect();
        // Stable: among equals, the first written wins.
        order.sort_by(|&a, &b| {
            hosts[b]
                .rank()
                .cmp(&hosts[a].rank())
                .then(paths[b].len().cmp(&paths[a].len()))
        });
        Self {
            order,
            hosts,
            paths,
        }
    }

    /// The index of the route for `host` (lowercase, no port) and `path`.
    pub(crate) fn find(&self, host: &str, path: &str) -> Option<usize> {
        self.order
            .iter()
            .copied()
            .find(|&i| self.hosts[i].matches(host) && prefix_matches(&self.paths[i], path))
    }
}

/// Whether `prefix` covers `path` on segment boundaries.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `path` without the route's `prefix` (which matched), still starting with `/`.
pub(crate) fn strip<'p>(prefix: &str, path: &'p str) -> &'p str {
    if prefix == "/" {
        return path;
    }
    match path.get(prefix.len()..) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Target, Upstream};

    fn route(host: Option<&str>, path: &str) -> RouteSpec {
        RouteSpec {
            host: host.map(str::to_owned),
            path: path.to_owned(),
            target: Target::Proxy {
                upstream: Upstream::Fixed("127.0.0.1:1".into()),
                strip_prefix: false,
                max_body: 0,
                timeout: std::time::Duration::from_secs(1),
                connect_timeout: std::time::Duration::from_secs(1),
                upgrade_idle: std::time::Duration::from_secs(600),
            },
            auth: None,
            budget: None,
            rate_limit: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn most_specific_host_then_longest_prefix() {
        let routes = [
            route(None, "/"),
            route(None, "/api"),
            route(Some("*.example.org"), "/"),
            route(Some("app.example.org"), "/"),
            route(None, "/api/v2"),
        ];
        let r = Router::new(&routes);
        assert_eq!(r.find("other.net", "/x"), Some(0));
        assert_eq!(r.find("other.net", "/api"), Some(1));
        assert_eq!(r.find("other.net", "/api/"), Some(1));
        assert_eq!(r.find("other.net", "/apix"), Some(0));
        assert_eq!(r.find("other.net", "/api/v2/jobs"), Some(4));
        assert_eq!(r.find("www.example.org", "/api"), Some(2));
        assert_eq!(r.find("example.org", "/api"), Some(1));
        assert_eq!(r.find("app.example.org", "/api"), Some(3));
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let r = Router::new(&[route(None, "/api")]);
        assert_eq!(r.find("h", "/"), None);
        assert_eq!(r.find("h", "/ap"), None);
    }

    #[test]
    fn stripping_keeps_a_leading_slash() {
        assert_eq!(strip("/api", "/api"), "/");
        assert_eq!(strip("/api", "/api/x?y"), "/x?y");
        assert_eq!(strip("/", "/x"), "/x");
    }
}
