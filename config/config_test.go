package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/manhattan-go/manhattan/reconcile"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manhattan.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, err := Load(Source{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load with nothing set = %+v, want %+v", cfg, Default())
	}
	if cfg.Consumer.FlushInterval != time.Second || cfg.Kafka.Topic != "manhattan.events" ||
		cfg.Producer.PixelPath != "/vpixel.gif" || cfg.Example.Listen != ":8000" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	// Everything but the producer secret is valid out of the box.
	if err := cfg.Validate(PartKafka, PartClickHouse, PartConsumer, PartQueryAPI, PartExample); err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "producer.secret") {
		t.Fatalf("Validate() = %v, want an error naming producer.secret", err)
	}
}

const fileYAML = `
kafka:
  brokers: [k1:9092, k2:9092]
  topic: from.file
clickhouse:
  url: clickhouse://ch:9000/analytics
consumer:
  flush_interval: 250ms
  flush_events: 500
  rollups:
    - {name: all, kind: all}
    - {name: daily, kind: day, timezone: America/New_York}
    - {name: browsers, kind: browser}
  complex_goals:
    - name: bought after pie
      include: [pie accomplished, purchase]
      exclude: [refund]
producer:
  secret: s3krit
  host_map:
    shop.example.com: 2
example:
  listen: 127.0.0.1:9000
`

