//! A small XML writer for EC2 responses: one `String`, escaped text, no
//! intermediate tree.

/// The EC2 response namespace.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Writes one XML document into a `String`.
pub struct Xml {
    buf: String,
}

impl Xml {
    /// Starts `<{action}Response xmlns=...><requestId>..</requestId>`.
    pub fn response(action: &str, request_id: &str, capacity: usize) -> Xml {
        let mut x = Xml {
            buf: String::with_capacity(capacity),
        };
        x.buf
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        x.buf.push_str(action);
        x.buf.push_str("Response xmlns=\"");
        x.buf.push_str(NAMESPACE);
        x.buf.push_str("\">");
        x.leaf("requestId", request_id);
        x
    }

    /// An empty document (no declaration), for fragments and errors.
    pub fn bare(capacity: usize) -> Xml {
        Xml {
            buf: String::with_capacity(capacity),
        }
    }

    /// Closes the response element and returns the text.
    pub fn finish_response(mut self, action: &str) -> String {
        self.buf.push_str("</");
        self.buf.push_str(action);
        self.buf.push_str("Response>");
        self.buf
    }

    /// The text written so far.
    pub fn into_string(self) -> String {
        self.buf
    }

    /// Appends XML already written (by another [`Xml`]), unescaped.
    pub fn raw(&mut self, xml: &str) {
        self.buf.push_str(xml);
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &str) {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &str) {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    /// `<tag/>`.
    pub fn empty(&mut self, tag: &str) {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push_str("/>");
    }

    /// `<tag>text</tag>` with `text` escaped; `<tag/>` when empty.
    pub fn leaf(&mut self, tag: &str, text: &str) {
        if text.is_empty() {
            self.empty(tag);
            return;
        }
        self.open(tag);
        escape_into(&mut self.buf, text);
        self.close(tag);
    }

    /// `<tag>n</tag>` for a number or other `Display` value that needs no
    /// escaping.
    pub fn num(&mut self, tag: &str, n: impl std::fmt::Display) {
        use std::fmt::Write;
        self.open(tag);
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{n}");
        self.close(tag);
    }
}

/// Appends `text` escaped for XML character data and attribute values.
/// Characters XML 1.0 cannot carry at all (most C0 controls) become U+FFFD,
/// so the document stays well-formed whatever the input.
pub fn escape_into(buf: &mut String, text: &str) {
    // Fast path: most values (ids, states, times) need no escaping. 0xEF
    // starts the UTF-8 of U+FFFE/U+FFFF, which the slow path replaces.
    let clean = text.bytes().all(|b| {
        !matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0xEF)
            && (b >= 0x20 || b == b'\t' || b == b'\n' || b == b'\r')
    });
    if clean {
        buf.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' => buf.push_str("&quot;"),
            '\'' => buf.push_str("&apos;"),
            '\t' | '\n' | '\r' => buf.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => buf.push('\u{FFFD}'),
            c => buf.push(c),
        }
    }
}

/// Whether XML 1.0 can carry `c` (tag keys and values are checked with it).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || ((c as u32) >= 0x20 && c != '\u{FFFE}' && c != '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_into(&mut s, "a<b>&\"'\u{1}");
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
        let mut x = Xml::response("CreateTags", "r1", 64);
        x.leaf("return", "true");
        x.leaf("none", "");
        let s = x.finish_response("CreateTags");
        assert!(s.ends_with("<return>true</return><none/></CreateTagsResponse>"));
    }
}
