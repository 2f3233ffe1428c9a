package integration

// Consumer child processes: the consumer tests re-execute this test binary
// with MANHATTAN_CONSUMER_CHILD set, and init runs consumer.Run instead of
// the tests, so the tests can SIGKILL real consumer processes without the
// cmd/manhattan binary. (init, not TestMain, so that other tests of this
// package keep their own TestMain free.)

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/store"
)

const consumerChildEnv = "MANHATTAN_CONSUMER_CHILD"

// childConfig is what a consumer child process runs with.
type childConfig struct {
	Brokers       []string
	Topic         string
	Group         string
	StoreURL      string
	FlushEvents   int
	FlushInterval time.Duration
}

func init() {
	if cfg := os.Getenv(consumerChildEnv); cfg != "" {
		os.Exit(runConsumerChild(cfg))
	}
}

func runConsumerChild(raw string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		log.Error("bad child config", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, err := store.Open(ctx, cfg.StoreURL)
	if err != nil {
		log.Error("open store", "err", err)
		return 1
	}
	defer st.Close()
	err = consumer.Run(ctx, childOptions(cfg, st, log))
	if err != nil {
		log.Error("consumer", "err", err)
		return 1
	}
	return 0
}

// childOptions are the consumer options every consumer test uses, in a
// child process or in a goroutine.
func childOptions(cfg childConfig, st store.Store, log *slog.Logger) consumer.Options {
	return consumer.Options{
		Brokers:           cfg.Brokers,
		Topic:             cfg.Topic,
		Group:             cfg.Group,
		Store:             st,
		Engine:            consumertest.EngineConfig(),
		FlushEvents:       cfg.FlushEvents,
		FlushInterval:     cfg.FlushInterval,
		CacheSize:         2000,
		Logger:            log,
		ProgressInterval:  5 * time.Second,
		ShutdownTimeout:   10 * time.Second,
		SessionTimeout:    6 * time.Second, // the broker's minimum
		HeartbeatInterval: 500 * time.Millisecond,
	}
}

// child is one consumer process.
type child struct {
	t    *testing.T
	name string
	cfg  childConfig
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func newChild(t *testing.T, name string, cfg childConfig) *child {
	dir := os.Getenv("MANHATTAN_CONSUMER_LOG_DIR") // keep the logs there for debugging
	if dir == "" {
		dir = t.TempDir()
	}
	c := &child{t: t, name: name, cfg: cfg, log: filepath.Join(dir, cfg.Topic+"-"+name+".log")}
	t.Cleanup(func() {
		c.stop(syscall.SIGKILL)
		if t.Failed() {
			if b, err := os.ReadFile(c.log); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("last log lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
			}
		}
	})
	return c
}

func (c *child) start() {
	c.t.Helper()
	raw, err := json.Marshal(c.cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== start %s at %s\n", c.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), consumerChildEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.done, c.err = cmd, done, nil
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(done)
	}()
}

// stop signals the process and waits for it; it returns its exit error.
func (c *child) stop(sig syscall.Signal) error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmd = nil
	return c.err
}

// exited reports whether the process ended by itself, and how.
func (c *child) exited() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		return false, nil
	}
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}
