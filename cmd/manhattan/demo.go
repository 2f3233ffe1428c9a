package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/exampleapp"
	"github.com/manhattan-go/manhattan/queryapi/client"
)

// demoOptions shape the simulated A/B test.
type demoOptions struct {
	Visitors int     // people: they load the pixel
	Bots     int     // never load the pixel, so never counted
	CakeRate float64 // chance that a visitor offered cake goes on to /pie
	PieRate  float64 // ... offered pie
	Workers  int     // concurrent simulated browsers
	Seed     uint64
	Timeout  time.Duration // for the consumer to catch up
	KeepData bool
}

func (a *app) demoCmd() *cobra.Command {
	o := demoOptions{Visitors: 3000, Bots: 600, CakeRate: 0.10, PieRate: 0.14, Workers: 16, Seed: 1, Timeout: 60 * time.Second}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a simulated A/B test through the whole pipeline and print its results",
		Long: `Start everything in this process (as ` + "`manhattan dev`" + ` does, in a fresh temporary
directory), then drive the example app over real HTTP: simulated visitors
with their own cookie jars ask for / (cake or pie, by the split test
"superior dessert preference"), load the tracking pixel and some go on to
/pie (the goal "pie accomplished"); visitors offered pie convert more
often. Bots fetch the same pages but never the pixel, so they are never
counted. When the consumer has caught up (the counts the REST API returns
equal what the simulation did), the results table is printed from the REST
API: visitors, conversions, rate and the chance to beat the control.`,
		Example: `  make demo
  manhattan demo --visitors 10000 --bots 2000`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.IntVar(&o.Visitors, "visitors", o.Visitors, "simulated people (they load the pixel)")
	f.IntVar(&o.Bots, "bots", o.Bots, "simulated bots (they never load the pixel)")
	f.Float64Var(&o.CakeRate, "cake-rate", o.CakeRate, "conversion rate of visitors offered cake")
	f.Float64Var(&o.PieRate, "pie-rate", o.PieRate, "conversion rate of visitors offered pie")
	f.IntVar(&o.Workers, "workers", o.Workers, "concurrent simulated browsers")
	f.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the simulated behaviour")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the consumer to catch up")
	f.BoolVar(&o.KeepData, "keep-data", false, "keep the temporary data directory")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.validate(); err != nil {
			return err
		}
		return a.runDemo(cmd.Context(), cmd.OutOrStdout(), o)
	}
	return cmd
}

// validate names the flag that is out of range.
func (o demoOptions) validate() error {
	switch {
	case o.Visitors <= 0:
		return fmt.Errorf("--visitors: must be at least 1, got %d", o.Visitors)
	case o.Bots < 0:
		return fmt.Errorf("--bots: must not be negative, got %d", o.Bots)
	case !(o.CakeRate >= 0 && o.CakeRate <= 1): // also refuses NaN
		return fmt.Errorf("--cake-rate: must be a probability within 0..1, got %v", o.CakeRate)
	case !(o.PieRate >= 0 && o.PieRate <= 1):
		return fmt.Errorf("--pie-rate: must be a probability within 0..1, got %v", o.PieRate)
	case o.Workers <= 0:
		return fmt.Errorf("--workers: must be at least 1, got %d", o.Workers)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout: must be positive (how long to wait for the consumer), got %s", o.Timeout)
	}
	return nil
}

// demoTally is what the simulation did, per population.
type demoTally struct {
	mu          sync.Mutex
	visitors    map[string]int64
	conversions map[string]int64
	requests    atomic.Int64
	done        atomic.Int64
}

func (t *demoTally) add(pop string, converted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.visitors[pop]++
	if converted {
		t.conversions[pop]++
	}
}

