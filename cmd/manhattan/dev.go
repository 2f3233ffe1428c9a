package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/queryapi"
)

// Defaults of `manhattan dev`.
const (
	DefaultDevDataDir   = ".cache/manhattan"
	DefaultDevKafkaPort = 19092 // not 9092, so a real Kafka (make services-up) can run beside it
	devPartitions       = 4
	devFlushInterval    = 500 * time.Millisecond
)

// devOptions configure runDev.
type devOptions struct {
	DataDir   string // kfake keeps its log in DataDir/kafka
	KafkaPort int    // 0: any free port
	// ConsumerLog receives the consumer's logs (the demo keeps them quiet).
	ConsumerLog *slog.Logger
}

// devInfo tells where the parts of a running dev stack are.
type devInfo struct {
	Brokers    []string
	StoreURL   string
	APIURL     string // http://host:port of the query API
	ExampleURL string // http://host:port of the example app
}

func (a *app) devCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: Kafka (kfake), chDB, consumer, query API, example app",
		Long: `Run the whole pipeline in one process, with nothing to install:

  - a Kafka-protocol broker (franz-go's kfake) on 127.0.0.1:` + strconv.Itoa(DefaultDevKafkaPort) + `, its log kept
    in DATA-DIR/kafka
  - ClickHouse in-process (chDB) in DATA-DIR/chdb, unless clickhouse.url says
    otherwise (libchdb.so from .cache/chdb/ or CHDB_LIB_PATH; see make chdb)
  - the consumer, the query API (queryapi.listen) and the example app
    (example.listen)

Data survives restarts; delete DATA-DIR to start over (the broker's log and
the tables belong together, so delete both or neither). Stop with Ctrl-C.`,
		Example: `  manhattan dev
  open http://localhost:8000/   then   curl localhost:8080/v1/tests`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", DefaultDevDataDir, "directory for the broker's log and chDB's data")
	cmd.Flags().IntVar(&o.KafkaPort, "kafka-port", DefaultDevKafkaPort, "port of the in-process Kafka broker (0: any free port)")
	dd := devDefaults(DefaultDevDataDir, DefaultDevKafkaPort)
	ch, flush := fClickHouse, fFlushInterval
	ch.usage = "ClickHouse: chdb:///dir or clickhouse://host:9000/db; by default chDB in DATA-DIR/chdb"
	ch.def = ""
	flush.def = devFlushInterval
	flags := keyFlags(cmd, fTopic, fGroup, ch, fSecret, flush,
		flagDef{key: "queryapi.listen", name: "api-listen", usage: "address of the query API", def: dd["queryapi.listen"]},
		flagDef{key: "example.listen", name: "example-listen", usage: "address of the example app", def: dd["example.listen"]})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, devDefaults(o.DataDir, o.KafkaPort),
			config.PartClickHouse, config.PartConsumer, config.PartQueryAPI, config.PartProducer, config.PartExample)
		if err != nil {
			return err
		}
		if cfg.Producer.Secret == devSecret {
			a.log.Warn("using the development cookie secret; set producer.secret for anything real")
		}
		o.ConsumerLog = a.log
		out := cmd.OutOrStdout()
		err = runDev(cmd.Context(), cfg, o, a.log, func(info devInfo) {
			fmt.Fprintf(out, `
Manhattan dev is running (Ctrl-C to stop):
  example app   %s/        (cake or pie; %s/pie records the goal)
  query API     %s/v1/tests
  results       %s/v1/tests/superior%%20dessert%%20preference/results?goals=pie%%20accomplished
  Kafka         %v  topic %s
  ClickHouse    %s

`, info.ExampleURL, info.ExampleURL, info.APIURL, info.APIURL, info.Brokers, cfg.Kafka.Topic, info.StoreURL)
		})
		if err == nil {
			a.log.Info("manhattan dev stopped; data kept in " + o.DataDir)
		}
		return err
	}
	return cmd
}

// devSecret signs cookies in dev and demo unless producer.secret is set.
const devSecret = "manhattan-dev-secret-not-for-production"

