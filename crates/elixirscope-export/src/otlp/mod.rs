//! OpenTelemetry export: spans from traced calls ([`spans`]), metrics from
//! the session's counters and call durations ([`metrics`]), sent over gRPC or
//! HTTP/protobuf ([`client`]) in batches ([`export`]).

pub mod client;
pub mod export;
pub mod metrics;
pub mod spans;
