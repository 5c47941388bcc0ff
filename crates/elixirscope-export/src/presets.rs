//! APM vendors' OTLP endpoints and the headers that carry their keys, as each
//! vendor documents them. Keys come from environment variables, never from
//! files or sessions, and are never printed.
//!
//! | preset | protocol | where | key header ← variable |
//! |---|---|---|---|
//! | `datadog` | HTTP/protobuf | `https://trace.agent.$DD_SITE/api/v0.2/traces`, metrics `https://api.$DD_SITE/api/intake/otlp/v1/metrics` | `dd-api-key` ← `DD_API_KEY`, `dd-otlp-source` ← `DD_OTLP_SOURCE`, `dd-protocol: otlp` |
//! | `newrelic` | HTTP/protobuf | `https://otlp.nr-data.net:4318` (`NEW_RELIC_REGION=eu`: `otlp.eu01.nr-data.net`) | `api-key` ← `NEW_RELIC_LICENSE_KEY` |
//! | `honeycomb` | HTTP/protobuf | `https://api.honeycomb.io` (`HONEYCOMB_API_ENDPOINT` overrides) | `x-honeycomb-team` ← `HONEYCOMB_API_KEY`, `x-honeycomb-dataset` ← `HONEYCOMB_DATASET` (metrics, optional) |
//! | `grafana-cloud` | HTTP/protobuf | `$GRAFANA_CLOUD_OTLP_ENDPOINT` (the stack's `…/otlp` URL) | `authorization: Basic base64(GRAFANA_CLOUD_INSTANCE_ID:GRAFANA_CLOUD_API_KEY)` |

use crate::otlp::client::{Endpoint, Protocol};
use base64::Engine;

/// The presets, by name.
pub const NAMES: [&str; 4] = ["datadog", "newrelic", "honeycomb", "grafana-cloud"];

/// A resolved preset.
#[derive(Debug, Clone)]
pub struct Preset {
    pub endpoint: Endpoint,
    /// Metrics must be sent as deltas (Datadog's intake accepts nothing else).
    pub delta_metrics: bool,
}

/// Why a preset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("unknown preset '{0}'; presets are datadog, newrelic, honeycomb, grafana-cloud")]
    Unknown(String),
    #[error("preset {preset} needs ${var} ({what}); set it in the environment")]
    Missing {
        preset: &'static str,
        var: &'static str,
        what: &'static str,
    },
}

