// Command loadbench measures the producer middleware under an HTTP load
// generator on loopback. It serves the same ~10 KiB HTML page twice, bare
// and behind the middleware with the real Kafka Writer (fresh topic, disk
// spool), runs wrk against each in alternating rounds and prints
// requests/s, the ratio middleware/bare, latency p50/p99 and the Writer's
// counters. It fails when the Writer dropped an event or Kafka did not get
// every event the middleware recorded. scripts/bench-http.sh runs it.
//
//	go run ./producer/loadbench -brokers 127.0.0.1:9092 -rounds 3 -duration 5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/producer"
	"github.com/manhattan-go/manhattan/producer/internal/benchpage"
)

type config struct {
	brokers     string
	topic       string
	partitions  int
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	threads     int
	connections int
	wrk         string
	cpuprofile  string
	serve       bool
	newVisitors bool
	discard     bool
	linger      time.Duration
	kafkaPID    int
	aa          bool
}

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", os.Getenv("MANHATTAN_TEST_KAFKA"), "Kafka brokers, comma separated (default $MANHATTAN_TEST_KAFKA)")
	flag.StringVar(&c.topic, "topic", "", "topic to create and write (default a unique loadbench-… topic, deleted afterwards)")
	flag.IntVar(&c.partitions, "partitions", 3, "partitions of the created topic")
	flag.IntVar(&c.rounds, "rounds", 10, "measured rounds per server (bare and middleware alternate)")
	flag.DurationVar(&c.duration, "duration", 2*time.Second, "length of one wrk round (whole seconds)")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured wrk run against each server first")
	flag.IntVar(&c.threads, "threads", 1, "wrk threads")
	flag.IntVar(&c.connections, "connections", 32, "wrk connections")
	flag.StringVar(&c.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write CPU profiles of the last round to PREFIX-bare.pprof and PREFIX-mw.pprof (compare: go tool pprof -diff_base PREFIX-bare.pprof PREFIX-mw.pprof)")
	flag.BoolVar(&c.serve, "serve", false, "only serve both pages (addresses printed) until interrupted, for manual runs")
	flag.BoolVar(&c.newVisitors, "new-visitors", false, "send no cookie: every request is a new visitor (default: a returning visitor with a signed cookie)")
	flag.BoolVar(&c.discard, "discard", false, "middleware hands events to a discarding sink instead of Kafka (isolates the middleware's own cost)")
	flag.DurationVar(&c.linger, "linger", 0, "WriterOptions.Linger (default: the Writer's)")
	flag.IntVar(&c.kafkaPID, "kafka-pid", 0, "pid of a local Kafka broker, to report its CPU per request too")
	flag.BoolVar(&c.aa, "aa", false, "serve the bare handler in place of the middleware too: an A/A run whose ratio shows the measurement noise")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// page is the same ~10 KiB HTML page as producer's Go benchmark.
var page = benchpage.HTML

var app = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
})

// countingSink counts the events the middleware hands over, to check that
// Kafka got all of them.
type countingSink struct {
	n    atomic.Int64
	next producer.Sink
}

func (s *countingSink) Send(evs []event.Event) {
	s.n.Add(int64(len(evs)))
	s.next.Send(evs)
}

