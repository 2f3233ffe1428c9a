package producer

import "github.com/prometheus/client_golang/prometheus"

// metrics of a Writer. Names are stable: dashboards use them.
type metrics struct {
	sent       prometheus.Counter
	spooled    prometheus.Counter
	dropped    *prometheus.CounterVec // label reason
	corrupt    prometheus.Counter
	spoolBytes prometheus.Gauge
	kafkaUp    prometheus.Gauge
}

// Reasons of manhattan_producer_events_dropped_total.
const (
	DropQueueFull  = "queue_full"  // in-memory queue full (Send never blocks)
	DropSpoolFull  = "spool_full"  // Kafka down and the spool at its bound
	DropSpoolError = "spool_error" // the spool could not be written
	DropInvalid    = "invalid"     // event failed validation
	DropClosed     = "closed"      // Send after Close
)

func newMetrics(reg prometheus.Registerer, queueLen func() float64) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "manhattan_producer_events_sent_total",
			Help: "Events acknowledged by Kafka."}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{Name: "manhattan_producer_events_spooled_total",
			Help: "Events written to the spool while Kafka was unreachable."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "manhattan_producer_events_dropped_total",
			Help: "Events lost, by reason (queue_full, spool_full, spool_error, invalid, closed)."}, []string{"reason"}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "manhattan_producer_spool_corrupt_bytes_total",
			Help: "Bytes of corrupt or truncated spool records skipped."}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "manhattan_producer_spool_bytes",
			Help: "Bytes waiting in the spool."}),
		kafkaUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "manhattan_producer_kafka_up",
			Help: "1 while the last write to Kafka succeeded."}),
	}
	for _, r := range []string{DropQueueFull, DropSpoolFull, DropSpoolError, DropInvalid, DropClosed} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sent, m.spooled, m.dropped, m.corrupt, m.spoolBytes, m.kafkaUp,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "manhattan_producer_queue_length",
				Help: "Events waiting in the in-memory queue."}, queueLen)} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
