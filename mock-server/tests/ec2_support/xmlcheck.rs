//! A strict little XML reader for tests: checks well-formedness (balanced
//! tags, valid entity references, no raw `<` or `&` in text) and returns
//! the element tree.

#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses a whole document (optional `<?xml ...?>` declaration, one root).
pub fn parse(doc: &str) -> Result<Element, String> {
    let mut s = doc.trim_start();
    if let Some(rest) = s.strip_prefix("<?xml") {
        let end = rest.find("?>").ok_or("unterminated declaration")?;
        s = rest[end + 2..].trim_start();
    }
    let (root, rest) = element(s)?;
    if !rest.trim().is_empty() {
        return Err(format!(
            "content after the root element: {:?}",
            &rest[..rest.len().min(40)]
        ));
    }
    Ok(root)
}

fn name_end(s: &str) -> usize {
    s.find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(s.len())
}

fn element(s: &str) -> Result<(Element, &str), String> {
    let s = s.strip_prefix('<').ok_or("expected '<'")?;
    let n = name_end(s);
    let name = &s[..n];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ':' || c == '_' || c == '-' || c == '.')
    {
        return Err(format!("bad element name {name:?}"));
    }
    let close = s.find('>').ok_or("unterminated start tag")?;
    let attrs = &s[n..close];
    check_attrs(attrs.trim_end_matches('/'))?;
    let mut el = Element {
        name: name.to_string(),
        children: Vec::new(),
        text: String::new(),
    };
    if attrs.ends_with('/') {
        return Ok((el, &s[close + 1..]));
    }
    let mut rest = &s[close + 1..];
    loop {
        let lt = rest
            .find('<')
            .ok_or_else(|| format!("unclosed element {name}"))?;
        el.text.push_str(&text(&rest[..lt])?);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("</") {
            let gt = after.find('>').ok_or("unterminated end tag")?;
            if after[..gt].trim() != name {
                return Err(format!("</{}> closes <{name}>", &after[..gt]));
            }
            return Ok((el, &after[gt + 1..]));
        }
        let (child, r) = element(rest)?;
        el.children.push(child);
        rest = r;
    }
}

fn check_attrs(attrs: &str) -> Result<(), String> {
    let mut a = attrs.trim();
    while !a.is_empty() {
        let eq = a.find('=').ok_or("attribute without '='")?;
        let rest = a[eq + 1..].trim_start();
        let q = rest.chars().next().ok_or("attribute without value")?;
        if q != '"' && q != '\'' {
            return Err("unquoted attribute".into());
        }
        let end = rest[1..].find(q).ok_or("unterminated attribute")?;
        text(&rest[1..1 + end])?;
        a = rest[end + 2..].trim_start();
    }
    Ok(())
}

fn text(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or("'&' without ';'")?;
        let ent = &rest[amp + 1..amp + semi];
        match ent {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            e if e.starts_with("#x") => out.push(
                u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or("bad char ref")?,
            ),
            e if e.starts_with('#') => out.push(
                e[1..]
                    .parse::<u32>()
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or("bad char ref")?,
            ),
            e => return Err(format!("unknown entity &{e};")),
        }
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    if out
        .chars()
        .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err("control character in text".into());
    }
    Ok(out)
}
