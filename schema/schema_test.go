package schema

import (
	"strings"
	"testing"
)

func TestMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("want migration 1 first, got %+v", ms)
	}
	for i, m := range ms {
		if i > 0 && m.Version <= ms[i-1].Version {
			t.Fatalf("versions out of order: %d after %d", m.Version, ms[i-1].Version)
		}
		for _, s := range m.Statements {
			if strings.HasSuffix(s, ";") || strings.Contains(s, "--") {
				t.Errorf("statement not cleaned: %q", s)
			}
			if !strings.Contains(s, DBPlaceholder+".") {
				t.Errorf("statement does not qualify its table with %s: %q", DBPlaceholder, s)
			}
			for _, banned := range []string{"LowCardinality", "DateTime64", "SimpleAggregateFunction", " TTL "} {
				if strings.Contains(s, banned) {
					t.Errorf("statement uses %s, unavailable on ClickHouse 18.16: %q", banned, s)
				}
			}
		}
	}
}

func TestSplit(t *testing.T) {
	got := Split("-- c\nCREATE A;\n\n  -- x\nCREATE B (\n a String\n);\nCREATE C")
	want := []string{"CREATE A", "CREATE B (\n a String\n)", "CREATE C"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d: got %q want %q", i, got[i], want[i])
		}
	}
}
