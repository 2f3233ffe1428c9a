// Package queryapi is the REST service over the store: goals, tests, A/B
// results with statistics, time series, health, metrics and its OpenAPI
// document. See openapi.json for the exact contract; the wire types live in
// queryapi/client.
//
//	h, err := queryapi.New(queryapi.Options{Store: st, Token: "secret", CORSOrigins: []string{"https://dash.example"}})
//	err = queryapi.Serve(ctx, ":8080", h) // returns after a graceful shutdown when ctx ends
package queryapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// Options configure the handler. Only Store is required.
type Options struct {
	Store store.Store
	// Token, when set, is required as "Authorization: Bearer <token>" (scheme
	// case-insensitive) on /v1/…
	// (health, metrics and the OpenAPI document stay open for probes).
	Token string
	// CORSOrigins are the origins allowed to call from a browser; "*" allows any.
	CORSOrigins []string
	// Logger receives one line per request; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the request metrics and Gatherer is served on
	// /metrics. Both nil: a private registry with Go and process collectors.
	// Only Registerer: it is also the Gatherer when it is one (a
	// *prometheus.Registry), else prometheus.DefaultGatherer.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Timeout bounds each request's store work; 0 means 10 s.
	Timeout time.Duration
	// Concurrency bounds the store queries one request runs in parallel; 0 means 4.
	Concurrency int
	// MetaTTL is how long found goal and test metadata is cached (value
	// type, populations); 0 means 10 s, negative disables the cache.
	// /v1/tests and /v1/tests/{test} always read fresh metadata.
	MetaTTL time.Duration
	// Rollups are the consumer's configured rollups (config consumer.rollups).
	// With them a rollup name not configured, or a bucket, from or to not in
	// its kind's format, answers 400 instead of a silent empty result, and an
	// omitted rollup (meaning "all") needs a rollup named "all". Empty means
	// the configuration is unknown: any rollup name and bucket is passed to
	// the store as before (only from > to is refused).
	Rollups []reconcile.Rollup
}

type server struct {
	st      store.Store
	log     *slog.Logger
	timeout time.Duration
	par     int
	metrics *metrics
	rollups rollups
	goalsC  *metaCache[reconcile.GoalMeta]
	testsC  *metaCache[reconcile.TestMeta]
}

// New returns the query API handler.
func New(o Options) (http.Handler, error) {
	if o.Store == nil {
		return nil, errors.New("queryapi: Options.Store is required")
	}
	rs, err := newRollups(o.Rollups)
	if err != nil {
		return nil, err
	}
	s := &server{st: o.Store, log: o.Logger, timeout: o.Timeout, par: o.Concurrency, rollups: rs}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.par <= 0 {
		s.par = 4
	}
	ttl := o.MetaTTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	s.goalsC, s.testsC = newMetaCache[reconcile.GoalMeta](ttl), newMetaCache[reconcile.TestMeta](ttl)
	reg, gat := o.Registerer, o.Gatherer
	if reg == nil && gat == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gat = r, r
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // metrics nowhere gathered: keep them private
	}
	if gat == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gat = g
		} else {
			gat = prometheus.DefaultGatherer
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m

	r := chi.NewRouter()
	r.Use(rawPathRouting, s.recoverer, s.observe, cors(o.CORSOrigins), middleware.Compress(5, "application/json", "text/plain"))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.URL.EscapedPath())
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.readyz)
	r.Get("/openapi.json", serveOpenAPI)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gat, promhttp.HandlerOpts{}))
	r.Route("/v1", func(r chi.Router) {
		r.Use(bearer(o.Token), s.withTimeout)
		r.Get("/goals", jsonHandler(s, s.goals))
		r.Get("/goals/{goal}", jsonHandler(s, s.goalCount))
		r.Get("/goals/{goal}/series", jsonHandler(s, s.seriesOf))
		r.Get("/tests", jsonHandler(s, s.tests))
		r.Get("/tests/{test}", jsonHandler(s, s.testDetail))
		r.Get("/tests/{test}/results", jsonHandler(s, s.resultsOf))
	})
	return r, nil
}

// Serve serves h on listen until ctx ends, then shuts down gracefully
// (in-flight requests get up to 10 s).
func Serve(ctx context.Context, listen string, h http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("queryapi: listen %s: %w", listen, err)
	}
	return ServeListener(ctx, ln, h)
}

// ServeListener is Serve on an open listener (closed on return).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("queryapi: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("queryapi: shutdown: %w", err)
	}
	return nil
}
