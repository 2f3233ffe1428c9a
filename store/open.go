package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// DefaultDatabase is the database used when the URL names none.
const DefaultDatabase = "manhattan"

// Open connects by URL:
//
//	clickhouse://host:9000/db?dial_timeout=5s&compress=lz4   (clickhouse-go v2 DSN options)
//	chdb:///path/to/dir?database=name                        (chDB in-process)
//
// The database defaults to "manhattan". Open does not create anything; call
// Migrate. Only chdb:// loads libchdb, so a binary without it runs fine on
// clickhouse://.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: bad URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "clickhouse", "tcp":
		return openNative(ctx, rawURL)
	case "chdb":
		return openCHDB(ctx, u)
	default:
		return nil, fmt.Errorf("store: unsupported URL scheme %q: want clickhouse://host:9000/db or chdb:///path/to/dir", u.Scheme)
	}
}

// newTables wraps a backend after validating the database name.
func newTables(b backend, db string) (*tables, error) {
	if db == "" {
		db = DefaultDatabase
	}
	q, err := quoteDB(db)
	if err != nil {
		return nil, err
	}
	return &tables{b: b, db: q}, nil
}
