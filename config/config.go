// Package config is the configuration of the manhattan binary: one struct for
// every key, loaded from a YAML file, overridden by MANHATTAN_* environment
// variables, overridden by command-line flags, and validated with messages
// that name the offending key.
package config

import (
	"time"

	"github.com/manhattan-go/manhattan/reconcile"
)

// Defaults of the keys that have one.
const (
	DefaultBroker        = "localhost:9092"
	DefaultTopic         = "manhattan.events"
	DefaultGroup         = "manhattan"
	DefaultClickHouseURL = "chdb://./.cache/manhattan/chdb"
	DefaultFlushInterval = time.Second
	DefaultFlushEvents   = 10000
	DefaultCacheSize     = 100000
	DefaultQueryListen   = ":8080"
	DefaultCookieName    = "manhattan"
	DefaultPixelPath     = "/vpixel.gif"
	DefaultExampleListen = ":8000"
	DefaultSplitSeeding  = "design"
)

// EnvPrefix prefixes the environment variable of every key: kafka.brokers is
// MANHATTAN_KAFKA_BROKERS, consumer.flush_interval is
// MANHATTAN_CONSUMER_FLUSH_INTERVAL.
const EnvPrefix = "MANHATTAN"

// Config holds every key of the binary. The mapstructure tags are the keys'
// names in YAML.
type Config struct {
	Kafka      Kafka      `mapstructure:"kafka" yaml:"kafka"`
	ClickHouse ClickHouse `mapstructure:"clickhouse" yaml:"clickhouse"`
	Consumer   Consumer   `mapstructure:"consumer" yaml:"consumer"`
	QueryAPI   QueryAPI   `mapstructure:"queryapi" yaml:"queryapi"`
	Producer   Producer   `mapstructure:"producer" yaml:"producer"`
	Example    Example    `mapstructure:"example" yaml:"example"`
}

// Kafka is where the events topic lives.
type Kafka struct {
	Brokers []string `mapstructure:"brokers" yaml:"brokers"`
	Topic   string   `mapstructure:"topic" yaml:"topic"`
	Group   string   `mapstructure:"group" yaml:"group"`
}

// ClickHouse is where results are kept: clickhouse://host:9000/db or
// chdb:///path/to/dir.
type ClickHouse struct {
	URL string `mapstructure:"url" yaml:"url"`
}

// Consumer tunes the reconciling consumer.
type Consumer struct {
	FlushInterval time.Duration           `mapstructure:"flush_interval" yaml:"flush_interval"`
	FlushEvents   int                     `mapstructure:"flush_events" yaml:"flush_events"`
	CacheSize     int                     `mapstructure:"cache_size" yaml:"cache_size"`
	Rollups       []reconcile.Rollup      `mapstructure:"rollups" yaml:"rollups"`
	ComplexGoals  []reconcile.ComplexGoal `mapstructure:"complex_goals" yaml:"complex_goals"`
}

// QueryAPI is the REST query API.
type QueryAPI struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	// Token, when set, is required as "Authorization: Bearer <token>" on /v1/….
	Token string `mapstructure:"token" yaml:"token"`
	// CORSOrigins may call the API from a browser; "*" allows any.
	CORSOrigins []string `mapstructure:"cors_origins" yaml:"cors_origins"`
}

// Producer configures the middleware of the example app (and of `dev`).
type Producer struct {
	Secret     string           `mapstructure:"secret" yaml:"secret"`
	CookieName string           `mapstructure:"cookie_name" yaml:"cookie_name"`
	PixelPath  string           `mapstructure:"pixel_path" yaml:"pixel_path"`
	HostMap    map[string]int64 `mapstructure:"host_map" yaml:"host_map"`
	SpoolDir   string           `mapstructure:"spool_dir" yaml:"spool_dir"`
	// SplitSeeding is "design" (default) or "python2": seed splits as the
	// original system did on Python 2 (hash of the str), for sites migrating
	// from a Python 2 deployment. python2 refuses weighted splits.
	SplitSeeding string `mapstructure:"split_seeding" yaml:"split_seeding"`
}

// Example is the example app.
type Example struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// Default returns the configuration with every default applied.
func Default() *Config {
	return &Config{
		Kafka: Kafka{
			Brokers: []string{DefaultBroker},
			Topic:   DefaultTopic,
			Group:   DefaultGroup,
		},
		ClickHouse: ClickHouse{URL: DefaultClickHouseURL},
		Consumer: Consumer{
			FlushInterval: DefaultFlushInterval,
			FlushEvents:   DefaultFlushEvents,
			CacheSize:     DefaultCacheSize,
			Rollups:       DefaultRollups(),
		},
		QueryAPI: QueryAPI{Listen: DefaultQueryListen},
		Producer: Producer{
			CookieName:   DefaultCookieName,
			PixelPath:    DefaultPixelPath,
			HostMap:      map[string]int64{},
			SplitSeeding: DefaultSplitSeeding,
		},
		Example: Example{Listen: DefaultExampleListen},
	}
}

// DefaultRollups is the rollup list used when none is configured: {all, all}.
func DefaultRollups() []reconcile.Rollup {
	return []reconcile.Rollup{{Name: reconcile.RollupAll, Kind: reconcile.RollupAll}}
}

// Engine returns the reconciliation engine's configuration.
func (c *Config) Engine() reconcile.Config {
	return reconcile.Config{Rollups: c.Consumer.Rollups, ComplexGoals: c.Consumer.ComplexGoals}
}
