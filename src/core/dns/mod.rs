//! DNS: the DNSSEC-validating resolver and its trust anchors, the answer cache, the hosts
//! file, and SRV discovery with RFC 2782 ordering.

pub mod anchors;
pub mod answer;
pub mod answer_cache;
pub mod discover;
pub mod hosts;
pub mod resolver;
pub mod srv_order;
pub mod system;
