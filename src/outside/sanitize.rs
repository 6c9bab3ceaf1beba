//! Outside text made safe to show: what a node, the coordinator or the EthProofs API wrote (an
//! error message, a reason) can carry newlines that forge log lines, terminal escapes, URL
//! credentials, keys and file paths. Two places use it: the log writer ([`LineSafe`]: one event
//! is one line, whatever its fields hold) and the public documents (`/health`, the dashboard,
//! `/api/blocks/{n}`: [`public_strings`] on every string of the document).

use std::io::Write;

/// Public text is cut here: a reason is a sentence, not a page.
const MAX_PUBLIC_CHARS: usize = 500;

/// Control characters escaped (`\n`, `\r`, `\u{1b}` …), so that the text stays on one line and
/// cannot drive a terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(' '),
            // C0, DEL, C1, and the Unicode line and paragraph separators some viewers break on.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Keys and credentials removed: every URL reduced to scheme://host:port (no user, path or
/// query), and the value after `Bearer`, `key=`, `token=`, `apikey=`, `secret=`, `password=`
/// replaced by `***`.
pub fn without_secrets(text: &str) -> String {
    let text = crate::outside::chain::scrub_urls(text);
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let marker = ["bearer ", "api_key=", "apikey=", "api-key=", "key=", "token=", "secret=", "password="]
            .iter()
            .filter_map(|m| lower[i..].find(m).map(|at| (i + at, m.len())))
            .min_by_key(|(at, _)| *at);
        let Some((at, len)) = marker else { break };
        let value_start = at + len;
        out.push_str(&text[i..value_start]);
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ',' | ';' | ')'))
            .unwrap_or(text.len() - value_start);
        if value_len > 0 {
            out.push_str("***");
        }
        i = value_start + value_len;
    }
    out.push_str(&text[i.min(text.len())..]);
    out
}

/// Absolute file paths reduced to their file name (`/var/lib/ethproofs/10/input.bin` →
/// `…/input.bin`): where the daemon keeps its files is not the public's business.
pub fn without_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('/') {
        let before = &rest[..start];
        // A path starts a word; `a/b` inside a word (or a URL's `//`) is not one.
        let starts_word =
            before.chars().last().is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '='));
        let tail = &rest[start..];
        let end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | ';')).unwrap_or(tail.len());
        let token = &tail[..end];
        out.push_str(before);
        if starts_word && token.matches('/').count() >= 2 && !token.starts_with("//") {
            let name = token.trim_end_matches(':').rsplit('/').next().unwrap_or("");
            out.push_str("…/");
            out.push_str(name);
            if token.ends_with(':') {
                out.push(':');
            }
        } else {
            out.push_str(token);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Outside text as the public documents show it: no secret, no path, one line, capped.
pub fn public(text: &str) -> String {
    let clean = one_line(&without_paths(&without_secrets(text)));
    if clean.chars().count() <= MAX_PUBLIC_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_PUBLIC_CHARS).collect();
    cut.push('…');
    cut
}

/// [`public`] applied to every string of a JSON document, except the links the daemon builds
/// itself (keys ending in `url` or `href`: kept whole, on one line).
pub fn public_strings(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = public(s),
        Value::Array(items) => items.iter_mut().for_each(public_strings),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k.ends_with("url") || k.ends_with("href") {
                    if let Value::String(s) = v {
                        *s = one_line(s);
                    }
                    continue;
                }
                public_strings(v);
            }
        }
        _ => {}
    }
}

/// A log writer that keeps one event on one line: the formatter hands it a whole event ending in
/// a newline; any newline, carriage return or terminal escape before that end came from a
/// field's text and is escaped.
pub struct LineSafe<W: Write> {
    inner: W,
    /// Terminal colours are the formatter's own (only when stderr is a terminal): escapes kept.
    ansi: bool,
}

impl<W: Write> LineSafe<W> {
    pub fn new(inner: W, ansi: bool) -> LineSafe<W> {
        LineSafe { inner, ansi }
    }
}

impl<W: Write> Write for LineSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                0x1b if self.ansi => out.push(b),
                b'\t' => out.push(b),
                b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                b => out.push(b),
            }
        }
        out.extend_from_slice(end);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_cannot_forge_a_line_or_drive_a_terminal() {
        assert_eq!(
            one_line("bad\nFAKE LOG LINE level=error\r\x1b[31m"),
            "bad\\nFAKE LOG LINE level=error\\r\\u{1b}[31m"
        );
        assert_eq!(one_line("sep\u{2028}here\u{85}"), "sep\\u{2028}here\\u{85}");
        let mut w = LineSafe::new(Vec::new(), false);
        w.write_all(b"INFO error=node said: x\nERROR forged line\x1b[2J\n").unwrap();
        assert_eq!(String::from_utf8(w.inner).unwrap(), "INFO error=node said: x\\nERROR forged line\\x1b[2J\n");
    }

    #[test]
    fn keys_credentials_and_paths_never_reach_the_public() {
        let said = "upstream https://user:secret@node.example/v2/SECRETKEY?key=SECRET failed; \
                    Authorization: Bearer abc.SECRET.def; retry?api_key=SECRET&x=1 token=SECRET";
        let shown = public(said);
        assert!(!shown.to_lowercase().contains("secret"), "{shown}");
        assert!(shown.contains("https://node.example/…") && shown.contains("Bearer ***"), "{shown}");
        let path = public("cannot read /var/lib/ethproofs/output/10/input.bin: No such file");
        assert_eq!(path, "cannot read …/input.bin: No such file");
        assert_eq!(public("HTTP 401 /proofs/proved"), "HTTP 401 …/proved");
        assert_eq!(public("and/or a 1/2 fraction"), "and/or a 1/2 fraction", "not paths");
        assert!(public(&"x".repeat(10_000)).chars().count() <= MAX_PUBLIC_CHARS + 1);
    }

    #[test]
    fn documents_are_cleaned_string_by_string_but_links_stay_links() {
        let mut doc = serde_json::json!({
            "reason": "node said\nFAKE: https://u:p@h/k?key=SECRET at /srv/out/10/proof.bin",
            "list": ["/home/op/guest.elf"],
            "ethproofs_url": "https://ethproofs.org/blocks/10",
            "n": 3,
        });
        public_strings(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("SECRET") && !text.contains("/srv/") && !text.contains("/home/"), "{text}");
        assert!(!doc["reason"].as_str().unwrap().contains('\n'));
        assert_eq!(doc["ethproofs_url"], "https://ethproofs.org/blocks/10", "{text}");
    }
}
