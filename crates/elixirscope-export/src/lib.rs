//! Export: sessions into the tools teams already run.
//!
//! [`otlp`] turns a session's traced calls into OpenTelemetry spans and its
//! counters into metrics, and sends them over gRPC or HTTP/protobuf;
//! [`presets`] knows the OTLP endpoints and header names of APM vendors.
//! Everything is read through the query interface, so what was redacted on
//! the node is redacted in every export too.

pub mod otlp;
pub mod presets;
