//! The rules for a client's request headers on their way to an upstream: security rules,
//! so written once and used by both paths that proxy, the general one ([`crate::proxy`],
//! on hyper's header maps) and the fast path for plain HTTP/1.1 ([`crate::fast_path`], on
//! the bytes of the head). `tests/it/proxy.rs` runs one table of every rule against both.
//!
//! - `X-Berth-*` (and `X_Berth_*`, which CGI-style servers read alike) carry the identity
//!   berth checked: a client's are forgeries, dropped.
//! - Hop-by-hop headers, and those a `Connection` header names, describe one
//!   connection: dropped.
//! - What a client claims about addresses, ports and prefixes (`Forwarded`, `X-Real-IP`,
//!   `X-Forwarded-Port`, `X-Forwarded-Prefix`) is not passed on as fact, and what berth
//!   sets itself (`Host`, `X-Forwarded-Host`, `X-Forwarded-Proto`, `Upgrade`) replaces
//!   the client's.
//! - `X-Forwarded-For`: the client's list, with the client's address appended.
//! - `Cookie`: berth's session cookie is berth's credential, taken out; the app's own
//!   cookies pass.

/// Sets a route's own response headers on `headers`, each replacing any of its name:
/// on the general path's responses here, on the fast path's written heads by
/// [`is_route_header`] and the same list.
pub(crate) fn set_route_headers(
    route: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
    headers: &mut hyper::HeaderMap,
) {
    for (name, value) in route {
        headers.insert(name.clone(), value.clone());
    }
}

/// Whether `name` (any case) is one of a route's own response headers, which replace
/// the upstream's.
pub(crate) fn is_route_header(
    route: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
    name: &[u8],
) -> bool {
    route
        .iter()
        .any(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Set by berth in the upstream request, or claims about addresses not passed on.
const SET_BY_BERTH: [&str; 8] = [
    "upgrade",
    "host",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
];

/// What becomes of a client's request header on its way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Passed on as it is.
    Keep,
    /// Not passed on.
    Drop,
    /// The client's `X-Forwarded-For`: berth appends the client's address.
    ForwardedFor,
    /// A `Cookie` header: passed on without berth's session cookie
    /// ([`cookie_without_session`]).
    Cookie,
}

/// The rule for a header named `name` (any case). Headers a `Connection` header names
/// are dropped too; [`ConnectionNames`] tells those.
pub(crate) fn rule(name: &[u8]) -> Rule {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    if is_identity(name) {
        return Rule::Drop;
    }
    if is("x-forwarded-for") {
        return Rule::ForwardedFor;
    }
    if is("cookie") {
        return Rule::Cookie;
    }
    if HOP_BY_HOP.iter().chain(&SET_BY_BERTH).any(|d| is(d)) {
        Rule::Drop
    } else {
        Rule::Keep
    }
}

/// Whether `name` is one of berth's identity headers (`x-berth-*`, `x_berth_*`).
fn is_identity(name: &[u8]) -> bool {
    name.len() >= 8
        && name[..8]
            .iter()
            .zip(b"x-berth-")
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

/// The header names a message's `Connection` headers list (which makes them hop-by-hop),
/// read once per message: each header is then checked against them, not against the
/// `Connection` values again.
pub(crate) struct ConnectionNames<'a> {
    /// The first few tokens (almost always all of them: `keep-alive`, `close`).
    few: [&'a [u8]; 4],
    len: usize,
    more: Vec<&'a [u8]>,
}

impl<'a> ConnectionNames<'a> {
    /// The tokens of `values`, the `Connection` headers' values.
    pub(crate) fn read(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut names = Self {
            few: [&[]; 4],
            len: 0,
            more: Vec::new(),
        };
        for value in values {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.is_empty() {
                    continue;
                }
                if names.len < names.few.len() {
                    names.few[names.len] = token;
                    names.len += 1;
                } else {
                    names.more.push(token);
                }
            }
        }
        names
    }

    /// Whether `name` (any case) is among them.
    pub(crate) fn name(&self, name: &[u8]) -> bool {
        self.few[..self.len]
            .iter()
            .chain(&self.more)
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// A `Cookie` header's value without berth's session cookie: the same bytes if it has
/// none, the other pairs joined with `; ` if it has, and None if nothing is left.
pub(crate) fn cookie_without_session(value: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let prefix = crate::auth::COOKIE_NAME.as_bytes();
    let is_session = |pair: &[u8]| {
        pair.len() > prefix.len() && pair.starts_with(prefix) && pair[prefix.len()] == b'='
    };
    let pairs = value.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    if !pairs.clone().any(is_session) {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let kept: Vec<&[u8]> = pairs.filter(|p| !p.is_empty() && !is_session(p)).collect();
    if kept.is_empty() {
        return None;
    }
    Some(std::borrow::Cow::Owned(kept.join(&b"; "[..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_header_has_its_rule() {
        for (name, want) in [
            ("X-Berth-User", Rule::Drop),
            ("x_berth_roles", Rule::Drop),
            ("X-Berth-Anything", Rule::Drop),
            ("x-berthday", Rule::Keep),
            ("X-Forwarded-For", Rule::ForwardedFor),
            ("cookie", Rule::Cookie),
            ("Forwarded", Rule::Drop),
            ("X-Real-IP", Rule::Drop),
            ("Host", Rule::Drop),
            ("Keep-Alive", Rule::Drop),
            ("Upgrade", Rule::Drop),
            ("Accept", Rule::Keep),
        ] {
            assert_eq!(rule(name.as_bytes()), want, "{name}");
        }
        let names = ConnectionNames::read([&b"keep-alive, X-Drop-Me"[..], b" ,a,b, c,d ,e"]);
        for name in ["x-drop-me", "KEEP-ALIVE", "a", "b", "c", "d", "e"] {
            assert!(names.name(name.as_bytes()), "{name}");
        }
        for name in ["", "x-drop", "f", "keep-alive, x-drop-me"] {
            assert!(!names.name(name.as_bytes()), "{name}");
        }
        assert!(!ConnectionNames::read([]).name(b"a"));
        let c = |v: &str| {
            cookie_without_session(v.as_bytes()).map(|c| String::from_utf8(c.into_owned()).unwrap())
        };
        assert_eq!(
            c("a=1; berth_session=secret; b=2").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(c("berth_session=secret"), None);
        assert_eq!(c("berth_sessionx=1").as_deref(), Some("berth_sessionx=1"));
    }
}
