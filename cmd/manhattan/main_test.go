package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/exampleapp"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/queryapi/client"
)

// run executes the binary's root command in-process.
func run(ctx context.Context, t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	var out lockedBuffer // logs go here too, from any goroutine
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"consumer", "queryapi", "migrate", "import", "dev", "demo", "example-app", "MANHATTAN_KAFKA_BROKERS", "producer.host_map"}},
		{[]string{"consumer", "--help"}, []string{"--brokers", "--clickhouse-url", "--flush-interval", "MANHATTAN_CONSUMER_FLUSH_INTERVAL", "--config"}},
		{[]string{"queryapi", "--help"}, []string{"--listen", "/v1/tests/{test}/results"}},
		{[]string{"migrate", "--help"}, []string{"--clickhouse-url"}},
		{[]string{"import", "--help"}, []string{"--format", "manhattan-log", "--dry-run", "twice", "--resume-from", ".gz"}},
		{[]string{"example-app", "--help"}, []string{"--secret", "superior dessert preference", "/pie"}},
		{[]string{"dev", "--help"}, []string{"--data-dir", "--kafka-port", "kfake", "chDB"}},
		{[]string{"demo", "--help"}, []string{"--visitors", "--bots", "bots"}},
	} {
		out, err := run(context.Background(), t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: help lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestBadConfigFailsAtStart: every command refuses bad configuration before
// connecting to anything, naming the key.
func TestBadConfigFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badFile, []byte("consumer:\n  rollups:\n    - {name: d, kind: day, timezone: Mars/Olympus_Mons}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	typoFile := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typoFile, []byte("kafka:\n  brokerz: [a:1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"consumer", "--flush-interval", "soon"}, "flush-interval"},
		{map[string]string{"MANHATTAN_CONSUMER_FLUSH_INTERVAL": "soon"}, []string{"consumer"}, "consumer.flush_interval"},
		{map[string]string{"MANHATTAN_KAFKA_BROKERS": ""}, []string{"consumer"}, "kafka.brokers"},
		{nil, []string{"consumer", "--clickhouse-url", "mysql://db"}, "clickhouse.url: unsupported scheme"},
		{nil, []string{"consumer", "--config", badFile}, "consumer.rollups[0].timezone"},
		{nil, []string{"consumer", "--config", typoFile}, "brokerz"},
		{nil, []string{"consumer", "--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{map[string]string{"MANHATTAN_CONSUMER_COMPLEX_GOALS": "[{name: x, exclude: [y]}]"}, []string{"consumer"}, "consumer.complex_goals[0].include"},
		{map[string]string{"MANHATTAN_PRODUCER_SECRET": ""}, []string{"example-app"}, "producer.secret"},
		{nil, []string{"queryapi", "--listen", "8080"}, "queryapi.listen"},
		{nil, []string{"import", "--format", "csv", "x"}, "--format"},
		{nil, []string{"import", "--format", "manhattan-log", "--brokers", "", "x"}, "kafka.brokers"},
		{nil, []string{"consumer", "--log-level", "loud"}, "--log-level"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, err := run(context.Background(), t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want it to name %q", tc.env, tc.args, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

func TestImportDryRun(t *testing.T) {
	out, err := run(context.Background(), t, "import", "--format", "manhattan-log", "--dry-run", "../../logimport/testdata/manhattan.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"importing 4 file(s)",
		"4 file(s), 21 line(s): 12 record(s) parsed (dry run, nothing produced) (page 2, pixel 3, goal 5, split 2), 9 skipped",
		"manhattan.log.1357009200.gz:2: version", // gzip hours are read
		"skip ../../logimport/testdata/manhattan.log.1357002000:5: version \"garbage\"",
		"manhattan.log.1357002000:9: event: unknown type \"click\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestImportStopsAndResumes: with Kafka unreachable nothing is reported as
// produced and the error names where to resume; resuming there against the
// real broker produces exactly the rest.
func TestImportStopsAndResumes(t *testing.T) {
	const log = "../../logimport/testdata/manhattan.log"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(ctx, t, "import", "--format", "manhattan-log", "--brokers", "127.0.0.1:1", "--topic", "t", log)
	if err == nil {
		t.Fatalf("import to a dead broker succeeded:\n%s", out)
	}
	if !strings.Contains(out, "0 record(s) produced (acknowledged by Kafka) before the import stopped") || strings.Contains(out, "12 record(s) produced") {
		t.Errorf("output claims records were produced:\n%s", out)
	}
	if want := "--resume-from " + log + ".999999999:1"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}

	brokers := testenv.KafkaBrokers(t)
	topic := consumertest.Name("import")
	consumertest.CreateTopic(t, brokers, topic, 1)
	out, err = run(ctx, t, "import", "--format", "manhattan-log", "--brokers", strings.Join(brokers, ","), "--topic", topic,
		"--batch", "3", "--resume-from", log+".1357005600:2", log)
	if err != nil {
		t.Fatalf("resumed import: %v\n%s", err, out)
	}
	// From line 2 of .1357005600: its goal, then the gzip hour's 2 records.
	if !strings.Contains(out, "2 file(s), 4 line(s): 3 record(s) produced") {
		t.Errorf("resumed import output:\n%s", out)
	}
	var n int64
	for _, end := range consumertest.Ends(t, brokers, topic) {
		n += end
	}
	if n != 3 {
		t.Fatalf("topic holds %d records, want the 3 from the resume point on", n)
	}
	if _, err := run(ctx, t, "import", "--format", "manhattan-log", "--dry-run", "--resume-from", "nowhere", log); err == nil || !strings.Contains(err.Error(), "--resume-from") {
		t.Errorf("bad --resume-from: err = %v", err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCommandsPipeline runs the commands as an operator would, against the
// real services: consumer, queryapi and example-app from one config file
// (plus the environment and flags), `import` of an original log into the
// same topic, then exact counts over REST.
func TestCommandsPipeline(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chURL := testenv.ClickHouseURL(t)
	topic := consumertest.Name("cli")
	consumertest.CreateTopic(t, brokers, topic, 3)
	u, err := url.Parse(chURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + consumertest.Name("cli")

	cfgFile := filepath.Join(t.TempDir(), "manhattan.yaml")
	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
  topic: %s
  group: %s
clickhouse:
  url: %s
consumer:
  flush_interval: 200ms
  rollups:
    - {name: all, kind: all}
    - {name: daily, kind: day, timezone: Europe/Berlin}
    - {name: browsers, kind: browser}
`, strings.Join(brokers, ", "), topic, topic, u.String())
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MANHATTAN_PRODUCER_SECRET", "cli-test-secret")
	t.Setenv("MANHATTAN_QUERYAPI_TOKEN", "cli-test-token")
	apiAddr, appAddr, conMetrics, appMetrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmdCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := map[string]*error{}
	for _, args := range [][]string{
		{"consumer", "--config", cfgFile, "--log-level", "warn", "--metrics-listen", conMetrics},
		{"queryapi", "--config", cfgFile, "--listen", apiAddr, "--log-level", "warn"},
		{"example-app", "--config", cfgFile, "--listen", appAddr, "--log-level", "warn", "--metrics-listen", appMetrics},
	} {
		var err error
		errs[args[0]] = &err
		wg.Go(func() { _, err = run(cmdCtx, t, args...) })
	}
	defer func() {
		stop()
		wg.Wait()
		for name, err := range errs {
			if *err != nil {
				t.Errorf("%s did not stop cleanly: %v", name, *err)
			}
		}
	}()
	waitListening(t, apiAddr, 30*time.Second)
	waitListening(t, appAddr, 30*time.Second)

	out, err := run(ctx, t, "import", "--format", "manhattan-log", "--config", cfgFile, "../../logimport/testdata/manhattan.log")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "12 record(s) produced") {
		t.Fatalf("import output:\n%s", out)
	}

	// People (pixel) and bots (no pixel) through the example app.
	const people, bots = 24, 8
	visitors, conversions := map[string]int64{}, map[string]int64{}
	for i := range people + bots {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		body := httpGet(t, c, "http://"+appAddr+"/")
		pop := "False"
		if strings.Contains(body, `id="dessert">cake<`) {
			pop = "True"
		}
		if i < people {
			httpGet(t, c, "http://"+appAddr+"/vpixel.gif")
			visitors[pop]++
		}
		if i%2 == 0 {
			httpGet(t, c, "http://"+appAddr+"/pie")
			if i < people {
				conversions[pop]++
			}
		}
	}

	// From the imported log only vid1 is a person (it loaded the pixel): a
	// page view, "pie accomplished" on site 2 and then population True (so
	// the goal, reached before the split, is no conversion of the test).
	wantConv := conversions["True"] + conversions["False"] + 1
	visitors["True"]++

	api := client.New("http://"+apiAddr, client.WithToken("cli-test-token"))
	if resp, err := http.Get("http://" + apiAddr + "/v1/tests"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/tests without the token: %s, want 401 (queryapi.token)", resp.Status)
	}
	var last error
	deadline := time.Now().Add(2 * time.Minute)
	for {
		last = func() error {
			res, err := api.Results(ctx, exampleapp.Test, []string{exampleapp.Goal}, client.ResultsOptions{})
			if err != nil {
				return err
			}
			got := map[string][2]int64{}
			for _, p := range res.Populations {
				got[p.Population] = [2]int64{p.Impressions, p.Stats.Goals[0].Conversions}
			}
			for _, pop := range []string{"True", "False"} {
				if want := [2]int64{visitors[pop], conversions[pop]}; got[pop] != want {
					return fmt.Errorf("population %s: (visitors, conversions) = %v, want %v", pop, got[pop], want)
				}
			}
			g, err := api.Goal(ctx, exampleapp.Goal, client.Filter{})
			if err != nil {
				return err
			}
			if g.Count != wantConv {
				return fmt.Errorf("goal count %d, want %d", g.Count, wantConv)
			}
			site2 := int64(2)
			g2, err := api.Goal(ctx, exampleapp.Goal, client.Filter{Site: &site2})
			if err != nil {
				return err
			}
			if g2.Count != 1 {
				return fmt.Errorf("imported goal on site 2: count %d, want 1", g2.Count)
			}
			pv, err := api.Goal(ctx, "viewed page", client.Filter{})
			if err != nil {
				return err
			}
			if pv.Count != people+1 {
				return fmt.Errorf("viewed page: %d, want %d", pv.Count, people+1)
			}
			return nil
		}()
		if last == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts never matched: %v", last)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The API knows the configured rollups (consumer.rollups).
	if _, err := api.Goal(ctx, exampleapp.Goal, client.Filter{Rollup: "nope"}); err == nil || !strings.Contains(err.Error(), "not a configured rollup") {
		t.Fatalf("goal with rollup=nope: %v, want a 400 naming the rollup", err)
	}
	if _, err := api.Goal(ctx, exampleapp.Goal, client.Filter{Rollup: "daily", Bucket: "2025-12-01"}); err != nil {
		t.Fatalf("goal with the configured rollup daily: %v", err)
	}
	// Metrics of the consumer and of the app's Kafka writer.
	hc := &http.Client{Timeout: 10 * time.Second}
	if m := httpGet(t, hc, "http://"+conMetrics+"/metrics"); !strings.Contains(m, "manhattan_consumer_records_total") {
		t.Errorf("consumer metrics lack manhattan_consumer_records_total:\n%.2000s", m)
	}
	if m := httpGet(t, hc, "http://"+appMetrics+"/metrics"); !strings.Contains(m, "manhattan_producer_events_sent_total") {
		t.Errorf("example app metrics lack manhattan_producer_events_sent_total:\n%.2000s", m)
	}

	// The imported bot's split test never got an impression.
	if d, err := api.Test(ctx, "dessert emoji", client.Filter{}); err == nil {
		for _, p := range d.Populations {
			if p.Impressions != 0 {
				t.Errorf("a bot's split was counted: %+v", d)
			}
		}
	} else if !client.IsNotFound(err) {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", u, resp.Status, err)
	}
	return string(b)
}

// TestDemo runs `manhattan demo` (dev in-process on kfake and chDB, the
// simulated test over HTTP, results from REST) on a small scale.
func TestDemo(t *testing.T) {
	testenv.CHDBLibPath(t) // the store loads libchdb from CHDB_LIB_PATH
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := run(ctx, t, "demo", "--visitors", "300", "--bots", "60", "--workers", "4", "--timeout", "90s")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"the API reports exactly what the simulation did",
		"chance to beat control",
		"?control=True (cake is the control; without control= the API\ntakes the first population in sorted order, here False)",
		"(control)",
		"the 60 bots (no pixel) were left out of every count",
		"300 people in all",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  True +cake .*\(control\)$`).MatchString(out) {
		t.Errorf("the True (cake) row is not the control:\n%s", out)
	}
}

// TestMigrateSaysWhat: migrate names the database and what it applied, and
// says when there was nothing to apply.
func TestMigrateSaysWhat(t *testing.T) {
	u, err := url.Parse(testenv.ClickHouseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	db := consumertest.Name("migrate")
	u.Path = "/" + db
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, t, "migrate", "--clickhouse-url", u.String())
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("database %q at %s: applied 001_init (schema version 0 → 1)", db, u.String()); !strings.Contains(out, want) {
		t.Errorf("first migrate said:\n%s\nwant %q", out, want)
	}
	out, err = run(ctx, t, "migrate", "--clickhouse-url", u.String())
	if err != nil || !strings.Contains(out, "schema already at version 1, nothing to apply") {
		t.Errorf("second migrate: %v\n%s", err, out)
	}
	for raw, want := range map[string]string{
		"clickhouse://127.0.0.1:9000/":          "manhattan",
		"clickhouse://127.0.0.1:9000":           "manhattan",
		"clickhouse://u:p@127.0.0.1:9000/stats": "stats",
		"tcp://127.0.0.1:9000/stats":            "stats",
		"chdb:///tmp/x?database=d":              "d",
		"chdb:///tmp/x":                         "manhattan",
	} {
		if got := databaseOf(raw); got != want {
			t.Errorf("databaseOf(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestServersBindBeforeLogging: a taken port fails naming the key, before
// anything claims to be listening.
func TestServersBindBeforeLogging(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	u, err := url.Parse(testenv.ClickHouseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + consumertest.Name("bind")
	t.Setenv("MANHATTAN_PRODUCER_SECRET", "bind-test-secret")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"queryapi", "--clickhouse-url", u.String(), "--listen", taken}, "queryapi.listen"},
		{[]string{"example-app", "--brokers", "127.0.0.1:1", "--listen", taken}, "example.listen"},
	} {
		out, err := run(ctx, t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("%v: err = %v, want %s: address already in use", tc.args, err, tc.key)
		}
		if strings.Contains(out, "listening") {
			t.Errorf("%v logged listening although the bind failed:\n%s", tc.args, out)
		}
	}
}

// TestDemoFlags: each out-of-range demo flag is refused by name.
func TestDemoFlags(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"--visitors", "0"}, {"--bots", "-1"}, {"--cake-rate", "1.5"}, {"--pie-rate", "2"},
		{"--pie-rate", "NaN"}, {"--workers", "0"}, {"--timeout", "0s"}, {"--timeout", "-1s"},
	} {
		_, err := run(context.Background(), t, "demo", tc.flag, tc.value)
		if err == nil || !strings.HasPrefix(err.Error(), tc.flag+":") {
			t.Errorf("demo %s %s: err = %v, want it to name %s", tc.flag, tc.value, err, tc.flag)
		}
	}
}

// TestQueryAPIStopsOnSIGINT runs the built binary as an operator does: one
// SIGINT once it listens ends it cleanly (exit 0) and promptly.
func TestQueryAPIStopsOnSIGINT(t *testing.T) {
	u, err := url.Parse(testenv.ClickHouseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + consumertest.Name("sigint")
	bin := filepath.Join(t.TempDir(), "manhattan")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	var out lockedBuffer
	cmd := exec.Command(bin, "queryapi", "--clickhouse-url", u.String(), "--listen", addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	finished := false
	defer func() {
		if !finished {
			cmd.Process.Kill()
			<-exited
		}
	}()
	waitListening(t, addr, 30*time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		finished = true
		if err != nil {
			t.Fatalf("queryapi exited with %v after SIGINT:\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("queryapi still running 15s after SIGINT:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "query API listening") || !strings.Contains(out.String(), "stopping") {
		t.Errorf("log:\n%s", out.String())
	}
}
