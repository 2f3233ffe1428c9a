package config

import (
	"strings"
	"testing"
)

func TestSplitSeeding(t *testing.T) {
	cfg, err := Load(Source{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.SplitSeeding != "design" {
		t.Fatalf("default producer.split_seeding = %q, want design", cfg.Producer.SplitSeeding)
	}

	cfg, err = Load(Source{File: writeFile(t, "producer:\n  secret: s\n  split_seeding: python2\n"), LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.SplitSeeding != "python2" {
		t.Fatalf("file: split_seeding = %q, want python2", cfg.Producer.SplitSeeding)
	}
	if err := cfg.Validate(PartProducer); err != nil {
		t.Fatal(err)
	}

	cfg, err = Load(Source{LookupEnv: env(map[string]string{
		"MANHATTAN_PRODUCER_SECRET":        "s",
		"MANHATTAN_PRODUCER_SPLIT_SEEDING": "python3",
	})})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate(PartProducer)
	if err == nil || !strings.Contains(err.Error(), `producer.split_seeding: "python3"`) {
		t.Fatalf("Validate with split_seeding python3 = %v, want an error naming the key and value", err)
	}
}
