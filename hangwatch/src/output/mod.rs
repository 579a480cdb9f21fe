//! Rendering reports: the JSON wire format and the human report. Both only read the model;
//! durations, sizes and timestamps are formatted by [`crate::fmt`].

pub mod human;
pub mod json;
