package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/queryapi"
	"github.com/manhattan-go/manhattan/schema"
	"github.com/manhattan-go/manhattan/store"
)

func (a *app) consumerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumer",
		Short: "Consume the events topic into ClickHouse (reconcile visitors, aggregate, flush)",
		Long: `Consume the events topic as a member of the consumer group: each visitor's
events are reconciled in order (bots, whose events never come with a pixel,
are never counted), counted per rollup and flushed to ClickHouse in batches.
Run as many consumers as the topic has partitions; counts stay exact across
crashes, restarts and rebalances. The schema is migrated at start.

Stop with SIGINT or SIGTERM: owned partitions are flushed before exit.`,
		Example: `  manhattan consumer --brokers kafka1:9092,kafka2:9092 --clickhouse-url clickhouse://ch:9000/manhattan
  MANHATTAN_KAFKA_BROKERS=localhost:9092 manhattan consumer --config manhattan.yaml`,
		Args: cobra.NoArgs,
	}
	var metricsAddr string
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", "", "serve Prometheus metrics on this address's /metrics (default: off)")
	flags := keyFlags(cmd, fBrokers, fTopic, fGroup, fClickHouse, fFlushInterval, fFlushEvents, fCacheSize)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, nil, config.PartKafka, config.PartClickHouse, config.PartConsumer)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		reg, stopMetrics, err := metricsServer(ctx, metricsAddr, a.log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		st, err := openStore(ctx, cfg.ClickHouse.URL, a.log)
		if err != nil {
			return err
		}
		defer st.Close()
		opts := consumerOptions(cfg, st, a.log)
		opts.Registerer = reg
		consumerGC()
		return done(ctx, consumer.Run(ctx, opts))
	}
	return cmd
}

// consumerGC raises the GC target of a consuming process unless GOGC is set:
// its live heap (cached visitor states, a flush's records) is large and
// steady, and at the default 100 marking took about a quarter of the
// consumer's CPU; 400 cut CPU per record by ~25% in
// BenchmarkConsumerEndToEnd.
func consumerGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

func consumerOptions(cfg *config.Config, st store.Store, log *slog.Logger) consumer.Options {
	return consumer.Options{
		Brokers:       cfg.Kafka.Brokers,
		Topic:         cfg.Kafka.Topic,
		Group:         cfg.Kafka.Group,
		Store:         st,
		Engine:        cfg.Engine(),
		FlushEvents:   cfg.Consumer.FlushEvents,
		FlushInterval: cfg.Consumer.FlushInterval,
		CacheSize:     cfg.Consumer.CacheSize,
		Logger:        log,
	}
}

func (a *app) queryAPICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queryapi",
		Short: "Serve the REST query API (goals, tests, A/B results) over ClickHouse",
		Long: `Serve the JSON query API:

  GET /v1/goals                       goals with value type and format
  GET /v1/goals/{goal}                visitors converted and value
  GET /v1/goals/{goal}/series?rollup=day&from=…&to=…
                                      counts per bucket, for charts
  GET /v1/tests                       split tests, newest first
  GET /v1/tests/{test}                impressions per population
  GET /v1/tests/{test}/results?goals=a,b
                                      per population: values and statistics
  GET /healthz  /readyz  /metrics  /openapi.json

Filters are query parameters: site_id, rollup, bucket, test, population.
The schema is migrated at start.`,
		Example: `  manhattan queryapi --listen :8080 --clickhouse-url clickhouse://localhost:9000/manhattan
  curl 'localhost:8080/v1/tests/superior%20dessert%20preference/results?goals=pie%20accomplished'`,
		Args: cobra.NoArgs,
	}
	flags := keyFlags(cmd, fClickHouse, flagDef{key: "queryapi.listen", name: "listen", usage: "address to serve on"},
		flagDef{key: "queryapi.token", name: "token", usage: "bearer token required on /v1/… (default: none)"})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, nil, config.PartClickHouse, config.PartQueryAPI)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		st, err := openStore(ctx, cfg.ClickHouse.URL, a.log)
		if err != nil {
			return err
		}
		defer st.Close()
		h, err := queryapi.New(queryapi.Options{Store: st, Logger: a.log, Token: cfg.QueryAPI.Token, CORSOrigins: cfg.QueryAPI.CORSOrigins, Rollups: cfg.Engine().Rollups})
		if err != nil {
			return err
		}
		// Bind before saying so: a taken port fails here, not after the log.
		ln, err := listen(ctx, cfg.QueryAPI.Listen)
		if err != nil {
			return fmt.Errorf("queryapi.listen: %w", err)
		}
		a.log.Info("query API listening", "url", "http://"+displayAddr(ln.Addr()))
		return done(ctx, queryapi.ServeListener(ctx, ln, h))
	}
	return cmd
}

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the ClickHouse tables (idempotent)",
		Long: `Create the database and tables (events, counters, visitor_state, goals,
tests) or bring them up to the current schema version, then print the
database used (` + store.DefaultDatabase + ` when the URL names none) and the
migrations applied. Safe to run any number of times; consumer and queryapi
also run it at start.`,
		Example: `  manhattan migrate --clickhouse-url clickhouse://localhost:9000/manhattan`,
		Args:    cobra.NoArgs,
	}
	flags := keyFlags(cmd, fClickHouse)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, nil, config.PartClickHouse)
		if err != nil {
			return err
		}
		return migrate(cmd.Context(), cmd.OutOrStdout(), cfg.ClickHouse.URL)
	}
	return cmd
}

// migrate brings the schema up to date and says what it applied, where.
func migrate(ctx context.Context, out io.Writer, url string) error {
	st, err := store.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("clickhouse.url %s: %w", redact(url), err)
	}
	defer st.Close()
	versioned, _ := st.(interface {
		SchemaVersion(context.Context) (int, error)
	})
	before := 0
	if versioned != nil {
		// Fails on a new database (no schema_version yet): version 0.
		before, _ = versioned.SchemaVersion(ctx)
	}
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", redact(url), err)
	}
	ms, err := schema.Migrations()
	if err != nil {
		return err
	}
	var applied []string
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.Version)
		if m.Version > before {
			applied = append(applied, fmt.Sprintf("%03d_%s", m.Version, m.Name))
		}
	}
	where := fmt.Sprintf("database %q at %s", databaseOf(url), redact(url))
	if len(applied) == 0 {
		fmt.Fprintf(out, "%s: schema already at version %d, nothing to apply\n", where, latest)
		return nil
	}
	fmt.Fprintf(out, "%s: applied %s (schema version %d → %d)\n", where, strings.Join(applied, ", "), before, latest)
	return nil
}

// databaseOf is the database a store URL uses, as store.Open picks it.
func databaseOf(raw string) string {
	db := ""
	if u, err := url.Parse(raw); err == nil {
		switch strings.ToLower(u.Scheme) {
		case "chdb":
			db = u.Query().Get("database")
		case "clickhouse", "tcp":
			if opts, err := clickhouse.ParseDSN("clickhouse://" + strings.SplitN(raw, "://", 2)[1]); err == nil {
				db = opts.Auth.Database
			}
		}
	}
	if db == "" {
		db = store.DefaultDatabase
	}
	return db
}

// openStore opens and migrates the store.
func openStore(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("clickhouse.url %s: %w", redact(url), err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate %s: %w", redact(url), err)
	}
	log.Debug("store ready", "url", redact(url))
	return st, nil
}
