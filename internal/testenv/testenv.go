// Package testenv tells tests where the real services are. `make test` (and
// `make services-up`) start them and export these variables; a test that
// needs one fails, never skips, when it is missing.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func need(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: this test needs %s; run it through `make test` (or `make services-up` and export %s)", name, what, name)
	}
	return v
}

// KafkaBrokers returns the Apache Kafka brokers (MANHATTAN_TEST_KAFKA, comma separated).
func KafkaBrokers(t testing.TB) []string {
	return strings.Split(need(t, "MANHATTAN_TEST_KAFKA", "Apache Kafka"), ",")
}

// ClickHouseURL returns the ClickHouse server URL (MANHATTAN_TEST_CLICKHOUSE,
// e.g. clickhouse://127.0.0.1:9000). Tests create their own databases.
func ClickHouseURL(t testing.TB) string {
	return need(t, "MANHATTAN_TEST_CLICKHOUSE", "a ClickHouse server")
}

// CHDBLibPath returns the path of libchdb.so (CHDB_LIB_PATH).
func CHDBLibPath(t testing.TB) string {
	return need(t, "CHDB_LIB_PATH", "libchdb.so (make chdb)")
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// UniqueDB names a fresh ClickHouse database for one test: prefix, the
// test's name and a random suffix, so tests can run side by side.
func UniqueDB(tb testing.TB, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(nonWord.ReplaceAllString(tb.Name(), "_"))
	if len(name) > 30 {
		name = name[:30]
	}
	return prefix + name + "_" + hex.EncodeToString(b[:])
}

// ClickHouseDBURL is the test server's URL pointed at database db.
func ClickHouseDBURL(tb testing.TB, db string) string {
	u, err := url.Parse(ClickHouseURL(tb))
	if err != nil {
		tb.Fatalf("MANHATTAN_TEST_CLICKHOUSE: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

// chDB keeps one data directory per process, so every chdb:// store of a
// test binary lives in this one, each in its own database.
var (
	chdbDirOnce sync.Once
	chdbDir     string
	chdbDirErr  error
)

// CHDBDBURL is a chdb:// URL for database db in the test binary's shared
// chDB directory (removed by RemoveCHDBDir).
func CHDBDBURL(tb testing.TB, db string) string {
	lib := CHDBLibPath(tb)
	chdbDirOnce.Do(func() {
		os.Setenv("CHDB_LIB_PATH", lib)
		chdbDir, chdbDirErr = os.MkdirTemp("", "manhattan-test-chdb-")
	})
	if chdbDirErr != nil {
		tb.Fatal(chdbDirErr)
	}
	return "chdb://" + chdbDir + "?database=" + db
}

// RemoveCHDBDir removes the shared chDB directory; call it from TestMain
// after m.Run.
func RemoveCHDBDir() {
	if chdbDir != "" {
		os.RemoveAll(chdbDir)
	}
}