func (a *app) runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	dir, err := os.MkdirTemp("", "manhattan-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if o.KeepData {
		defer fmt.Fprintf(out, "data kept in %s (run `manhattan dev --data-dir %s --kafka-port 0` to explore it)\n", dir, dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// The demo is self-contained: a fresh store and broker, its own ports,
	// so neither a config file nor a running `manhattan dev` changes it.
	cfg := config.Default()
	cfg.ClickHouse.URL = "chdb://" + chdbDir(dir)
	cfg.Producer.Secret = devSecret
	cfg.Consumer.FlushInterval = 200 * time.Millisecond
	cfg.QueryAPI.Listen = "127.0.0.1:0"
	cfg.Example.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		return err
	}
	quiet := a.log
	if a.logLevel == "info" {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	start := time.Now()
	fmt.Fprintf(out, "Starting Kafka (kfake), chDB, the consumer, the query API and the example app in this process…\n")
	devCtx, stopDev := context.WithCancel(ctx)
	defer stopDev()
	ready := make(chan devInfo, 1)
	devErr := make(chan error, 1)
	go func() {
		devErr <- runDev(devCtx, cfg, devOptions{DataDir: dir, KafkaPort: 0, ConsumerLog: quiet}, quiet,
			func(i devInfo) { ready <- i })
	}()
	var info devInfo
	select {
	case info = <-ready:
	case err := <-devErr:
		return fmt.Errorf("demo: starting: %w", err)
	case <-ctx.Done():
		return <-devErr
	}
	defer func() {
		stopDev()
		if derr := <-devErr; err == nil && derr != nil {
			err = fmt.Errorf("demo: stopping: %w", derr)
		}
	}()
	fmt.Fprintf(out, "  ready in %s: example app %s, query API %s\n\n", time.Since(start).Round(time.Millisecond), info.ExampleURL, info.APIURL)

	tally := &demoTally{visitors: map[string]int64{}, conversions: map[string]int64{}}
	fmt.Fprintf(out, "Simulating %d visitors and %d bots against %s (split test %q, goal %q)…\n",
		o.Visitors, o.Bots, info.ExampleURL, exampleapp.Test, exampleapp.Goal)
	if err := simulate(ctx, out, info.ExampleURL, o, tally); err != nil {
		return err
	}

	fmt.Fprintf(out, "Waiting for the consumer to catch up…\n")
	res, goal, err := waitCaughtUp(ctx, out, info.APIURL, o, tally)
	if err != nil {
		return err
	}
	printResults(out, res, goal, o, tally)
	fmt.Fprintf(out, "\nDone in %s. Explore it yourself: `manhattan dev`, then open http://localhost:8000/ and http://localhost:8080/v1/tests\n",
		time.Since(start).Round(100*time.Millisecond))
	return nil
}

// simulate drives the example app like browsers would.
func simulate(ctx context.Context, out io.Writer, base string, o demoOptions, t *demoTally) error {
	transport := &http.Transport{MaxIdleConnsPerHost: o.Workers, MaxIdleConns: o.Workers}
	defer transport.CloseIdleConnections()
	total := o.Visitors + o.Bots
	// Bots are spread among the people; each browser's choices come from its
	// own seeded generator, so a run's behaviour is reproducible.
	order := rand.New(rand.NewPCG(o.Seed, 0)).Perm(total)
	jobs := make(chan int)
	simCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() {
			for i := range jobs {
				rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
				var err error
				if i < o.Visitors {
					err = person(simCtx, transport, base, rng, o, t)
				} else {
					err = bot(simCtx, transport, base, rng, t)
				}
				if err != nil {
					cancel(err)
				}
				t.done.Add(1)
			}
		})
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		showProgress(simCtx, out, total, t)
	}()
	func() {
		defer close(jobs)
		for _, i := range order {
			select {
			case jobs <- i:
			case <-simCtx.Done():
				return
			}
		}
	}()
	wg.Wait()
	cause := context.Cause(simCtx)
	cancel(nil)
	<-progressDone
	if cause != nil {
		return fmt.Errorf("demo: simulation: %w", cause)
	}
	fmt.Fprintf(out, "  %d browsers, %d requests\n", total, t.requests.Load())
	return nil
}

