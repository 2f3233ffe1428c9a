package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/manhattan-go/manhattan/reconcile"
)

// Part is a section of the configuration that a command uses.
type Part uint

// The parts Validate can check.
const (
	PartKafka Part = 1 << iota
	PartClickHouse
	PartConsumer
	PartQueryAPI
	PartProducer
	PartExample

	PartAll = PartKafka | PartClickHouse | PartConsumer | PartQueryAPI | PartProducer | PartExample
)

// Validate checks the parts a command uses (all of them when parts is empty)
// and reports every problem, one "key: problem" line each.
func (c *Config) Validate(parts ...Part) error {
	var want Part
	for _, p := range parts {
		want |= p
	}
	if len(parts) == 0 {
		want = PartAll
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if want&PartKafka != 0 {
		if len(c.Kafka.Brokers) == 0 {
			bad("kafka.brokers", "no brokers (want host:port, comma separated)")
		}
		for i, b := range c.Kafka.Brokers {
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
				bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
			}
		}
		if strings.TrimSpace(c.Kafka.Topic) == "" {
			bad("kafka.topic", "empty")
		} else if err := topicName(c.Kafka.Topic); err != nil {
			bad("kafka.topic", "%v", err)
		}
		if strings.TrimSpace(c.Kafka.Group) == "" {
			bad("kafka.group", "empty")
		}
	}

	if want&PartClickHouse != 0 {
		if err := checkStoreURL(c.ClickHouse.URL); err != nil {
			bad("clickhouse.url", "%v", err)
		}
	}

	if want&PartConsumer != 0 {
		if c.Consumer.FlushInterval <= 0 {
			bad("consumer.flush_interval", "must be positive, got %s", c.Consumer.FlushInterval)
		}
		if c.Consumer.FlushEvents <= 0 {
			bad("consumer.flush_events", "must be positive, got %d", c.Consumer.FlushEvents)
		}
		if c.Consumer.CacheSize <= 0 {
			bad("consumer.cache_size", "must be positive, got %d", c.Consumer.CacheSize)
		}
		errs = append(errs, checkRollups(c.Consumer.Rollups)...)
		errs = append(errs, checkComplexGoals(c.Consumer.ComplexGoals)...)
	}

	if want&PartQueryAPI != 0 {
		if err := checkListen(c.QueryAPI.Listen); err != nil {
			bad("queryapi.listen", "%v", err)
		}
		for i, o := range c.QueryAPI.CORSOrigins {
			if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				bad(fmt.Sprintf("queryapi.cors_origins[%d]", i), "%q is not an origin (https://host[:port], or *)", o)
			}
		}
	}

	if want&PartProducer != 0 {
		if c.Producer.Secret == "" {
			bad("producer.secret", "empty: set a long random secret (it signs visitor cookies), e.g. %s=$(openssl rand -hex 32)", EnvVar("producer.secret"))
		}
		if c.Producer.CookieName == "" {
			bad("producer.cookie_name", "empty")
		} else if strings.ContainsAny(c.Producer.CookieName, " \t;,=\"") {
			bad("producer.cookie_name", "%q is not a valid cookie name", c.Producer.CookieName)
		}
		if !strings.HasPrefix(c.Producer.PixelPath, "/") {
			bad("producer.pixel_path", "%q must start with /", c.Producer.PixelPath)
		}
		// Same values as producer.ParseSplitSeeding (config does not import
		// producer).
		switch c.Producer.SplitSeeding {
		case "", "design", "python2":
		default:
			bad("producer.split_seeding", "%q is not a seeding (want design or python2)", c.Producer.SplitSeeding)
		}
		for host, site := range c.Producer.HostMap {
			if host == "" {
				bad("producer.host_map", "empty host name")
			}
			if site < 0 {
				bad("producer.host_map."+host, "site id must not be negative, got %d", site)
			}
		}
	}

	if want&PartExample != 0 {
		if err := checkListen(c.Example.Listen); err != nil {
			bad("example.listen", "%v", err)
		}
	}

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  %w", joinLines(errs))
}

// uniqueName checks the name of list[i]: set, and not used by an earlier
// entry of list (names maps the names seen so far to their index).
func uniqueName(names map[string]int, list string, i int, name string) error {
	if name == "" {
		return fmt.Errorf("%s[%d].name: empty", list, i)
	}
	if j, dup := names[name]; dup {
		return fmt.Errorf("%s[%d].name: %q already used by %s[%d]", list, i, name, list, j)
	}
	names[name] = i
	return nil
}

func checkRollups(rs []reconcile.Rollup) []error {
	var errs []error
	names := map[string]int{}
	for i, r := range rs {
		key := fmt.Sprintf("consumer.rollups[%d]", i)
		if err := uniqueName(names, "consumer.rollups", i, r.Name); err != nil {
			errs = append(errs, err)
		}
		switch r.Kind {
		case reconcile.RollupAll, reconcile.RollupBrowser:
		case reconcile.RollupHour, reconcile.RollupDay, reconcile.RollupWeek, reconcile.RollupMonth:
			if _, err := time.LoadLocation(r.Timezone); err != nil {
				errs = append(errs, fmt.Errorf("%s.timezone: %q is not an IANA time zone (e.g. UTC, Europe/Berlin)", key, r.Timezone))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.kind: unknown kind %q (want all, hour, day, week, month or browser)", key, r.Kind))
		}
	}
	return errs
}

func checkComplexGoals(gs []reconcile.ComplexGoal) []error {
	var errs []error
	names := map[string]int{}
	for i, g := range gs {
		key := fmt.Sprintf("consumer.complex_goals[%d]", i)
		if err := uniqueName(names, "consumer.complex_goals", i, g.Name); err != nil {
			errs = append(errs, err)
		}
		if len(g.Include) == 0 {
			errs = append(errs, fmt.Errorf("%s.include: empty (a complex goal needs at least one goal to include)", key))
		}
		inc := map[string]bool{}
		for _, n := range g.Include {
			if n == "" {
				errs = append(errs, fmt.Errorf("%s.include: empty goal name", key))
			}
			inc[n] = true
		}
		for _, n := range g.Exclude {
			if n == "" {
				errs = append(errs, fmt.Errorf("%s.exclude: empty goal name", key))
			}
			if inc[n] {
				errs = append(errs, fmt.Errorf("%s.exclude: %q is also included", key, n))
			}
		}
	}
	return errs
}

// checkStoreURL accepts what store.Open understands: clickhouse://host:port/db
// or chdb://path.
func checkStoreURL(raw string) error {
	if raw == "" {
		return errors.New("empty (want clickhouse://host:9000/db or chdb:///path/to/dir)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "clickhouse":
		if u.Host == "" {
			return fmt.Errorf("%q has no host (want clickhouse://host:9000/db)", raw)
		}
	case "chdb":
		if u.Host+u.Path == "" {
			return fmt.Errorf("%q has no directory (want chdb:///path/to/dir)", raw)
		}
	default:
		return fmt.Errorf("unsupported scheme %q (want clickhouse:// or chdb://)", u.Scheme)
	}
	return nil
}

func checkListen(addr string) error {
	if addr == "" {
		return errors.New("empty (want host:port or :port)")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return nil
}

// topicName applies Kafka's topic name rules.
func topicName(t string) error {
	if len(t) > 249 {
		return fmt.Errorf("%q is longer than 249 characters", t)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: topic names allow only letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}

// joinLines joins errors one per indented line.
func joinLines(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}
