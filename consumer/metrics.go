package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus collectors. Records per second is
// rate(manhattan_consumer_records_total[1m]).
type metrics struct {
	records       prometheus.Counter
	deadLetters   prometheus.Counter
	retries       *prometheus.CounterVec
	flushSeconds  prometheus.Histogram
	flushRecords  prometheus.Histogram
	storeSeconds  *prometheus.HistogramVec
	lag           *prometheus.GaugeVec
	secondsBehind *prometheus.GaugeVec
	partitions    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "manhattan_consumer_records_total",
			Help: "Records processed (counted, replayed or dead-lettered).",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "manhattan_consumer_dead_letters_total",
			Help: "Records sent to the dead-letter topic because they failed to decode or validate.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manhattan_consumer_retries_total",
			Help: "Retried store and dead-letter operations, by operation.",
		}, []string{"op"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "manhattan_consumer_flush_seconds",
			Help:    "Duration of a partition flush to the store, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		flushRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "manhattan_consumer_flush_records",
			Help:    "Records covered by one partition flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "manhattan_consumer_store_seconds",
			Help:    "Duration of successful store calls, by operation (the flush steps, load_states, marks).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"op"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "manhattan_consumer_lag_records",
			Help: "Records between the partition's high-water mark and the next offset to process.",
		}, []string{"partition"}),
		secondsBehind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "manhattan_consumer_seconds_behind",
			Help: "Age of the last processed record's event time while the partition lags; 0 when caught up.",
		}, []string{"partition"}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "manhattan_consumer_partitions",
			Help: "Partitions this process currently owns.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.records, err = register(reg, m.records)
	if err == nil {
		m.deadLetters, err = register(reg, m.deadLetters)
	}
	if err == nil {
		m.retries, err = register(reg, m.retries)
	}
	if err == nil {
		m.flushSeconds, err = register(reg, m.flushSeconds)
	}
	if err == nil {
		m.flushRecords, err = register(reg, m.flushRecords)
	}
	if err == nil {
		m.storeSeconds, err = register(reg, m.storeSeconds)
	}
	if err == nil {
		m.lag, err = register(reg, m.lag)
	}
	if err == nil {
		m.secondsBehind, err = register(reg, m.secondsBehind)
	}
	if err == nil {
		m.partitions, err = register(reg, m.partitions)
	}
	return m, err
}

// register registers c, or returns the equal collector registered before
// (several consumers in one process share the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}

// progress aggregates what the periodic log line reports.
type progress struct {
	records atomic.Int64
	mu      sync.Mutex
	parts   map[int32]partProgress
}

type partProgress struct {
	lag    int64
	lastTS int64 // event time (Unix µs) of the last processed record
}

func (p *progress) set(partition int32, lag, lastTS int64) {
	p.mu.Lock()
	if p.parts == nil {
		p.parts = make(map[int32]partProgress)
	}
	p.parts[partition] = partProgress{lag: lag, lastTS: lastTS}
	p.mu.Unlock()
}

func (p *progress) drop(partition int32) {
	p.mu.Lock()
	delete(p.parts, partition)
	p.mu.Unlock()
}

// behind is the age of the last processed record, 0 when caught up.
func behind(now time.Time, lag, lastTS int64) float64 {
	if lag <= 0 || lastTS == 0 {
		return 0
	}
	s := now.Sub(time.UnixMicro(lastTS)).Seconds()
	if s < 0 {
		return 0
	}
	return s
}

// logLoop logs a progress line every interval until ctx ends.
func (p *progress) logLoop(ctx context.Context, log *slog.Logger, interval time.Duration) {
	if interval < 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastAt := p.records.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := p.records.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			p.mu.Lock()
			var lag int64
			var worst float64
			for _, pp := range p.parts {
				lag += pp.lag
				worst = max(worst, behind(now, pp.lag, pp.lastTS))
			}
			owned := len(p.parts)
			p.mu.Unlock()
			log.Info("progress", "records", n, "rate", int64(rate), "lag", lag,
				"seconds_behind", int64(worst), "partitions", owned)
		}
	}
}
