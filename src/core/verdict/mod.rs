//! Verdicts: whether a server is authentic (and the binding its password connection must
//! use), and whether a saved setup may change given the observation history.

pub mod authenticity;
pub mod binding;
pub mod change;
pub mod history;
