//! APM vendors' OTLP endpoints and the headers that carry their keys. Keys come
//! from environment variables, never from files or sessions.
