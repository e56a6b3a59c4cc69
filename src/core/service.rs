//! The six mail services of RFC 6186 and RFC 8314: their SRV labels, default ports and
//! whether TLS starts at once (implicit TLS) or through STARTTLS.

use std::fmt;

/// One mail service label. The order of [`Service::ALL`] is the order results are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Imaps,
    Imap,
    Pop3s,
    Pop3,
    Submissions,
    Submission,
}

/// What a service is used for, and so which services compete with each other (RFC 6186 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Reading mail: IMAP or POP3.
    Access,
    /// Sending mail: submission.
    Submission,
}

impl Service {
    /// Every service, implicit TLS before STARTTLS within each protocol.
    pub const ALL: [Service; 6] = [
        Service::Imaps,
        Service::Imap,
        Service::Pop3s,
        Service::Pop3,
        Service::Submissions,
        Service::Submission,
    ];

    /// The service name without underscore, as in SRV-IDs and the CLI: `imaps`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Imaps => "imaps",
            Service::Imap => "imap",
            Service::Pop3s => "pop3s",
            Service::Pop3 => "pop3",
            Service::Submissions => "submissions",
            Service::Submission => "submission",
        }
    }

    /// The port a server uses when nothing else is known.
    pub fn default_port(self) -> u16 {
        match self {
            Service::Imaps => 993,
            Service::Imap => 143,
            Service::Pop3s => 995,
            Service::Pop3 => 110,
            Service::Submissions => 465,
            Service::Submission => 587,
        }
    }

    /// True when TLS starts right after TCP connects (RFC 8314 "implicit TLS").
    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::Imaps | Service::Pop3s | Service::Submissions)
    }

    /// How a connection to this service starts TLS: implicit TLS for `imaps`, `pop3s` and
    /// `submissions`, the protocol's STARTTLS for the others.
    pub fn security(self) -> Security {
        match (self.implicit_tls(), self.protocol()) {
            (true, _) => Security::ImplicitTls,
            (false, Protocol::Imap) => Security::StartTlsImap,
            (false, Protocol::Pop3) => Security::StartTlsPop3,
            (false, Protocol::Smtp) => Security::StartTlsSmtp,
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Service::Imaps | Service::Imap => Protocol::Imap,
            Service::Pop3s | Service::Pop3 => Protocol::Pop3,
            Service::Submissions | Service::Submission => Protocol::Smtp,
        }
    }

    pub fn purpose(self) -> Purpose {
        match self.protocol() {
            Protocol::Imap | Protocol::Pop3 => Purpose::Access,
            Protocol::Smtp => Purpose::Submission,
        }
    }

    /// The same protocol with the other TLS mode (imap <-> imaps, ...).
    pub fn sibling(self) -> Service {
        match self {
            Service::Imaps => Service::Imap,
            Service::Imap => Service::Imaps,
            Service::Pop3s => Service::Pop3,
            Service::Pop3 => Service::Pop3s,
            Service::Submissions => Service::Submission,
            Service::Submission => Service::Submissions,
        }
    }

    /// The SRV owner prefix: `_imaps._tcp`.
    pub fn srv_prefix(self) -> String {
        format!("_{}._tcp", self.name())
    }

    /// One bit per service; the C API uses these values for masks and enum values alike.
    pub fn bit(self) -> u32 {
        match self {
            Service::Imaps => 1,
            Service::Imap => 2,
            Service::Pop3s => 4,
            Service::Pop3 => 8,
            Service::Submissions => 16,
            Service::Submission => 32,
        }
    }

    /// The service whose bit is `bit` (exactly one bit set).
    pub fn from_bit(bit: u32) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.bit() == bit)
    }

    /// Every service named in `mask`; 0 means all. Unknown bits are an error.
    pub fn from_mask(mask: u32) -> Option<Vec<Service>> {
        const ALL_BITS: u32 = 63;
        if mask & !ALL_BITS != 0 {
            return None;
        }
        let mask = if mask == 0 { ALL_BITS } else { mask };
        Some(
            Service::ALL
                .into_iter()
                .filter(|s| mask & s.bit() != 0)
                .collect(),
        )
    }

    /// Parses `imaps` or `_imaps`, case-insensitively.
    pub fn from_name(name: &str) -> Option<Service> {
        let name = name.strip_prefix('_').unwrap_or(name);
        Service::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip() {
        assert_eq!(Service::from_mask(0).unwrap().len(), 6);
        assert_eq!(
            Service::from_mask(1 | 16).unwrap(),
            vec![Service::Imaps, Service::Submissions]
        );
        assert!(Service::from_mask(64).is_none());
        for s in Service::ALL {
            assert_eq!(Service::from_bit(s.bit()), Some(s));
            assert_eq!(
                Service::from_name(&format!("_{}", s.name().to_uppercase())),
                Some(s)
            );
            assert_eq!(s.sibling().sibling(), s);
            assert_ne!(s.implicit_tls(), s.sibling().implicit_tls());
        }
    }
}

/// How TLS is reached on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Security {
    /// TLS from the first byte (993, 995, 465; RFC 8314 §3). The protocol (IMAP, POP3,
    /// SMTP) is recognised from the greeting read over TLS.
    ImplicitTls,
    /// IMAP `STARTTLS` (RFC 9051 §6.2.1).
    StartTlsImap,
    /// POP3 `STLS` (RFC 2595 §4).
    StartTlsPop3,
    /// SMTP `STARTTLS` (RFC 3207).
    StartTlsSmtp,
}

impl Security {
    /// The protocol a STARTTLS mode speaks; `None` for implicit TLS.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Security::ImplicitTls => None,
            Security::StartTlsImap => Some(Protocol::Imap),
            Security::StartTlsPop3 => Some(Protocol::Pop3),
            Security::StartTlsSmtp => Some(Protocol::Smtp),
        }
    }

    /// True for the three STARTTLS modes.
    pub fn is_starttls(self) -> bool {
        self != Security::ImplicitTls
    }

    /// The stable text name used in JSON and binding texts: `implicit-tls`,
    /// `starttls-imap`, `starttls-pop3`, `starttls-smtp`.
    pub fn name(self) -> &'static str {
        match self {
            Security::ImplicitTls => "implicit-tls",
            Security::StartTlsImap => "starttls-imap",
            Security::StartTlsPop3 => "starttls-pop3",
            Security::StartTlsSmtp => "starttls-smtp",
        }
    }
}

/// The application protocol on a mail connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Imap,
    Pop3,
    Smtp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "IMAP",
            Protocol::Pop3 => "POP3",
            Protocol::Smtp => "SMTP",
        }
    }

    /// The IANA-registered TLS ALPN protocol id (RFC 7301), where one exists: `imap` and
    /// `pop3` are registered, SMTP has none.
    pub fn alpn_id(self) -> Option<&'static [u8]> {
        match self {
            Protocol::Imap => Some(b"imap"),
            Protocol::Pop3 => Some(b"pop3"),
            Protocol::Smtp => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
