package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/exampleapp"
	"github.com/manhattan-go/manhattan/producer"
)

func (a *app) exampleAppCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "example-app",
		Short: "Serve the quick start's hello app (cake or pie) behind the producer middleware",
		Long: `Serve the original quick start's app, written in Go:

  /      answers "cake" when Split("superior dessert preference") is True,
         "pie" otherwise
  /pie   records the goal "pie accomplished"

Every request records a page view; the HTML pages get the tracking pixel
(` + config.DefaultPixelPath + `) that tells people from bots. Events go to the Kafka
topic; run the consumer and the query API to see results.`,
		Example: `  MANHATTAN_PRODUCER_SECRET=s3krit manhattan example-app --brokers localhost:9092
  curl -c jar -b jar localhost:8000/ ; curl -c jar -b jar localhost:8000/vpixel.gif ; curl -c jar -b jar localhost:8000/pie`,
		Args: cobra.NoArgs,
	}
	var metricsAddr string
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", "", "serve the producer's Prometheus metrics on this address's /metrics (default: off)")
	flags := keyFlags(cmd, fBrokers, fTopic, fSecret, fSpoolDir,
		flagDef{key: "example.listen", name: "listen", usage: "address to serve the example app on"})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.load(flags, nil, config.PartKafka, config.PartProducer, config.PartExample)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		reg, stopMetrics, err := metricsServer(ctx, metricsAddr, a.log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		h, closeApp, err := newExampleApp(cfg, a.log, reg)
		if err != nil {
			return err
		}
		ln, err := listen(ctx, cfg.Example.Listen)
		if err != nil {
			return fmt.Errorf("example.listen: %w", err)
		}
		a.log.Info("example app listening", "url", "http://"+displayAddr(ln.Addr()))
		err = serveHTTP(ctx, ln, h)
		if cerr := closeApp(); err == nil {
			err = cerr
		}
		return err
	}
	return cmd
}

// newExampleApp builds the example app behind the middleware and its Kafka
// writer; closeApp flushes the writer.
func newExampleApp(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (h http.Handler, closeApp func() error, err error) {
	w, err := producer.NewWriter(producer.WriterOptions{
		Brokers:                cfg.Kafka.Brokers,
		Topic:                  cfg.Kafka.Topic,
		SpoolDir:               cfg.Producer.SpoolDir,
		AllowAutoTopicCreation: true,
		Registerer:             reg,
		Logger:                 log,
	})
	if err != nil {
		return nil, nil, err
	}
	mw, err := producer.New(producer.Options{
		Secret:     cfg.Producer.Secret,
		Sink:       w,
		CookieName: cfg.Producer.CookieName,
		PixelPath:  cfg.Producer.PixelPath,
		HostMap:    cfg.Producer.HostMap,
		Logger:     log,

		SplitSeeding: producer.SplitSeeding(cfg.Producer.SplitSeeding),
	})
	if err != nil {
		w.Close(context.Background())
		return nil, nil, err
	}
	closeApp = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			return fmt.Errorf("example app: flushing events: %w", err)
		}
		return nil
	}
	return mw.Handler(exampleapp.Handler()), closeApp, nil
}

func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	return err
}

// displayAddr turns a listener address into something a browser opens.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
