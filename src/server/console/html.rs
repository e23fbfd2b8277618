//! The console's HTML: escaping and the page frame (one stylesheet, no
//! inline script, a Content-Security-Policy that allows only this origin).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `s` escaped for HTML text and double-quoted attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who the page is rendered for: the signed-in principal's name and the
/// session's CSRF token (for the log-out form), or nobody.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Chrome<'a> {
    /// `admin` or the workflow token's id.
    pub who: Option<&'a str>,
    /// The session's CSRF token.
    pub csrf: &'a str,
}

/// A whole page for an anonymous reader: `title` (text) and `body` (HTML,
/// already escaped).
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_for(status, title, body, Chrome::default())
}

/// A whole page, its navigation saying who is signed in (with a log-out
/// form) or offering to sign in.
pub(super) fn page_for(status: StatusCode, title: &str, body: &str, chrome: Chrome<'_>) -> Response {
    let account = match chrome.who {
        Some(who) => format!(
            "<form class=\"inline\" method=\"post\" action=\"/console/logout\">\
             <span id=\"signed-in\">Signed in as <strong>{}</strong></span> \
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"logout\">Log out</button></form>",
            escape(who),
            escape(chrome.csrf)
        ),
        None => "<a href=\"/console/login\" id=\"login-link\">Log in</a>".to_owned(),
    };
    // A data table wider than a phone (or a 400% zoom) scrolls inside its
    // own focusable region, never the page (WCAG 1.4.10). Every `<table`
    // here is the console's own markup: what users wrote is escaped.
    let body = body
        .replace(
            "<table",
            "<div class=\"wide\" role=\"region\" aria-label=\"table (scrolls sideways when narrow)\" tabindex=\"0\"><table",
        )
        .replace("</table>", "</table></div>");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — tally</title>\n<link rel=\"stylesheet\" href=\"/console/console.css\">\n</head>\n<body>\n\
         <header><nav aria-label=\"Main\"><a href=\"/console\">Overview</a> · \
         <a href=\"/console/runs\">Runs</a> · <a href=\"/console/contracts\">Contracts</a> · \
         <a href=\"/console/log\">Log</a> · <a href=\"/console/log/search\">Search</a> · {account}</nav></header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// `path?k=v&…` with each value percent-encoded (empty values left out).
pub(super) fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// An error page: what went wrong, in a sentence.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Not available",
        &format!(
            "<h1>Not available</h1>\n<p role=\"alert\">{}</p>\n",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
