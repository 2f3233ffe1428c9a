package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/queryapi"
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
		return done(ctx, consumer.Run(ctx, opts))
	}
	return cmd
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
		h, err := queryapi.New(queryapi.Options{Store: st, Logger: a.log, Token: cfg.QueryAPI.Token, CORSOrigins: cfg.QueryAPI.CORSOrigins})
		if err != nil {
			return err
		}
		a.log.Info("query API listening", "addr", cfg.QueryAPI.Listen)
		return done(ctx, queryapi.Serve(ctx, cfg.QueryAPI.Listen, h))
	}
	return cmd
}

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the ClickHouse tables (idempotent)",
		Long: `Create the database and tables (events, counters, visitor_state, goals,
tests) or bring them up to the current schema version. Safe to run any number
of times; consumer and queryapi also run it at start.`,
		Example: `  manhattan migrate --clickhouse-url clickhouse://localhost:9000/manhattan`,
		Args:    cobra.NoArgs,
	}
	flags := keyFlags(cmd, fClickHouse)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, nil, config.PartClickHouse)
		if err != nil {
			return err
		}
		st, err := openStore(cmd.Context(), cfg.ClickHouse.URL, a.log)
		if err != nil {
			return err
		}
		defer st.Close()
		fmt.Fprintf(cmd.OutOrStdout(), "schema up to date at %s\n", redact(cfg.ClickHouse.URL))
		return nil
	}
	return cmd
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