func TestPrecedence(t *testing.T) {
	path := writeFile(t, fileYAML)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringSlice("brokers", nil, "")
	fs.String("topic", "", "")
	fs.String("group", "", "")
	if err := fs.Parse([]string{"--brokers=f1:9092,f2:9092"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{
		File: path,
		Flags: map[string]*pflag.Flag{
			"kafka.brokers": fs.Lookup("brokers"),
			"kafka.topic":   fs.Lookup("topic"),
			"kafka.group":   fs.Lookup("group"),
		},
		LookupEnv: env(map[string]string{
			"MANHATTAN_KAFKA_BROKERS":           "e1:9092",
			"MANHATTAN_KAFKA_TOPIC":             "from.env",
			"MANHATTAN_CONSUMER_FLUSH_INTERVAL": "2s",
			"MANHATTAN_PRODUCER_HOST_MAP":       "a.example=1, b.example=3",
			"MANHATTAN_QUERYAPI_CORS_ORIGINS":   "https://a.example,https://b.example",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"f1:9092", "f2:9092"}; !reflect.DeepEqual(cfg.Kafka.Brokers, want) {
		t.Errorf("brokers = %v, want %v (flag beats env and file)", cfg.Kafka.Brokers, want)
	}
	if cfg.Kafka.Topic != "from.env" {
		t.Errorf("topic = %q, want from.env (env beats file, unset flag does not override)", cfg.Kafka.Topic)
	}
	if cfg.Kafka.Group != DefaultGroup {
		t.Errorf("group = %q, want the default", cfg.Kafka.Group)
	}
	if cfg.ClickHouse.URL != "clickhouse://ch:9000/analytics" {
		t.Errorf("url = %q", cfg.ClickHouse.URL)
	}
	if cfg.Consumer.FlushInterval != 2*time.Second || cfg.Consumer.FlushEvents != 500 || cfg.Consumer.CacheSize != DefaultCacheSize {
		t.Errorf("consumer = %+v", cfg.Consumer)
	}
	wantRollups := []reconcile.Rollup{
		{Name: "all", Kind: "all"},
		{Name: "daily", Kind: "day", Timezone: "America/New_York"},
		{Name: "browsers", Kind: "browser"},
	}
	if !reflect.DeepEqual(cfg.Consumer.Rollups, wantRollups) {
		t.Errorf("rollups = %+v", cfg.Consumer.Rollups)
	}
	wantGoals := []reconcile.ComplexGoal{{Name: "bought after pie", Include: []string{"pie accomplished", "purchase"}, Exclude: []string{"refund"}}}
	if !reflect.DeepEqual(cfg.Consumer.ComplexGoals, wantGoals) {
		t.Errorf("complex goals = %+v", cfg.Consumer.ComplexGoals)
	}
	if want := map[string]int64{"a.example": 1, "b.example": 3}; !reflect.DeepEqual(cfg.Producer.HostMap, want) {
		t.Errorf("host_map = %v, want %v (env replaces the file's map)", cfg.Producer.HostMap, want)
	}
	if want := []string{"https://a.example", "https://b.example"}; !reflect.DeepEqual(cfg.QueryAPI.CORSOrigins, want) {
		t.Errorf("cors_origins = %v, want %v", cfg.QueryAPI.CORSOrigins, want)
	}
	if cfg.Producer.Secret != "s3krit" || cfg.Example.Listen != "127.0.0.1:9000" {
		t.Errorf("producer/example = %+v %+v", cfg.Producer, cfg.Example)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFileHostMap(t *testing.T) {
	cfg, err := Load(Source{File: writeFile(t, fileYAML), LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"shop.example.com": 2}; !reflect.DeepEqual(cfg.Producer.HostMap, want) {
		t.Errorf("host_map = %v, want %v", cfg.Producer.HostMap, want)
	}
}

func TestStructuredEnv(t *testing.T) {
	cfg, err := Load(Source{LookupEnv: env(map[string]string{
		"MANHATTAN_CONSUMER_ROLLUPS":       `[{"name":"h","kind":"hour","timezone":"UTC"}]`,
		"MANHATTAN_CONSUMER_COMPLEX_GOALS": `[{name: c, include: [a, b]}]`,
		"MANHATTAN_PRODUCER_HOST_MAP":      `{x.example: 7}`,
	})})
	if err != nil {
		t.Fatal(err)
	}
	if want := []reconcile.Rollup{{Name: "h", Kind: "hour", Timezone: "UTC"}}; !reflect.DeepEqual(cfg.Consumer.Rollups, want) {
		t.Errorf("rollups = %+v", cfg.Consumer.Rollups)
	}
	if want := []reconcile.ComplexGoal{{Name: "c", Include: []string{"a", "b"}}}; !reflect.DeepEqual(cfg.Consumer.ComplexGoals, want) {
		t.Errorf("complex goals = %+v", cfg.Consumer.ComplexGoals)
	}
	if want := map[string]int64{"x.example": 7}; !reflect.DeepEqual(cfg.Producer.HostMap, want) {
		t.Errorf("host_map = %v", cfg.Producer.HostMap)
	}
}

func TestSourceDefaults(t *testing.T) {
	cfg, err := Load(Source{
		Defaults:  map[string]any{"kafka.brokers": []string{"127.0.0.1:19092"}, "producer.secret": "dev"},
		LookupEnv: env(map[string]string{"MANHATTAN_PRODUCER_SECRET": "real"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Kafka.Brokers, []string{"127.0.0.1:19092"}) || cfg.Producer.Secret != "real" {
		t.Fatalf("got %v %q", cfg.Kafka.Brokers, cfg.Producer.Secret)
	}
	if _, err := Load(Source{Defaults: map[string]any{"kafka.nope": 1}}); err == nil {
		t.Fatal("a default for an unknown key was accepted")
	}
}

// TestLoadErrors: problems found while decoding name the key.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{name: "bad duration env", env: map[string]string{"MANHATTAN_CONSUMER_FLUSH_INTERVAL": "soon"}, want: "consumer.flush_interval"},
		{name: "bad duration file", file: "consumer:\n  flush_interval: 5 parsecs\n", want: "consumer.flush_interval"},
		{name: "duration without unit", file: "consumer:\n  flush_interval: 5\n", want: "consumer.flush_interval: 5 has no unit"},
		{name: "bad int", env: map[string]string{"MANHATTAN_CONSUMER_FLUSH_EVENTS": "many"}, want: "consumer.flush_events"},
		{name: "unknown key", file: "consumer:\n  flush_intervl: 1s\n", want: "flush_intervl"},
		{name: "bad host map", env: map[string]string{"MANHATTAN_PRODUCER_HOST_MAP": "a.example"}, want: "producer.host_map"},
		{name: "bad rollups yaml", env: map[string]string{"MANHATTAN_CONSUMER_ROLLUPS": "[{"}, want: "consumer.rollups"},
		{name: "bad yaml file", file: "kafka: [\n", want: "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := Source{LookupEnv: env(tc.env)}
			if tc.file != "" {
				src.File = writeFile(t, tc.file)
			}
			_, err := Load(src)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Load(Source{File: filepath.Join(t.TempDir(), "missing.yaml")}); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// TestValidate: each bad value fails naming its key.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"empty brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers"},
		{"broker without port", func(c *Config) { c.Kafka.Brokers = []string{"localhost"} }, "kafka.brokers[0]"},
		{"empty topic", func(c *Config) { c.Kafka.Topic = "" }, "kafka.topic"},
		{"bad topic", func(c *Config) { c.Kafka.Topic = "a topic" }, "kafka.topic"},
		{"empty group", func(c *Config) { c.Kafka.Group = " " }, "kafka.group"},
		{"bad scheme", func(c *Config) { c.ClickHouse.URL = "postgres://db/x" }, "clickhouse.url: unsupported scheme"},
		{"empty url", func(c *Config) { c.ClickHouse.URL = "" }, "clickhouse.url"},
		{"no host", func(c *Config) { c.ClickHouse.URL = "clickhouse:///db" }, "clickhouse.url"},
		{"zero interval", func(c *Config) { c.Consumer.FlushInterval = 0 }, "consumer.flush_interval"},
		{"zero events", func(c *Config) { c.Consumer.FlushEvents = 0 }, "consumer.flush_events"},
		{"negative cache", func(c *Config) { c.Consumer.CacheSize = -1 }, "consumer.cache_size"},
		{"unknown rollup kind", func(c *Config) { c.Consumer.Rollups = []reconcile.Rollup{{Name: "y", Kind: "year"}} }, "consumer.rollups[0].kind"},
		{"bad zone", func(c *Config) {
			c.Consumer.Rollups = append(c.Consumer.Rollups, reconcile.Rollup{Name: "d", Kind: "day", Timezone: "Mars/Olympus_Mons"})
		}, "consumer.rollups[1].timezone"},
		{"duplicate rollup", func(c *Config) { c.Consumer.Rollups = append(c.Consumer.Rollups, c.Consumer.Rollups[0]) }, "consumer.rollups[1].name"},
		{"unnamed rollup", func(c *Config) { c.Consumer.Rollups[0].Name = "" }, "consumer.rollups[0].name"},
		{"complex goal without include", func(c *Config) {
			c.Consumer.ComplexGoals = []reconcile.ComplexGoal{{Name: "x", Exclude: []string{"y"}}}
		}, "consumer.complex_goals[0].include"},
		{"complex goal excluding an included goal", func(c *Config) {
			c.Consumer.ComplexGoals = []reconcile.ComplexGoal{{Name: "x", Include: []string{"y"}, Exclude: []string{"y"}}}
		}, "consumer.complex_goals[0].exclude"},
		{"unnamed complex goal", func(c *Config) {
			c.Consumer.ComplexGoals = []reconcile.ComplexGoal{{Include: []string{"y"}}}
		}, "consumer.complex_goals[0].name"},
		{"bad listen", func(c *Config) { c.QueryAPI.Listen = "8080" }, "queryapi.listen"},
		{"bad origin", func(c *Config) { c.QueryAPI.CORSOrigins = []string{"*", "dash.example"} }, "queryapi.cors_origins[1]"},
		{"empty secret", func(c *Config) { c.Producer.Secret = "" }, "producer.secret"},
		{"bad cookie name", func(c *Config) { c.Producer.CookieName = "a b" }, "producer.cookie_name"},
		{"relative pixel", func(c *Config) { c.Producer.PixelPath = "pixel.gif" }, "producer.pixel_path"},
		{"negative site", func(c *Config) { c.Producer.HostMap = map[string]int64{"a": -1} }, "producer.host_map.a"},
		{"bad example listen", func(c *Config) { c.Example.Listen = "" }, "example.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Producer.Secret = "s3krit"
			if err := c.Validate(); err != nil {
				t.Fatalf("valid base config rejected: %v", err)
			}
			tc.mod(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateOnlyParts(t *testing.T) {
	c := Default()
	c.Kafka.Brokers = nil
	if err := c.Validate(PartClickHouse, PartQueryAPI); err != nil {
		t.Fatalf("query API validation looked at kafka: %v", err)
	}
	if err := c.Validate(PartKafka); err == nil {
		t.Fatal("empty brokers accepted")
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.Kafka.Brokers = nil
	c.Consumer.FlushEvents = 0
	err := c.Validate(PartKafka, PartConsumer)
	if err == nil || !strings.Contains(err.Error(), "kafka.brokers") || !strings.Contains(err.Error(), "consumer.flush_events") {
		t.Fatalf("Validate = %v, want both problems", err)
	}
}

func TestEnvVar(t *testing.T) {
	if got := EnvVar("consumer.flush_interval"); got != "MANHATTAN_CONSUMER_FLUSH_INTERVAL" {
		t.Fatal(got)
	}
	if got := EnvVar("clickhouse.url"); got != "MANHATTAN_CLICKHOUSE_URL" {
		t.Fatal(got)
	}
}

// TestREADMEExample: the complete file shown in the README loads and
// validates, so the documentation cannot drift from the code.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "A complete file:\n\n```yaml\n")
	if !ok {
		t.Fatal("README has no \"A complete file:\" YAML block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated YAML block in the README")
	}
	cfg, err := Load(Source{File: writeFile(t, block), LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Consumer.Rollups) != 3 || len(cfg.Consumer.ComplexGoals) != 1 || cfg.Producer.HostMap["blog.example.com"] != 2 {
		t.Fatalf("README example loaded as %+v", cfg)
	}
}