func run(ctx context.Context, c config) error {
	if c.brokers == "" {
		return errors.New("no Kafka brokers: pass -brokers or set MANHATTAN_TEST_KAFKA (eval \"$(scripts/services.sh env)\")")
	}
	if c.rounds < 1 || c.duration < time.Second {
		return errors.New("-rounds must be ≥ 1 and -duration ≥ 1s")
	}
	brokers := strings.Split(c.brokers, ",")
	kc := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	// Cleanup must work after an interrupt too.
	bg := context.WithoutCancel(ctx)
	if c.topic == "" {
		c.topic = fmt.Sprintf("loadbench-%d", time.Now().UnixNano())
		if err := createTopic(ctx, kc, c.topic, c.partitions); err != nil {
			return err
		}
		defer deleteTopic(bg, kc, c.topic)
	}
	spoolDir, err := os.MkdirTemp("", "loadbench-spool-")
	if err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	defer os.RemoveAll(spoolDir)

	w, err := producer.NewWriter(producer.WriterOptions{Brokers: brokers, Topic: c.topic, SpoolDir: spoolDir, Linger: c.linger})
	if err != nil {
		return fmt.Errorf("kafka writer: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			cctx, cancel := context.WithTimeout(bg, 10*time.Second)
			w.Close(cctx)
			cancel()
		}
	}()
	sink := &countingSink{next: w}
	if c.discard {
		sink.next = producer.SinkFunc(func([]event.Event) {})
	}
	mw, err := producer.New(producer.Options{Secret: "loadbench-secret", Sink: sink})
	if err != nil {
		return fmt.Errorf("middleware: %w", err)
	}
	bareURL, stopBare, err := serve(app)
	if err != nil {
		return err
	}
	defer stopBare()
	mwHandler := mw.Handler(app)
	if c.aa {
		mwHandler = app
	}
	mwURL, stopMW, err := serve(mwHandler)
	if err != nil {
		return err
	}
	defer stopMW()

	if c.serve {
		fmt.Printf("bare:       %s\nmiddleware: %s\n(Kafka %s, topic %s; interrupt to stop)\n", bareURL, mwURL, c.brokers, c.topic)
		<-ctx.Done()
		return nil
	}

	headers := []string{
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"Referer: http://127.0.0.1/",
	}
	if !c.newVisitors {
		cookie, err := visitorCookie(mw.Handler(app))
		if err != nil {
			return err
		}
		headers = append(headers, "Cookie: session=abc; "+cookie)
	}
	script, err := os.CreateTemp("", "loadbench-*.lua")
	if err != nil {
		return fmt.Errorf("wrk script: %w", err)
	}
	defer os.Remove(script.Name())
	if _, err := script.WriteString(reportLua); err != nil {
		return fmt.Errorf("wrk script: %w", err)
	}
	script.Close()
	wr := wrkRunner{ctx: ctx, bin: c.wrk, threads: c.threads, connections: c.connections, script: script.Name(), headers: headers}

	visitors := "returning visitor (signed cookie)"
	if c.newVisitors {
		visitors = "new visitor per request (no cookie)"
	}
	fmt.Printf("loadbench: %d-byte HTML page, wrk -t%d -c%d, %d rounds × %s per server, %s\n", len(page), c.threads, c.connections, c.rounds, c.duration, visitors)
	fmt.Printf("  Kafka %s topic %s, load average at start: %s\n", c.brokers, c.topic, loadavg())
	if c.warmup > 0 {
		for _, u := range []string{bareURL, mwURL} {
			if _, err := wr.run(u, c.warmup); err != nil {
				return err
			}
		}
	}
	var bare, mws []result
	for i := range c.rounds {
		// Alternate which goes first so drift in machine load hits both.
		order := []string{"bare", "mw"}
		if i%2 == 1 {
			order = []string{"mw", "bare"}
		}
		for _, which := range order {
			u := bareURL
			if which == "mw" {
				u = mwURL
			}
			var stopProf func()
			if i == c.rounds-1 && c.cpuprofile != "" {
				if stopProf, err = startProfile(c.cpuprofile + "-" + which + ".pprof"); err != nil {
					return err
				}
			}
			cpu0, k0 := processCPU(), pidCPU(c.kafkaPID)
			r, err := wr.run(u, c.duration)
			r.cpuUS, r.kafkaUS = processCPU()-cpu0, pidCPU(c.kafkaPID)-k0
			if stopProf != nil {
				stopProf()
			}
			if err != nil {
				return err
			}
			fmt.Printf("  round %d %-10s %9.0f req/s   p50 %6s  p99 %6s   server CPU %5.1fµs/req%s\n", i+1, map[string]string{"bare": "bare", "mw": "middleware"}[which], r.rps(), us(r.p50), us(r.p99), r.cpuPerReq(), r.kafkaCPU(c.kafkaPID))
			if which == "mw" {
				mws = append(mws, r)
			} else {
				bare = append(bare, r)
			}
		}
	}
	loadEnd := loadavg()
	sb, sm := sum(bare), sum(mws)
	fmt.Printf("bare        %9.0f req/s   p50 %6s  p99 %6s   server CPU %5.1fµs/req%s   (%d requests)\n", sb.rps(), us(sb.p50), us(sb.p99), sb.cpuPerReq(), sb.kafkaCPU(c.kafkaPID), sb.requests)
	fmt.Printf("middleware  %9.0f req/s   p50 %6s  p99 %6s   server CPU %5.1fµs/req%s   (%d requests)\n", sm.rps(), us(sm.p50), us(sm.p99), sm.cpuPerReq(), sm.kafkaCPU(c.kafkaPID), sm.requests)
	// The median of the per-round ratios resists bursts of load from
	// elsewhere on the machine better than the ratio of the totals.
	var per []float64
	var perS []string
	for i := range bare {
		per = append(per, mws[i].rps()/bare[i].rps())
		perS = append(perS, fmt.Sprintf("%.2f", per[i]))
	}
	slices.Sort(per)
	ratio := per[len(per)/2]
	if len(per)%2 == 0 {
		ratio = (per[len(per)/2-1] + per[len(per)/2]) / 2
	}
	verdict := "met"
	if ratio < 0.9 {
		verdict = "NOT met"
	}
	what := "middleware/bare"
	if c.aa {
		what = "bare/bare (A/A: noise only)"
	}
	fmt.Printf("ratio %s: %.3f median of rounds, %.3f of totals (target ≥ 0.90: %s)\n  per round: %s\n", what, ratio, sm.rps()/sb.rps(), verdict, strings.Join(perS, " "))
	fmt.Printf("load average at end: %s\n", loadEnd)

	// Every event the middleware recorded must reach Kafka, none dropped.
	stopMW()
	cctx, cancel := context.WithTimeout(bg, 30*time.Second)
	closeErr := w.Close(cctx)
	cancel()
	closed = true
	st := w.Stats()
	recorded := sink.n.Load()
	inKafka, err := topicRecords(bg, kc, c.topic, c.partitions)
	if err != nil {
		return err
	}
	if c.discard {
		fmt.Printf("events recorded %d (discarded: -discard)\n", recorded)
		return nil
	}
	fmt.Printf("writer: events recorded %d, sent %d, spooled %d, dropped %d; records in topic %d\n", recorded, st.Sent, st.Spooled, st.Dropped, inKafka)
	switch {
	case closeErr != nil:
		return fmt.Errorf("closing writer: %w", closeErr)
	case st.Dropped != 0:
		return fmt.Errorf("writer dropped %d events", st.Dropped)
	case st.Sent != recorded || inKafka != recorded:
		return fmt.Errorf("events recorded %d but sent %d and %d in the topic", recorded, st.Sent, inKafka)
	case !c.aa && sm.requests > recorded:
		return fmt.Errorf("wrk completed %d middleware requests but only %d events were recorded", sm.requests, recorded)
	}
	return nil
}

