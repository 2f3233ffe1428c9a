package store

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/manhattan-go/manhattan/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCHDBDir()
	os.Exit(code)
}

func uniqueDB(tb testing.TB) string { return testenv.UniqueDB(tb, "t_") }

// backends are the two connections every store test runs on.
var backends = []struct {
	name string
	url  func(testing.TB, string) string
}{
	{"clickhouse", testenv.ClickHouseDBURL},
	{"chdb", testenv.CHDBDBURL},
}

// openStore opens a migrated store on a fresh database; the database is
// dropped when the test ends.
func openStore(tb testing.TB, rawURL func(testing.TB, string) string) (Store, string) {
	tb.Helper()
	ctx := context.Background()
	db := uniqueDB(tb)
	u := rawURL(tb, db)
	s, err := Open(ctx, u)
	if err != nil {
		tb.Fatalf("Open(%s): %v", u, err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		tb.Fatalf("Migrate: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.(*tables).b.exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`", nil); err != nil {
			tb.Errorf("drop %s: %v", db, err)
		}
		s.Close()
	})
	return s, u
}

// eachStore runs f as a subtest on each connection.
func eachStore(t *testing.T, f func(t *testing.T, s Store, url string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, u := openStore(t, b.url)
			f(t, s, u)
		})
	}
}

func must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
