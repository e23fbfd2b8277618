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

/// A whole page: `title` (text) and `body` (HTML, already escaped).
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — tally</title>\n<link rel=\"stylesheet\" href=\"/console/console.css\">\n</head>\n<body>\n\
         <header><nav aria-label=\"Main\"><a href=\"/console/log\">Log</a> · \
         <a href=\"/console/log/search\">Search</a></nav></header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    );
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                     frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
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
