//! The counted series of one scrape: everything `crate::metrics` summed over the threads
//! (`metrics::totals`), registered with etcd's names, types and labels.
//!
//! `prometheus_client` appends `_total` to counters and a final dot to help texts, so counter
//! names are registered without their `_total` and help texts without their dot. Histograms
//! summed elsewhere are encoded by [`SummedHistogram`] / [`HistogramRows`], which hand the
//! per-bucket counts to the encoder (it makes them cumulative and adds `+Inf`).

use crate::metrics::grpc::{CODE_NAMES, METHODS};
use crate::metrics::{
    Counter, Gauge, Histogram, HistogramCells, ThreadMetrics, Totals, DEFAULT_BUCKETS_SECONDS,
    PEER_ROUND_TRIP_BUCKETS,
};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter as FamilyCounter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge as FamilyGauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// One histogram's buckets (not cumulative, without `+Inf`), sum and count.
#[derive(Debug, Clone, Default)]
pub struct HistogramData {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl HistogramData {
    fn from_cells(cells: &HistogramCells, bounds: impl Iterator<Item = f64>) -> HistogramData {
        HistogramData {
            buckets: bounds
                .enumerate()
                .map(|(index, bound)| (bound, cells.buckets[index].get()))
                .collect(),
            sum: cells.sum(),
            count: cells.count.get(),
        }
    }

    fn of(cells: &HistogramCells, buckets: crate::metrics::Buckets) -> HistogramData {
        HistogramData::from_cells(cells, (0..buckets.count).map(|index| buckets.bound(index)))
    }
}

/// A histogram without labels.
#[derive(Debug)]
pub struct SummedHistogram(pub HistogramData);

impl EncodeMetric for SummedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let data = &self.0;
        encoder.encode_histogram::<NoLabelSet>(data.sum, data.count, &data.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A labelled histogram family, one row per label set.
#[derive(Debug, Default)]
pub struct HistogramRows(pub Vec<(Labels, HistogramData)>);

impl EncodeMetric for HistogramRows {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, data) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(data.sum, data.count, &data.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    /// Like Go's client (and `Family`), a family without rows is left out altogether.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn help_of(help: &'static str) -> &'static str {
    help.strip_suffix('.').unwrap_or(help)
}

fn counter_name(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Registers every counted series of `totals`.
pub fn register_counted(registry: &mut Registry, totals: &Totals, extensive: bool) {
    register_counters_and_gauges(registry, totals);
    for histogram in Histogram::ALL {
        let (name, help) = histogram.describe();
        let data = HistogramData::of(totals.all.histogram(histogram), histogram.buckets());
        registry.register(name, help_of(help), SummedHistogram(data));
    }
    register_grpc(registry, &totals.all, extensive);
    register_peers(registry, &totals.all);
}

fn shard_label(shard: usize) -> Labels {
    vec![("shard", shard.to_string())]
}

fn register_counters_and_gauges(registry: &mut Registry, totals: &Totals) {
    for counter in Counter::ALL {
        let (name, help) = counter.describe();
        let help = help_of(help);
        if counter.per_shard() {
            let family = Family::<Labels, FamilyCounter>::default();
            for (shard, metrics) in &totals.shards {
                family
                    .get_or_create(&shard_label(*shard))
                    .inc_by(metrics.counter(counter).get());
            }
            registry.register(counter_name(name), help, family);
        } else if counter.exported_as_gauge() {
            let value = totals.all.counter(counter).get();
            registry.register(
                name,
                help,
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)),
            );
        } else {
            let value = totals.all.counter(counter).get();
            registry.register(counter_name(name), help, ConstCounter::new(value));
        }
    }
    for gauge in Gauge::ALL {
        let (name, help) = gauge.describe();
        let help = help_of(help);
        if gauge.per_shard() {
            let family = Family::<Labels, FamilyGauge>::default();
            for (shard, metrics) in &totals.shards {
                family
                    .get_or_create(&shard_label(*shard))
                    .set(metrics.gauge(gauge).get());
            }
            registry.register(name, help, family);
        } else {
            registry.register(name, help, ConstGauge::new(totals.all.gauge(gauge).get()));
        }
    }
}

/// go-grpc-prometheus's labels, in the order Go's client sorts them.
fn method_labels(row: usize) -> Labels {
    let info = &METHODS[row];
    let (service, method) = info.service_and_method();
    vec![
        ("grpc_method", method.to_string()),
        ("grpc_service", service.to_string()),
        ("grpc_type", info.call_type.label().to_string()),
    ]
}

fn register_grpc(registry: &mut Registry, all: &ThreadMetrics, extensive: bool) {
    let started = Family::<Labels, FamilyCounter>::default();
    let handled = Family::<Labels, FamilyCounter>::default();
    let received = Family::<Labels, FamilyCounter>::default();
    let sent = Family::<Labels, FamilyCounter>::default();
    let mut handling = HistogramRows::default();
    for (row, cells) in all.methods.iter().enumerate() {
        if !METHODS[row].preregistered && cells.started.get() == 0 {
            continue;
        }
        let labels = method_labels(row);
        started.get_or_create(&labels).inc_by(cells.started.get());
        for (code, count) in cells.handled.iter().enumerate() {
            let mut labels_with_code = vec![("grpc_code", CODE_NAMES[code].to_string())];
            labels_with_code.extend(labels.iter().cloned());
            handled.get_or_create(&labels_with_code).inc_by(count.get());
        }
        received
            .get_or_create(&labels)
            .inc_by(cells.received_messages.get());
        sent.get_or_create(&labels)
            .inc_by(cells.sent_messages.get());
        if extensive {
            let data = HistogramData::from_cells(
                &cells.handling_seconds,
                DEFAULT_BUCKETS_SECONDS.into_iter(),
            );
            handling.0.push((labels, data));
        }
    }
    registry.register(
        "grpc_server_started",
        "Total number of RPCs started on the server",
        started,
    );
    registry.register(
        "grpc_server_handled",
        "Total number of RPCs completed on the server, regardless of success or failure",
        handled,
    );
    registry.register(
        "grpc_server_msg_received",
        "Total number of RPC stream messages received on the server",
        received,
    );
    registry.register(
        "grpc_server_msg_sent",
        "Total number of gRPC stream messages sent by the server",
        sent,
    );
    if extensive {
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
            handling,
        );
    }
}

