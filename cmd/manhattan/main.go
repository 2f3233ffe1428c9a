// Command manhattan runs the Manhattan pipeline: the Kafka consumer that
// reconciles visitors into ClickHouse, the REST query API, schema migration,
// the importer for the original system's logs, the quick start's example app,
// and `dev` / `demo`, which run everything in one process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	_ "time/tzdata" // rollup time zones work on hosts without a zoneinfo database

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/manhattan-go/manhattan/config"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful stop and restores the default
	// handling, so a stop that hangs (a slow query, an unreachable broker)
	// ends at a second Ctrl-C instead of the signal being swallowed.
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs)
			slog.Info("stopping; press Ctrl-C again to quit at once", "signal", sig.String())
			cancel()
		case <-ctx.Done():
			signal.Stop(sigs)
		}
	}()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "manhattan:", err)
		os.Exit(1)
	}
}

// app holds the root's persistent flags.
type app struct {
	configFile string
	logLevel   string
	logFormat  string
	log        *slog.Logger
}

const rootLong = `Manhattan: server-side analytics and A/B testing for Go web apps, as a
Kafka stream-processing pipeline.

  web app + producer middleware ──► Kafka topic (key = visitor id)
        ──► manhattan consumer (reconcile visitors, drop bots, aggregate)
        ──► ClickHouse tables ──► manhattan queryapi (REST)

Try it in one command:   manhattan demo
Everything locally:      manhattan dev

Configuration comes from, lowest precedence first: built-in defaults, the
YAML file given with --config, MANHATTAN_* environment variables (the key in
upper case with dots as underscores: kafka.brokers is MANHATTAN_KAFKA_BROKERS),
and command-line flags. Keys:

  kafka.brokers            host:port list           ` + config.DefaultBroker + `
  kafka.topic              events topic             ` + config.DefaultTopic + `
  kafka.group              consumer group           ` + config.DefaultGroup + `
  clickhouse.url           clickhouse://host:9000/db or chdb:///dir
                                                    ` + config.DefaultClickHouseURL + `
  consumer.flush_interval  flush at least this often         1s
  consumer.flush_events    ... or after this many events     10000
  consumer.cache_size      visitor states kept per partition 100000
  consumer.rollups         list of {name, kind, timezone}    [{all, all}]
  consumer.complex_goals   list of {name, include, exclude}
  queryapi.listen          REST API address          ` + config.DefaultQueryListen + `
  queryapi.token           bearer token required on /v1/… (none)
  queryapi.cors_origins    origins allowed from browsers
  producer.secret          signs visitor cookies (required for the app)
  producer.cookie_name     visitor cookie            ` + config.DefaultCookieName + `
  producer.pixel_path      tracking pixel path       ` + config.DefaultPixelPath + `
  producer.host_map        host → site id
  producer.spool_dir       on-disk buffer while Kafka is away
  producer.split_seeding   design, or python2 to keep a Python 2 site's splits
  example.listen           example app address       ` + config.DefaultExampleListen

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:           "manhattan",
		Short:         "Server-side analytics and A/B testing over Kafka and ClickHouse",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return a.setupLogging(cmd.ErrOrStderr())
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&a.configFile, "config", "c", "", "YAML configuration file (keys: see manhattan --help)")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(
		a.consumerCmd(),
		a.queryAPICmd(),
		a.migrateCmd(),
		a.importCmd(),
		a.exampleAppCmd(),
		a.devCmd(),
		a.demoCmd(),
	)
	return root
}

func (a *app) setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %q is not debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(a.logFormat) {
	case "text":
		a.log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return fmt.Errorf("--log-format: %q is not text or json", a.logFormat)
	}
	slog.SetDefault(a.log)
	return nil
}

// flagDef is the flag that sets a configuration key. def, when set, is the
// default shown in help (a command such as dev with defaults of its own).
type flagDef struct {
	key, name, usage string
	def              any
}

// keyFlags binds flags to configuration keys on cmd; the returned function
// maps them for config.Load.
func keyFlags(cmd *cobra.Command, defs ...flagDef) func() map[string]*pflag.Flag {
	d := config.Default()
	fs := cmd.Flags()
	for _, f := range defs {
		usage := f.usage + " (" + f.key + ", " + config.EnvVar(f.key) + ")"
		switch f.key {
		case "kafka.brokers":
			fs.StringSlice(f.name, orDef(f.def, d.Kafka.Brokers), usage)
		case "consumer.flush_interval":
			fs.Duration(f.name, orDef(f.def, d.Consumer.FlushInterval), usage)
		case "consumer.flush_events":
			fs.Int(f.name, orDef(f.def, d.Consumer.FlushEvents), usage)
		case "consumer.cache_size":
			fs.Int(f.name, orDef(f.def, d.Consumer.CacheSize), usage)
		default:
			fs.String(f.name, orDef(f.def, stringDefault(d, f.key)), usage)
		}
	}
	return func() map[string]*pflag.Flag {
		m := make(map[string]*pflag.Flag, len(defs))
		for _, f := range defs {
			m[f.key] = fs.Lookup(f.name)
		}
		return m
	}
}

func orDef[T any](def any, fallback T) T {
	if v, ok := def.(T); ok {
		return v
	}
	return fallback
}

func stringDefault(d *config.Config, key string) string {
	switch key {
	case "kafka.topic":
		return d.Kafka.Topic
	case "kafka.group":
		return d.Kafka.Group
	case "clickhouse.url":
		return d.ClickHouse.URL
	case "queryapi.listen":
		return d.QueryAPI.Listen
	case "producer.cookie_name":
		return d.Producer.CookieName
	case "producer.pixel_path":
		return d.Producer.PixelPath
	case "example.listen":
		return d.Example.Listen
	}
	return ""
}

// Flags shared by several commands.
var (
	fBrokers       = flagDef{key: "kafka.brokers", name: "brokers", usage: "Kafka bootstrap brokers, host:port, comma separated"}
	fTopic         = flagDef{key: "kafka.topic", name: "topic", usage: "events topic"}
	fGroup         = flagDef{key: "kafka.group", name: "group", usage: "consumer group id"}
	fClickHouse    = flagDef{key: "clickhouse.url", name: "clickhouse-url", usage: "ClickHouse: clickhouse://host:9000/db or chdb:///path/to/dir"}
	fFlushInterval = flagDef{key: "consumer.flush_interval", name: "flush-interval", usage: "flush a partition at least this often"}
	fFlushEvents   = flagDef{key: "consumer.flush_events", name: "flush-events", usage: "flush a partition after this many events"}
	fCacheSize     = flagDef{key: "consumer.cache_size", name: "cache-size", usage: "visitor states kept in memory per partition"}
	fSecret        = flagDef{key: "producer.secret", name: "secret", usage: "secret that signs visitor cookies"}
	fSpoolDir      = flagDef{key: "producer.spool_dir", name: "spool-dir", usage: "directory buffering events while Kafka is unreachable"}
)

// load reads the configuration for a command and validates the parts it
// uses (none when parts is empty).
func (a *app) load(flags func() map[string]*pflag.Flag, defaults map[string]any, parts ...config.Part) (*config.Config, error) {
	var fm map[string]*pflag.Flag
	if flags != nil {
		fm = flags()
	}
	cfg, err := config.Load(config.Source{File: a.configFile, Flags: fm, Defaults: defaults})
	if err != nil {
		return nil, err
	}
	if len(parts) > 0 {
		if err := cfg.Validate(parts...); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// done turns the cancellation that ends a server into a clean exit.
func done(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
