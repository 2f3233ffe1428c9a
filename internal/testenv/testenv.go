// Package testenv tells tests where the real services are. `make test` (and
// `make services-up`) start them and export these variables; a test that
// needs one fails, never skips, when it is missing.
package testenv

import (
	"os"
	"strings"
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
