//! OpenTelemetry export: spans from traced calls ([`spans`]), log records from
//! traced logger calls ([`logs`]), metrics from the session's counters and
//! call durations ([`metrics`]), sent over gRPC or
//! HTTP/protobuf ([`client`]) in batches, from a stored session ([`export`])
//! or while it records ([`live`]).

pub mod client;
pub mod export;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod spans;
