package consumer

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// Defaults for the zero values of Options.
const (
	DefaultFlushEvents      = 50000
	DefaultFlushInterval    = time.Second
	DefaultFetchMaxBytes    = 8 << 20
	DefaultCacheSize        = 100000
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultSessionTimeout   = 10 * time.Second
	DefaultProgressInterval = 10 * time.Second
	DeadLetterSuffix        = ".dead"
)

// Options configures Run.
type Options struct {
	// Brokers are the Kafka bootstrap addresses (host:port).
	Brokers []string
	// Topic is the events topic; Group the consumer group id. Both required.
	Topic string
	Group string
	// DeadLetterTopic receives records that fail to decode or validate, with
	// their original key and value and the headers "reason",
	// "source_topic", "source_partition" and "source_offset". Default
	// Topic+".dead"; Run creates it when missing (same partition count).
	DeadLetterTopic string

	// Store receives the results; the caller opens, migrates and closes it.
	Store store.Store
	// Engine configures the reconciliation engine (rollups, complex goals).
	Engine reconcile.Config

	// A partition is flushed after FlushEvents records (default 50000), or
	// when it holds records and its last flush ended FlushInterval (default
	// 1s) ago, and always before the partition is given up. So a record
	// waits at most FlushInterval, one after a quiet spell not at all, and
	// a partition writes at most about one flush per FlushInterval.
	FlushEvents   int
	FlushInterval time.Duration
	// FetchMaxBytes caps one fetch of one partition (default 8 MiB); a
	// fetch is the unit in which visitor states are loaded, and one state
	// load costs about the same whatever its size (the server scans the
	// states table), so larger fetches mean fewer, cheaper-per-record loads.
	FetchMaxBytes int
	// CacheSize is the number of visitor states each partition worker keeps
	// (default 100000). States with unflushed changes are never evicted, so
	// the cache may briefly exceed it.
	CacheSize int

	// Logger receives structured logs (default slog.Default()), among them
	// a "progress" line every ProgressInterval (default 10s; <0 disables).
	Logger           *slog.Logger
	ProgressInterval time.Duration
	// Registerer registers the Prometheus metrics (nil: not registered).
	// Collectors already registered by an earlier Run are reused.
	Registerer prometheus.Registerer

	// ShutdownTimeout bounds the final flush, commit and group leave after
	// ctx is cancelled, and the flush before giving up a partition at the
	// end of a generation (default 30s).
	ShutdownTimeout time.Duration
	// SessionTimeout and HeartbeatInterval tune group membership (defaults
	// 10s and 1s). Brokers refuse sessions below their
	// group.min.session.timeout.ms (6s by default).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Brokers) == 0 {
		return o, errors.New("consumer: no Kafka brokers (kafka.brokers)")
	}
	if o.Topic == "" {
		return o, errors.New("consumer: no topic (kafka.topic)")
	}
	if o.Group == "" {
		return o, errors.New("consumer: no consumer group (kafka.group)")
	}
	if o.Store == nil {
		return o, errors.New("consumer: no store (clickhouse.url)")
	}
	if o.FlushEvents < 0 || o.FlushInterval < 0 || o.CacheSize < 0 {
		return o, errors.New("consumer: flush_events, flush_interval and cache_size must not be negative")
	}
	if o.DeadLetterTopic == "" {
		o.DeadLetterTopic = o.Topic + DeadLetterSuffix
	}
	if o.DeadLetterTopic == o.Topic {
		return o, errors.New("consumer: the dead-letter topic must differ from the events topic")
	}
	if o.FlushEvents == 0 {
		o.FlushEvents = DefaultFlushEvents
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FetchMaxBytes <= 0 {
		o.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.HeartbeatInterval >= o.SessionTimeout {
		return o, errors.New("consumer: heartbeat interval must be shorter than the session timeout")
	}
	return o, nil
}