func showProgress(ctx context.Context, out io.Writer, total int, t *demoTally) {
	tty := isTerminal(out)
	every := 2 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintf(out, "\r%60s\r", "")
			}
			return
		case <-tick.C:
			line := fmt.Sprintf("  %d/%d browsers, %d requests", t.done.Load(), total, t.requests.Load())
			if tty {
				fmt.Fprintf(out, "\r%-60s", line)
			} else {
				fmt.Fprintln(out, line)
			}
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}

// person is a browser with cookies that loads the pixel.
func person(ctx context.Context, tr http.RoundTripper, base string, rng *rand.Rand, o demoOptions, t *demoTally) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
	ua := userAgents[rng.IntN(len(userAgents))]
	body, err := fetch(ctx, c, ua, base+"/", t)
	if err != nil {
		return err
	}
	dessert, ok := between(body, `<h1 id="dessert">`, `</h1>`)
	if !ok {
		return fmt.Errorf("GET /: no dessert in the page:\n%s", body)
	}
	pop, rate := "False", o.PieRate
	if dessert == "cake" {
		pop, rate = "True", o.CakeRate
	}
	if !strings.Contains(body, `src="/vpixel.gif"`) {
		return errors.New("GET /: the tracking pixel was not injected")
	}
	if _, err := fetch(ctx, c, ua, base+"/vpixel.gif", t); err != nil {
		return err
	}
	if rng.Float64() < 0.3 { // a second look at the offer
		if _, err := fetch(ctx, c, ua, base+"/", t); err != nil {
			return err
		}
	}
	converted := rng.Float64() < rate
	if converted {
		for range 1 + rng.IntN(2) { // a goal counts once per visitor, however often reached
			if _, err := fetch(ctx, c, ua, base+"/pie", t); err != nil {
				return err
			}
		}
	}
	t.add(pop, converted)
	return nil
}

// bot fetches pages, some with cookies, but never the pixel.
func bot(ctx context.Context, tr http.RoundTripper, base string, rng *rand.Rand, t *demoTally) error {
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if rng.IntN(2) == 0 {
		c.Jar, _ = cookiejar.New(nil)
	}
	const ua = "Mozilla/5.0 (compatible; ExampleBot/2.1; +http://bot.example/)"
	if _, err := fetch(ctx, c, ua, base+"/", t); err != nil {
		return err
	}
	if rng.IntN(2) == 0 {
		if _, err := fetch(ctx, c, ua, base+"/pie", t); err != nil {
			return err
		}
	}
	return nil
}

func fetch(ctx context.Context, c *http.Client, ua, url string, t *demoTally) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", ua)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	t.requests.Add(1)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

func between(s, start, end string) (string, bool) {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return "", false
	}
	v, _, ok := strings.Cut(rest, end)
	return v, ok
}

