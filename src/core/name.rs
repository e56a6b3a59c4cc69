//! DNS name syntax shared by every name mailsrv reads: LDH labels and the RFC 1035 lengths,
//! and quoting of hostile text for messages.

/// RFC 1035 §2.3.4, without the trailing root label.
pub(crate) const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Checks one LDH label (letters, digits, hyphen; no edge hyphen; 1..=63 octets).
pub fn check_ldh_label(label: &str) -> std::result::Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > MAX_LABEL_LEN {
        return Err("label longer than 63 octets");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("character outside letters, digits and hyphen");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("label starts or ends with a hyphen");
    }
    Ok(())
}

/// What a name may hold besides LDH labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameForm {
    /// Host names: LDH labels only.
    Host,
    /// Presented dNSNames: the whole left-most label may be `*`.
    Wildcard,
    /// Owner names such as `_imaps._tcp.example.com`: a label may start with `_`.
    Owner,
}

/// Checks an ASCII name of LDH labels in the given form.
pub fn check_ldh_name(name: &str, form: NameForm) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name longer than 253 octets");
    }
    for (i, label) in name.split('.').enumerate() {
        if form == NameForm::Wildcard && i == 0 && label == "*" {
            continue;
        }
        if label.contains('*') {
            return Err("wildcard that is not the whole left-most label");
        }
        let label = match form {
            NameForm::Owner => label.strip_prefix('_').unwrap_or(label),
            _ => label,
        };
        check_ldh_label(label)?;
    }
    Ok(())
}

/// Quotes hostile text for messages: escapes controls and non-ASCII, caps the length.
pub fn show(s: &str) -> String {
    const CAP: usize = 96;
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i >= CAP {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Shows raw bytes: printable ASCII as is, everything else as `\xNN`, length capped.
pub fn show_bytes(b: &[u8]) -> String {
    const CAP: usize = 96;
    let mut out = String::from("\"");
    for (i, &c) in b.iter().enumerate() {
        if i >= CAP {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == b' ' {
            if c == b'"' || c == b'\\' {
                out.push('\\');
            }
            out.push(char::from(c));
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
    out.push('"');
    out
}
