// Package storetest opens stores for tests outside package store (which
// keeps its own helpers: it cannot import this): migrated, and closed when
// the test ends.
package storetest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/manhattan-go/manhattan/store"
)

// Open opens and migrates the store at rawURL; it is closed when the test
// ends.
func Open(tb testing.TB, rawURL string) store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, rawURL)
	if err != nil {
		tb.Fatalf("open %s: %v", rawURL, err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatalf("migrate %s: %v", rawURL, err)
	}
	return st
}

// DropDatabase drops the database a clickhouse:// URL names.
func DropDatabase(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("drop database of %s: %w", rawURL, err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	u.Path = "" // connect to the server's default database
	opts, err := clickhouse.ParseDSN(u.String())
	if err != nil {
		return fmt.Errorf("drop %s: %w", db, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("drop %s: %w", db, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		return fmt.Errorf("drop %s: %w", db, err)
	}
	return nil
}