// waitCaughtUp polls the REST API until it reports exactly what the
// simulation did.
func waitCaughtUp(ctx context.Context, out io.Writer, apiURL string, o demoOptions, t *demoTally) (client.Results, client.GoalCount, error) {
	c := client.New(apiURL)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	var last string
	for {
		res, goal, err := fetchResults(ctx, c)
		if err == nil {
			mismatch := compare(res, goal, t)
			if mismatch == "" {
				fmt.Fprintf(out, "  caught up after %s: the API reports exactly what the simulation did\n\n", time.Since(start).Round(10*time.Millisecond))
				return res, goal, nil
			}
			last = mismatch
		} else if !client.IsNotFound(err) {
			last = err.Error()
		} else {
			last = "no results yet"
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return res, goal, fmt.Errorf("demo: the consumer did not catch up within %s: %s", o.Timeout, last)
			}
			return res, goal, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// demoControl is the control population the demo asks for: True (cake), the
// quick start's original branch. Without control= the API would take the
// first population in sorted order, False.
const demoControl = "True"

func fetchResults(ctx context.Context, c *client.Client) (client.Results, client.GoalCount, error) {
	res, err := c.Results(ctx, exampleapp.Test, []string{exampleapp.Goal}, client.ResultsOptions{
		Control: demoControl,
		Weights: map[string]float64{"True": 1, "False": 1},
	})
	if err != nil {
		return res, client.GoalCount{}, err
	}
	goal, err := c.Goal(ctx, exampleapp.Goal, client.Filter{})
	return res, goal, err
}

// compare returns "" when the API's counts equal the tally.
func compare(res client.Results, goal client.GoalCount, t *demoTally) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var totalConv int64
	for _, n := range t.conversions {
		totalConv += n
	}
	seen := map[string]bool{}
	for _, p := range res.Populations {
		seen[p.Population] = true
		if len(p.Stats.Goals) == 0 {
			return "no goal statistics yet"
		}
		if p.Impressions != t.visitors[p.Population] || p.Stats.Goals[0].Conversions != t.conversions[p.Population] {
			return fmt.Sprintf("population %s: %d visitors, %d conversions so far (want %d, %d)",
				p.Population, p.Impressions, p.Stats.Goals[0].Conversions, t.visitors[p.Population], t.conversions[p.Population])
		}
	}
	for pop := range t.visitors {
		if !seen[pop] {
			return "population " + pop + " not counted yet"
		}
	}
	if goal.Count != totalConv {
		return fmt.Sprintf("goal %q: %d visitors so far (want %d)", exampleapp.Goal, goal.Count, totalConv)
	}
	return ""
}

func printResults(out io.Writer, res client.Results, goal client.GoalCount, o demoOptions, t *demoTally) {
	fmt.Fprintf(out, "Results of the split test %q, goal %q, from\nGET /v1/tests/…/results?control=%s (%s is the control; without control= the API\ntakes the first population in sorted order, here %s):\n\n",
		res.Test, exampleapp.Goal, demoControl, exampleapp.Dessert(demoControl), firstPopulation(res))
	// The control first, then the others in the API's order.
	pops := slices.Clone(res.Populations)
	slices.SortStableFunc(pops, func(a, b client.PopulationResult) int {
		return cmp.Compare(b2i(!a.Stats.Control), b2i(!b.Stats.Control))
	})
	const row = "  %-10s  %-7s  %8s  %11s  %7s  %15s  %s\n"
	fmt.Fprintf(out, row, "population", "dessert", "visitors", "conversions", "rate", "95% interval", "chance to beat control")
	for _, p := range pops {
		g := p.Stats.Goals[0]
		beat := "(control)"
		if !p.Stats.Control {
			beat = pct(g.ChanceToBeatControl, 1)
		}
		interval := "–"
		if g.CILow != nil && g.CIHigh != nil {
			interval = pct(g.CILow, 1) + " – " + pct(g.CIHigh, 1)
		}
		fmt.Fprintf(out, row, p.Population, exampleapp.Dessert(p.Population),
			strconv.FormatInt(p.Impressions, 10), strconv.FormatInt(g.Conversions, 10), pct(g.ConversionRate, 2), interval, beat)
	}
	var people int64
	for _, n := range t.visitors {
		people += n
	}
	fmt.Fprintf(out, "\n%d visitors reached %q in all; the %d bots (no pixel) were left out of every count.\n",
		goal.Count, exampleapp.Goal, o.Bots)
	fmt.Fprintf(out, "Simulated conversion rates: cake %.0f%%, pie %.0f%%; %d people in all.\n", o.CakeRate*100, o.PieRate*100, people)
	if res.SRM != nil && res.SRM.PValue != nil {
		fmt.Fprintf(out, "Sample ratio check (50/50 expected): p = %.3f\n", *res.SRM.PValue)
	}
}

// firstPopulation is the API's default control: the first in sorted order.
func firstPopulation(res client.Results) string {
	names := make([]string, 0, len(res.Populations))
	for _, p := range res.Populations {
		names = append(names, p.Population)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return names[0]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func pct(f *float64, decimals int) string {
	if f == nil {
		return "–"
	}
	return fmt.Sprintf("%.*f%%", decimals, *f*100)
}