/// Resolves preset `name`, reading variables through `env`.
pub fn resolve(name: &str, env: impl Fn(&str) -> Option<String>) -> Result<Preset, PresetError> {
    let need = |preset: &'static str, var: &'static str, what: &'static str| {
        env(var)
            .filter(|v| !v.trim().is_empty())
            .ok_or(PresetError::Missing { preset, var, what })
    };
    let h = |k: &str, v: String| (k.to_owned(), v);
    match name {
        "datadog" => {
            let site = env("DD_SITE").unwrap_or_else(|| "datadoghq.com".into());
            let endpoint = Endpoint {
                url: format!("https://trace.agent.{site}/api/v0.2/traces"),
                metrics_url: format!("https://api.{site}/api/intake/otlp/v1/metrics"),
                // Logs go to Datadog through its Agent or Collector, not this intake.
                logs_url: None,
                protocol: Protocol::HttpProtobuf,
                headers: vec![
                    h("dd-protocol", "otlp".into()),
                    h(
                        "dd-api-key",
                        need("datadog", "DD_API_KEY", "your Datadog API key")?,
                    ),
                    h(
                        "dd-otlp-source",
                        need(
                            "datadog",
                            "DD_OTLP_SOURCE",
                            "the source name Datadog gave your organisation",
                        )?,
                    ),
                ],
            };
            Ok(Preset {
                endpoint,
                delta_metrics: true,
            })
        }
        "newrelic" => {
            let host = match env("NEW_RELIC_REGION").as_deref() {
                Some("eu") | Some("EU") => "otlp.eu01.nr-data.net",
                _ => "otlp.nr-data.net",
            };
            let key = need(
                "newrelic",
                "NEW_RELIC_LICENSE_KEY",
                "your New Relic license key",
            )?;
            Ok(Preset {
                endpoint: Endpoint::new(
                    &format!("https://{host}:4318"),
                    Protocol::HttpProtobuf,
                    vec![h("api-key", key)],
                ),
                delta_metrics: false,
            })
        }
        "honeycomb" => {
            let base =
                env("HONEYCOMB_API_ENDPOINT").unwrap_or_else(|| "https://api.honeycomb.io".into());
            let mut headers = vec![h(
                "x-honeycomb-team",
                need("honeycomb", "HONEYCOMB_API_KEY", "your Honeycomb API key")?,
            )];
            if let Some(dataset) = env("HONEYCOMB_DATASET") {
                headers.push(h("x-honeycomb-dataset", dataset));
            }
            Ok(Preset {
                endpoint: Endpoint::new(&base, Protocol::HttpProtobuf, headers),
                delta_metrics: false,
            })
        }
        "grafana-cloud" => {
            let base = need(
                "grafana-cloud",
                "GRAFANA_CLOUD_OTLP_ENDPOINT",
                "your stack's OTLP endpoint, https://otlp-gateway-….grafana.net/otlp",
            )?;
            let id = need(
                "grafana-cloud",
                "GRAFANA_CLOUD_INSTANCE_ID",
                "your stack's instance ID",
            )?;
            let key = need(
                "grafana-cloud",
                "GRAFANA_CLOUD_API_KEY",
                "an access policy token",
            )?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"));
            Ok(Preset {
                endpoint: Endpoint::new(
                    &base,
                    Protocol::HttpProtobuf,
                    vec![h("authorization", format!("Basic {basic}"))],
                ),
                delta_metrics: false,
            })
        }
        other => Err(PresetError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn header<'a>(p: &'a Preset, name: &str) -> Option<&'a str> {
        p.endpoint
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn each_preset_fills_the_vendor_endpoint_and_key_header_from_the_environment() {
        let dd = resolve(
            "datadog",
            env(&[
                ("DD_API_KEY", "k1"),
                ("DD_OTLP_SOURCE", "acme"),
                ("DD_SITE", "datadoghq.eu"),
            ]),
        )
        .unwrap();
        assert_eq!(
            dd.endpoint.url,
            "https://trace.agent.datadoghq.eu/api/v0.2/traces"
        );
        assert_eq!(
            dd.endpoint.metrics_url,
            "https://api.datadoghq.eu/api/intake/otlp/v1/metrics"
        );
        assert_eq!(header(&dd, "dd-api-key"), Some("k1"));
        assert_eq!(header(&dd, "dd-protocol"), Some("otlp"));
        assert!(dd.delta_metrics);

        let nr = resolve("newrelic", env(&[("NEW_RELIC_LICENSE_KEY", "k2")])).unwrap();
        assert_eq!(nr.endpoint.url, "https://otlp.nr-data.net:4318/v1/traces");
        assert_eq!(header(&nr, "api-key"), Some("k2"));
        let nr_eu = resolve(
            "newrelic",
            env(&[("NEW_RELIC_LICENSE_KEY", "k2"), ("NEW_RELIC_REGION", "eu")]),
        )
        .unwrap();
        assert_eq!(
            nr_eu.endpoint.metrics_url,
            "https://otlp.eu01.nr-data.net:4318/v1/metrics"
        );

        let hc = resolve("honeycomb", env(&[("HONEYCOMB_API_KEY", "k3")])).unwrap();
        assert_eq!(hc.endpoint.url, "https://api.honeycomb.io/v1/traces");
        assert_eq!(header(&hc, "x-honeycomb-team"), Some("k3"));

        let gc = resolve(
            "grafana-cloud",
            env(&[
                (
                    "GRAFANA_CLOUD_OTLP_ENDPOINT",
                    "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp",
                ),
                ("GRAFANA_CLOUD_INSTANCE_ID", "123"),
                ("GRAFANA_CLOUD_API_KEY", "tok"),
            ]),
        )
        .unwrap();
        assert_eq!(
            gc.endpoint.url,
            "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp/v1/traces"
        );
        // base64("123:tok")
        assert_eq!(header(&gc, "authorization"), Some("Basic MTIzOnRvaw=="));
    }

    #[test]
    fn a_missing_key_or_unknown_preset_says_what_to_set() {
        let e = resolve("honeycomb", env(&[])).unwrap_err().to_string();
        assert!(e.contains("$HONEYCOMB_API_KEY"), "{e}");
        let e = resolve("splunk", env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown preset 'splunk'"), "{e}");
    }
}