fn register_peers(registry: &mut Registry, all: &ThreadMetrics) {
    let sent_bytes = Family::<Labels, FamilyCounter>::default();
    let received_bytes = Family::<Labels, FamilyCounter>::default();
    let sent_failures = Family::<Labels, FamilyCounter>::default();
    let mut round_trips = HistogramRows::default();
    let bounds =
        || (0..PEER_ROUND_TRIP_BUCKETS.count).map(|index| PEER_ROUND_TRIP_BUCKETS.bound(index));
    for cells in all.peers.iter().filter(|cells| cells.id() != 0) {
        let id = format!("{:x}", cells.id());
        let to = vec![("To", id.clone())];
        if cells.sent_bytes.get() > 0 || cells.sent_failures.get() > 0 {
            sent_bytes.get_or_create(&to).inc_by(cells.sent_bytes.get());
            sent_failures
                .get_or_create(&to)
                .inc_by(cells.sent_failures.get());
        }
        if cells.received_bytes.get() > 0 {
            received_bytes
                .get_or_create(&vec![("From", id)])
                .inc_by(cells.received_bytes.get());
        }
        if cells.round_trip_seconds.count.get() > 0 {
            let data = HistogramData::from_cells(&cells.round_trip_seconds, bounds());
            round_trips.0.push((to, data));
        }
    }
    registry.register(
        "etcd_network_peer_sent_bytes",
        "The total number of bytes sent to peers",
        sent_bytes,
    );
    registry.register(
        "etcd_network_peer_received_bytes",
        "The total number of bytes received from peers",
        received_bytes,
    );
    registry.register(
        "etcd_network_peer_sent_failures",
        "The total number of send failures from peers",
        sent_failures,
    );
    registry.register(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        round_trips,
    );
}
