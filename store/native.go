package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// maxQuerySize lets a batch state load carry tens of thousands of ids: the
// native connection binds them into the query text (18.16 has no query
// parameters), and the server's default limit is 256 KiB.
const maxQuerySize = 64 << 20

// nativeBackend talks to a ClickHouse server over the native protocol.
type nativeBackend struct {
	conn driver.Conn
}

func openNative(ctx context.Context, dsn string) (Store, error) {
	if strings.HasPrefix(strings.ToLower(dsn), "tcp://") {
		dsn = "clickhouse://" + dsn[len("tcp://"):]
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: bad clickhouse URL: %w", err)
	}
	// Tables are always qualified; connect to the server's default database
	// so Migrate can create ours.
	db := opts.Auth.Database
	opts.Auth.Database = ""
	if opts.Settings == nil {
		opts.Settings = clickhouse.Settings{}
	}
	if _, set := opts.Settings["max_query_size"]; !set {
		opts.Settings["max_query_size"] = maxQuerySize
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("store: clickhouse: %w", err)
	}
	t, err := newTables(&nativeBackend{conn: conn}, db)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

func nativeArgs(sql string, params []param) (string, []any, error) {
	text, types := nativeSQL(sql)
	args := make([]any, 0, len(params))
	for _, p := range params {
		if _, ok := types[p.name]; !ok {
			return "", nil, fmt.Errorf("store: parameter %q not in query", p.name)
		}
		args = append(args, clickhouse.Named(p.name, p.value))
	}
	if len(args) != len(types) {
		return "", nil, fmt.Errorf("store: query wants %d parameters, got %d", len(types), len(args))
	}
	return text, args, nil
}

func (n *nativeBackend) exec(ctx context.Context, sql string, params []param) error {
	text, args, err := nativeArgs(sql, params)
	if err != nil {
		return err
	}
	return n.conn.Exec(ctx, text, args...)
}

func (n *nativeBackend) query(ctx context.Context, sql string, params []param, dest []any, each func() error) error {
	text, args, err := nativeArgs(sql, params)
	if err != nil {
		return err
	}
	rows, err := n.conn.Query(ctx, text, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := each(); err != nil {
			return err
		}
	}
	return rows.Err()
}

// insert sends all rows as one block: one INSERT, one part per partition.
func (n *nativeBackend) insert(ctx context.Context, table string, cols []string, rows *rowSet) error {
	batch, err := n.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+colNames(cols)+")")
	if err != nil {
		return err
	}
	for i, col := range rows.cols {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("column %s: %w", cols[i], err)
		}
	}
	return batch.Send()
}

// insertChunks sends each chunk as a block of one INSERT. The server may
// write a part per block, so the rows must not need to land together.
func (n *nativeBackend) insertChunks(ctx context.Context, table string, cols []string, rows chunks) error {
	batch, err := n.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+colNames(cols)+")")
	if err != nil {
		return err
	}
	for from := 0; from < rows.n; from += rows.size {
		to := min(from+rows.size, rows.n)
		for i, col := range rows.fill(from, to) {
			if err := batch.Column(i).Append(col); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("column %s: %w", cols[i], err)
			}
		}
		if to < rows.n {
			// Sends the block and keeps the columns' memory for the next.
			if err := batch.Flush(); err != nil {
				_ = batch.Abort()
				return err
			}
		}
	}
	return batch.Send()
}

func (n *nativeBackend) ping(ctx context.Context) error { return n.conn.Ping(ctx) }
func (n *nativeBackend) close() error                   { return n.conn.Close() }
