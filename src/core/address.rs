//! Email address and domain input: which domain to ask DNS about, in A-label form.
//!
//! The domain is the text after the last `@` (a quoted local part may contain `@`,
//! T-SRV-03). IDNs become A-labels (T-SRV-02); case is folded (T-SRV-01); one trailing dot
//! is dropped. Lengths follow RFC 5321 (local part) and RFC 1035 (labels, names).

use super::name::{NameForm, check_ldh_name, show};
use super::{Error, Result};

/// RFC 5321 §4.5.3.1.1: at most 64 octets of local part.
const MAX_LOCAL_PART: usize = 64;
/// Longest input accepted at all, before IDNA work: local part, `@`, and a U-label domain.
const MAX_INPUT: usize = 1024;

/// A mail domain as DNS is asked about it: A-labels, lower case, no trailing dot, at least
/// two labels, every limit checked. Made once, where user input enters
/// ([`MailDomain::parse`]); code that takes one never normalises it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailDomain(String);

impl MailDomain {
    /// The mail domain of `input`, which is either `user@domain` or a bare domain.
    pub fn parse(input: &str) -> Result<MailDomain> {
        mail_domain(input).map(MailDomain)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for MailDomain {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MailDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<MailDomain> for String {
    fn from(d: MailDomain) -> String {
        d.0
    }
}

/// The mail domain of `input` as text (see [`MailDomain::parse`]).
fn mail_domain(input: &str) -> Result<String> {
    if input.is_empty() {
        return Err(Error::InvalidArg("empty address".into()));
    }
    if input.len() > MAX_INPUT {
        return Err(Error::InvalidArg(format!(
            "address longer than {MAX_INPUT} bytes"
        )));
    }
    if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidArg(
            "address contains white space or control characters".into(),
        ));
    }
    let domain = match input.rfind('@') {
        Some(at) => {
            let local = &input[..at];
            if local.is_empty() {
                return Err(Error::InvalidArg(format!(
                    "{input:?} has an empty local part"
                )));
            }
            if local.len() > MAX_LOCAL_PART {
                return Err(Error::InvalidArg(format!(
                    "local part longer than {MAX_LOCAL_PART} bytes"
                )));
            }
            &input[at + 1..]
        }
        None => input,
    };
    if domain.starts_with('[') {
        return Err(Error::InvalidArg(format!(
            "{domain} is an address literal: it has no SRV records"
        )));
    }
    let domain = normalize_domain(domain)?;
    if !domain.contains('.') {
        return Err(Error::InvalidArg(format!(
            "{domain:?} is not a fully qualified mail domain"
        )));
    }
    Ok(domain)
}

/// A host or domain name in the form used on the wire, in SNI and for comparisons:
/// A-labels, lower case, no trailing dot, LDH labels (underscore allowed only as the first
/// character of a label, for `_imaps._tcp`-style owners), checked lengths.
pub fn normalize_domain(name: &str) -> Result<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(Error::InvalidArg("empty domain".into()));
    }
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(name)
            .map_err(|_| Error::InvalidArg(format!("{name:?} is not a valid IDN domain")))?
    };
    check_ldh_name(&ascii, NameForm::Owner)
        .map_err(|why| Error::InvalidArg(format!("{} is not a valid domain: {why}", show(name))))?;
    Ok(ascii)
}

/// True when `name` equals `domain` or lies below it, on a label boundary (T-AUTH-04..06).
pub fn is_in_domain(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    name.eq_ignore_ascii_case(domain)
        || (name.len() > domain.len()
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
            && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_srv_01_case_folded() {
        assert_eq!(mail_domain("user@Example.COM").unwrap(), "example.com");
    }

    #[test]
    fn t_srv_02_idn_to_a_label() {
        assert_eq!(
            mail_domain("user@bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            mail_domain("BÜCHER.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn t_srv_03_last_at() {
        assert_eq!(mail_domain("\"a@b\"@example.com").unwrap(), "example.com");
    }

    #[test]
    fn bare_domain_and_trailing_dot() {
        assert_eq!(mail_domain("example.com.").unwrap(), "example.com");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "@example.com",
            "user@",
            "user@.",
            "user@example..com",
            "user@exa mple.com",
            "user@example.com\n",
            "user@ex\0ample.com",
            "user@-example.com",
            "user@[127.0.0.1]",
            "user@localhost",
            "user@exa_mple.com",
        ] {
            assert!(
                matches!(mail_domain(bad), Err(Error::InvalidArg(_))),
                "{bad:?} accepted"
            );
        }
        let long_label = format!("u@{}.com", "a".repeat(64));
        assert!(mail_domain(&long_label).is_err());
        let long_name = format!("u@{}com", "abcdefghi.".repeat(26));
        assert!(long_name.len() - 2 > crate::core::name::MAX_NAME_LEN);
        assert!(mail_domain(&long_name).is_err());
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(mail_domain(&long_local).is_err());
        assert!(mail_domain(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn t_auth_04_to_06_in_domain() {
        assert!(is_in_domain("imap.example.com", "example.com"));
        assert!(is_in_domain("example.com.", "EXAMPLE.com"));
        assert!(!is_in_domain("imap.example.com.evil.net", "example.com"));
        assert!(!is_in_domain("notexample.com", "example.com"));
    }
}