// serve starts an HTTP server for h on a free loopback port.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("loadbench: serve", "err", err)
		}
	}()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}
	return "http://" + ln.Addr().String() + "/products?page=2", stop, nil
}

// visitorCookie makes one request as a new visitor and returns the signed
// cookie ("name=value") the middleware set.
func visitorCookie(h http.Handler) (string, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/", nil))
	cs := rec.Result().Cookies()
	if len(cs) == 0 {
		return "", errors.New("priming request: the middleware set no cookie")
	}
	return cs[0].Name + "=" + cs[0].Value, nil
}

func createTopic(ctx context.Context, kc *kafka.Client, topic string, partitions int) error {
	resp, err := kc.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

func deleteTopic(ctx context.Context, kc *kafka.Client, topic string) {
	resp, err := kc.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		slog.Warn("loadbench: delete topic", "topic", topic, "err", err)
	}
}

// topicRecords sums last-minus-first offsets over the topic's partitions.
func topicRecords(ctx context.Context, kc *kafka.Client, topic string, partitions int) (int64, error) {
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := kc.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return 0, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	var n int64
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return 0, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		n += po.LastOffset - po.FirstOffset
	}
	return n, nil
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// reportLua makes wrk print one machine-readable line at the end.
const reportLua = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LOADBENCH %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`

type wrkRunner struct {
	ctx                  context.Context
	bin                  string
	threads, connections int
	script               string
	headers              []string
}

// result of one wrk run; durations in microseconds. cpuUS is this
// process's CPU time (user+system) meanwhile: the server's cost, including
// the Writer's goroutine, free of the load generator's share.
type result struct {
	requests, durUS, cpuUS, kafkaUS int64
	p50, p99                        float64
}

func (r result) kafkaCPU(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf("   Kafka CPU %5.1fµs/req", float64(r.kafkaUS)/float64(r.requests))
}

// pidCPU returns the user+system CPU time of process pid in µs (0 for pid 0
// or when /proc does not tell).
func pidCPU(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * 10000
}

func (r result) cpuPerReq() float64 { return float64(r.cpuUS) / float64(r.requests) }

// processCPU returns the user+system CPU time of this process in µs.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
}

func (r result) rps() float64 { return float64(r.requests) / (float64(r.durUS) / 1e6) }

func (wr wrkRunner) run(url string, d time.Duration) (result, error) {
	args := []string{"-t", strconv.Itoa(wr.threads), "-c", strconv.Itoa(wr.connections),
		"-d", strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "5s", "-s", wr.script}
	for _, h := range wr.headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(wr.ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, wr.bin, args...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w\n%s", filepath.Base(wr.bin), strings.Join(args, " "), err, out)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 10 || f[0] != "LOADBENCH" {
			continue
		}
		var n [9]float64
		for i := range n {
			if n[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
				return result{}, fmt.Errorf("wrk report %q: %w", line, err)
			}
		}
		if errs := n[4] + n[5] + n[6] + n[7] + n[8]; errs > 0 {
			return result{}, fmt.Errorf("wrk against %s saw errors (connect %.0f, read %.0f, write %.0f, status %.0f, timeout %.0f)", url, n[4], n[5], n[6], n[7], n[8])
		}
		if n[0] == 0 {
			return result{}, fmt.Errorf("wrk against %s completed no request", url)
		}
		return result{requests: int64(n[0]), durUS: int64(n[1]), p50: n[2], p99: n[3]}, nil
	}
	return result{}, fmt.Errorf("wrk printed no report line:\n%s", out)
}

// sum adds requests and durations; latencies are the median over rounds.
func sum(rs []result) result {
	var s result
	var p50, p99 []float64
	for _, r := range rs {
		s.requests += r.requests
		s.durUS += r.durUS
		s.cpuUS += r.cpuUS
		s.kafkaUS += r.kafkaUS
		p50, p99 = append(p50, r.p50), append(p99, r.p99)
	}
	slices.Sort(p50)
	slices.Sort(p99)
	s.p50, s.p99 = p50[len(p50)/2], p99[len(p99)/2]
	return s
}

func us(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "µs"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
