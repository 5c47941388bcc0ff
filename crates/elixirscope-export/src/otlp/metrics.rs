//! A session's counters as OpenTelemetry metrics: events per kind, drops,
//! and the duration of traced calls per function as a histogram (the busiest
//! [`MAX_FUNCTIONS`] functions, the rest together, so cardinality stays bounded).

use super::spans::{code_namespace_function, kv_str};
use elixirscope_query::filter::EventFilter;
use elixirscope_query::Session;
use elixirscope_store::{DictId, EventKind};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, Sum,
};
use rustc_hash::FxHashMap;

/// Functions given their own duration series; the rest share one.
pub const MAX_FUNCTIONS: usize = 200;

/// Bucket bounds of call durations, in seconds.
pub const DURATION_BOUNDS: [f64; 9] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 60.0];

#[derive(Default, Clone)]
struct Durations {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: [u64; DURATION_BOUNDS.len() + 1],
}

impl Durations {
    fn add(&mut self, secs: f64) {
        if self.count == 0 || secs < self.min {
            self.min = secs;
        }
        self.max = self.max.max(secs);
        self.count += 1;
        self.sum += secs;
        let i = DURATION_BOUNDS.partition_point(|&b| b < secs);
        self.buckets[i] += 1;
    }

    fn merge(&mut self, o: &Durations) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.min < self.min {
            self.min = o.min;
        }
        self.max = self.max.max(o.max);
        self.count += o.count;
        self.sum += o.sum;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
    }
}

fn sum(
    name: &str,
    description: &str,
    temporality: AggregationTemporality,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "{event}".into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// The session's metrics over its whole span: cumulative, or as one delta
/// from its start to its end (the same numbers, for intakes that take only deltas).
pub fn session_metrics(s: &Session, delta: bool) -> Vec<Metric> {
    let temporality = if delta {
        AggregationTemporality::Delta
    } else {
        AggregationTemporality::Cumulative
    };
    let (start, end) = (s.start_ns().max(0) as u64, s.end_ns().max(0) as u64);
    let point = |attributes, v: u64| NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: end,
        value: Some(number_data_point::Value::AsInt(v as i64)),
        ..Default::default()
    };
    let meta = s.meta();
    let events = meta
        .counts
        .iter()
        .map(|(kind, n)| point(vec![kv_str("event.kind", kind.clone())], *n))
        .collect();
    let mut per_mfa: FxHashMap<DictId, Durations> = FxHashMap::default();
    let f = EventFilter {
        kinds: vec![EventKind::Return, EventKind::Exception],
        limit: usize::MAX,
        ..Default::default()
    };
    s.scan_filtered(&f, |e| {
        if e.link.is_some() {
            per_mfa.entry(e.mfa).or_default().add(e.aux as f64 / 1e9);
        }
        true
    });
    let mut ranked: Vec<(DictId, Durations)> = per_mfa.into_iter().collect();
    ranked.sort_by_key(|(id, d)| (std::cmp::Reverse(d.count), *id));
    let mut other = Durations::default();
    let mut points = Vec::new();
    for (i, (mfa, d)) in ranked.iter().enumerate() {
        if i >= MAX_FUNCTIONS {
            other.merge(d);
            continue;
        }
        let text = s.mfa_text(*mfa);
        let (namespace, function) = code_namespace_function(&text);
        points.push(histogram_point(
            vec![
                kv_str("code.namespace", namespace),
                kv_str("code.function", function),
            ],
            d,
            start,
            end,
        ));
    }
    if other.count > 0 {
        points.push(histogram_point(
            vec![kv_str("code.function", "(other)")],
            &other,
            start,
            end,
        ));
    }
    vec![
        sum(
            "elixirscope.events",
            "Events recorded, by kind",
            temporality,
            events,
        ),
        sum(
            "elixirscope.dropped",
            "Events the agent dropped (never silently)",
            temporality,
            vec![point(Vec::new(), meta.dropped)],
        ),
        Metric {
            name: "elixirscope.call.duration".into(),
            description: "Duration of traced calls".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: points,
                aggregation_temporality: temporality as i32,
            })),
            ..Default::default()
        },
    ]
}

fn histogram_point(
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
    d: &Durations,
    start: u64,
    end: u64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: end,
        count: d.count,
        sum: Some(d.sum),
        bucket_counts: d.buckets.to_vec(),
        explicit_bounds: DURATION_BOUNDS.to_vec(),
        min: Some(d.min),
        max: Some(d.max),
        ..Default::default()
    }
}