// devDefaults are the defaults dev overrides; file, environment and flags
// still win.
func devDefaults(dataDir string, kafkaPort int) map[string]any {
	return map[string]any{
		"clickhouse.url":          "chdb://" + filepath.ToSlash(chdbDir(dataDir)),
		"producer.secret":         devSecret,
		"consumer.flush_interval": devFlushInterval.String(),
		"queryapi.listen":         "127.0.0.1:8080",
		"example.listen":          "127.0.0.1:8000",
		"kafka.brokers":           []string{"127.0.0.1:" + strconv.Itoa(kafkaPort)},
	}
}

// chdbDir is where dev keeps chDB's data; chdb://<relative> needs a "./"
// so that the first path element is not read as a host name.
func chdbDir(dataDir string) string {
	d := filepath.Join(dataDir, "chdb")
	if !filepath.IsAbs(d) {
		d = "./" + d
	}
	return d
}

// runDev runs the stack until ctx ends and then stops it in dependency
// order: the app (flushing its events to the broker), the consumer (flushing
// to the store), the query API, the store and the broker. ready is called
// once everything serves.
func runDev(ctx context.Context, cfg *config.Config, o devOptions, log *slog.Logger, ready func(devInfo)) (err error) {
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	cluster, err := kfake.NewCluster(
		kfake.Ports(o.KafkaPort),
		kfake.DataDir(filepath.Join(o.DataDir, "kafka")),
		kfake.SeedTopics(devPartitions, cfg.Kafka.Topic),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(devPartitions),
	)
	if err != nil {
		return fmt.Errorf("in-process Kafka on port %d: %w (is another `manhattan dev` running? try --kafka-port)", o.KafkaPort, err)
	}
	defer cluster.Close()
	cfg.Kafka.Brokers = cluster.ListenAddrs()

	st, err := openStore(ctx, cfg.ClickHouse.URL, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing the store: %w", cerr)
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	apiLn, err := listen(ctx, cfg.QueryAPI.Listen)
	if err != nil {
		return fmt.Errorf("queryapi.listen: %w", err)
	}
	appLn, err := listen(ctx, cfg.Example.Listen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("example.listen: %w", err)
	}
	api, err := queryapi.New(queryapi.Options{Store: st, Logger: o.ConsumerLog, Registerer: reg, Gatherer: reg, Rollups: cfg.Engine().Rollups})
	if err != nil {
		apiLn.Close()
		appLn.Close()
		return err
	}
	appHandler, closeApp, err := newExampleApp(cfg, log, reg)
	if err != nil {
		apiLn.Close()
		appLn.Close()
		return err
	}

	// Each part gets its own context so that shutdown can go in order.
	base := context.WithoutCancel(ctx)
	appCtx, stopApp := context.WithCancel(base)
	conCtx, stopConsumer := context.WithCancel(base)
	apiCtx, stopAPI := context.WithCancel(base)
	defer stopApp()
	defer stopConsumer()
	defer stopAPI()

	type result struct {
		part string
		err  error
	}
	results := make(chan result, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		results <- result{"example app", serveHTTP(appCtx, appLn, appHandler)}
	})
	wg.Go(func() {
		opts := consumerOptions(cfg, st, o.ConsumerLog)
		opts.Registerer = reg
		opts.ProgressInterval = -1
		results <- result{"consumer", consumer.Run(conCtx, opts)}
	})
	wg.Go(func() {
		results <- result{"query API", queryapi.ServeListener(apiCtx, apiLn, api)}
	})

	info := devInfo{
		Brokers:    cfg.Kafka.Brokers,
		StoreURL:   redact(cfg.ClickHouse.URL),
		APIURL:     "http://" + displayAddr(apiLn.Addr()),
		ExampleURL: "http://" + displayAddr(appLn.Addr()),
	}
	// The listeners are bound, so clients can connect from here on.
	if ready != nil {
		ready(info)
	}

	var errs []error
	select {
	case <-ctx.Done():
	case r := <-results:
		errs = append(errs, fmt.Errorf("%s stopped: %w", r.part, orStopped(r.err)))
	}
	stopApp()
	if cerr := closeApp(); cerr != nil {
		errs = append(errs, cerr)
	}
	stopConsumer()
	stopAPI()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", r.part, r.err))
		}
	}
	return errors.Join(errs...)
}

func orStopped(err error) error {
	if err == nil {
		return errors.New("unexpectedly")
	}
	return err
}
