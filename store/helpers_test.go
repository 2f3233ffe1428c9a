package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/manhattan-go/manhattan/internal/testenv"
)

// chDB keeps one data directory per process, so every chdb:// store of the
// test binary lives in this one, each in its own database.
var (
	chdbDirOnce sync.Once
	chdbDir     string
	chdbDirErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if chdbDir != "" {
		os.RemoveAll(chdbDir)
	}
	os.Exit(code)
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// uniqueDB names a fresh database for one test.
func uniqueDB(tb testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	name := strings.ToLower(nonWord.ReplaceAllString(tb.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

// clickhouseURL points the test server URL at db.
func clickhouseURL(tb testing.TB, db string) string {
	u, err := url.Parse(testenv.ClickHouseURL(tb))
	if err != nil {
		tb.Fatalf("MANHATTAN_TEST_CLICKHOUSE: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

func chdbURL(tb testing.TB, db string) string {
	lib := testenv.CHDBLibPath(tb)
	chdbDirOnce.Do(func() {
		os.Setenv("CHDB_LIB_PATH", lib)
		chdbDir, chdbDirErr = os.MkdirTemp("", "manhattan-store-chdb-")
	})
	if chdbDirErr != nil {
		tb.Fatal(chdbDirErr)
	}
	return "chdb://" + chdbDir + "?database=" + db
}

// backends are the two connections every store test runs on.
var backends = []struct {
	name string
	url  func(testing.TB, string) string
}{
	{"clickhouse", clickhouseURL},
	{"chdb", chdbURL},
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
