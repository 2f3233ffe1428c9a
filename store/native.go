package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

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
	dialTimeout, tlsConf := opts.DialTimeout, opts.TLS
	if dialTimeout <= 0 {
		dialTimeout = 30 * time.Second // clickhouse-go's default
	}
	opts.DialContext = func(ctx context.Context, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: dialTimeout}
		var c net.Conn
		var err error
		if tlsConf != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: writeStall}, nil
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

// writeStall bounds one write to the server (at most clickhouse-go's 10 MiB
// buffer, so it also needs a link faster than ~350 KB/s). clickhouse-go's
// batch.Flush (insertChunks) honours no context, so a server that stops
// reading would otherwise block a worker, and with it its consumer group's
// generation, until TCP gives up (about 15 minutes).
var writeStall = 30 * time.Second

// stallConn gives every write a deadline of at most stall from its start,
// or the caller's own earlier write deadline.
type stallConn struct {
	net.Conn
	stall time.Duration

	mu       sync.Mutex
	deadline time.Time // the write deadline clickhouse-go last set
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.setWrite(t)
	return c.Conn.SetDeadline(t)
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.setWrite(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) setWrite(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
}

func (c *stallConn) Write(p []byte) (int, error) {
	d := time.Now().Add(c.stall)
	c.mu.Lock()
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
