package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Keys lists every configuration key, in the order of the documentation.
var Keys = []string{
	"kafka.brokers",
	"kafka.topic",
	"kafka.group",
	"clickhouse.url",
	"consumer.flush_interval",
	"consumer.flush_events",
	"consumer.cache_size",
	"consumer.rollups",
	"consumer.complex_goals",
	"queryapi.listen",
	"queryapi.token",
	"queryapi.cors_origins",
	"producer.secret",
	"producer.cookie_name",
	"producer.pixel_path",
	"producer.host_map",
	"producer.spool_dir",
	"producer.split_seeding",
	"example.listen",
}

// EnvVar returns the environment variable that sets key.
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Source says where configuration comes from, lowest precedence first:
// defaults, then File, then the environment, then Flags.
type Source struct {
	// File is a YAML file; "" for none. A named file that is missing is an
	// error.
	File string
	// Flags maps a configuration key to the flag that sets it. Only flags the
	// user set on the command line override.
	Flags map[string]*pflag.Flag
	// Defaults replaces individual defaults (key → value), e.g. `dev` points
	// kafka.brokers at its in-process broker.
	Defaults map[string]any
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads the configuration. It does not validate it: call Validate with
// the parts the command uses.
func Load(src Source) (*Config, error) {
	// A delimiter other than "." keeps host names with dots in host_map
	// whole instead of turning them into nested keys.
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	v.SetConfigType("yaml")
	def := Default()
	defaults := map[string]any{
		"kafka.brokers":           def.Kafka.Brokers,
		"kafka.topic":             def.Kafka.Topic,
		"kafka.group":             def.Kafka.Group,
		"clickhouse.url":          def.ClickHouse.URL,
		"consumer.flush_interval": def.Consumer.FlushInterval.String(),
		"consumer.flush_events":   def.Consumer.FlushEvents,
		"consumer.cache_size":     def.Consumer.CacheSize,
		"consumer.rollups":        []any{},
		"consumer.complex_goals":  []any{},
		"queryapi.listen":         def.QueryAPI.Listen,
		"queryapi.token":          "",
		"queryapi.cors_origins":   []string{},
		"producer.secret":         "",
		"producer.cookie_name":    def.Producer.CookieName,
		"producer.pixel_path":     def.Producer.PixelPath,
		"producer.host_map":       map[string]any{},
		"producer.spool_dir":      "",
		"producer.split_seeding":  def.Producer.SplitSeeding,
		"example.listen":          def.Example.Listen,
	}
	for k, val := range src.Defaults {
		if _, ok := defaults[k]; !ok {
			return nil, fmt.Errorf("config: default for unknown key %q", k)
		}
		defaults[k] = val
	}
	for k, val := range defaults {
		v.SetDefault(vkey(k), val)
	}

	if src.File != "" {
		f, err := os.Open(src.File)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}

	lookup := src.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	// Environment: explicit per key (rather than AutomaticEnv) so that the
	// lookup can be replaced in tests and an empty variable still counts as set.
	for _, k := range Keys {
		if val, ok := lookup(EnvVar(k)); ok {
			v.Set(vkey(k), val)
		}
	}

	// Flags last: v.Set above is viper's highest layer, so changed flags are
	// applied the same way, after the environment.
	flagKeys := make([]string, 0, len(src.Flags))
	for k := range src.Flags {
		flagKeys = append(flagKeys, k)
	}
	sort.Strings(flagKeys)
	for _, k := range flagKeys {
		f := src.Flags[k]
		if _, ok := defaults[k]; !ok {
			return nil, fmt.Errorf("config: flag --%s bound to unknown key %q", f.Name, k)
		}
		if f.Changed {
			v.Set(vkey(k), flagValue(f))
		}
	}

	cfg := &Config{}
	err := v.Unmarshal(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			stringToYAMLHook(),
			durationHook(),
			stringToMapHook(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return nil, decodeError(err)
	}
	if len(cfg.Consumer.Rollups) == 0 {
		cfg.Consumer.Rollups = DefaultRollups()
	}
	if len(cfg.Consumer.ComplexGoals) == 0 {
		cfg.Consumer.ComplexGoals = nil
	}
	if cfg.Producer.HostMap == nil {
		cfg.Producer.HostMap = map[string]int64{}
	}
	for i, b := range cfg.Kafka.Brokers {
		cfg.Kafka.Brokers[i] = strings.TrimSpace(b)
	}
	if len(cfg.QueryAPI.CORSOrigins) == 0 {
		cfg.QueryAPI.CORSOrigins = nil
	}
	return cfg, nil
}

const keyDelim = "::"

// vkey spells a key the way our viper instance nests it.
func vkey(k string) string { return strings.ReplaceAll(k, ".", keyDelim) }

// flagValue turns a flag into the value viper should hold for its key.
func flagValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return f.Value.String()
}

// stringToYAMLHook lets a string (from the environment or a flag) carry a
// structured value written as YAML or JSON, e.g.
// MANHATTAN_CONSUMER_ROLLUPS='[{name: day, kind: day, timezone: UTC}]'.
func stringToYAMLHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if from.Kind() != reflect.String {
			return data, nil
		}
		s := strings.TrimSpace(data.(string))
		structured := (to.Kind() == reflect.Slice && to.Elem().Kind() == reflect.Struct) ||
			(to.Kind() == reflect.Map && (strings.HasPrefix(s, "{") || s == ""))
		if !structured {
			return data, nil
		}
		if s == "" {
			return nil, nil
		}
		var out any
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("not valid YAML/JSON: %w", err)
		}
		return out, nil
	}
}

// durationHook parses durations with an error that quotes the value.
func durationHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if to != reflect.TypeFor[time.Duration]() {
			return data, nil
		}
		if from.Kind() != reflect.String {
			return nil, fmt.Errorf("%v has no unit (write e.g. 1s, 500ms, 2m)", data)
		}
		d, err := time.ParseDuration(strings.TrimSpace(data.(string)))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (e.g. 1s, 500ms, 2m)", data)
		}
		return d, nil
	}
}

// stringToMapHook parses "a.example=1,b.example=2" into a map (host_map from
// the environment or a flag).
func stringToMapHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if from.Kind() != reflect.String || to.Kind() != reflect.Map {
			return data, nil
		}
		out := map[string]any{}
		for _, pair := range strings.Split(data.(string), ",") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf("%q is not host=site_id", pair)
			}
			n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q: site id is not an integer", pair)
			}
			out[strings.TrimSpace(k)] = n
		}
		return out, nil
	}
}

// decodeError rewrites mapstructure's errors as "key: problem" lines.
func decodeError(err error) error {
	var msgs []string
	var walk func(error)
	walk = func(e error) {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) && de.Name() != "" {
			msgs = append(msgs, fmt.Sprintf("%s: %v", de.Name(), de.Unwrap()))
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
			return
		}
		msgs = append(msgs, e.Error())
	}
	walk(err)
	sort.Strings(msgs)
	return fmt.Errorf("invalid configuration:\n  %s", strings.Join(msgs, "\n  "))
}
