package store

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/manhattan-go/manhattan/store/chdb"
)

// chdbBackend runs the engine in-process through chDB.
type chdbBackend struct {
	s *chdb.Session
}

func openCHDB(ctx context.Context, u *url.URL) (Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := u.Host + u.Path // chdb:///abs/dir or chdb://rel/dir
	if u.Opaque != "" {
		dir = u.Opaque // chdb:rel/dir
	}
	if dir == "" {
		return nil, fmt.Errorf("store: chdb URL %q names no directory: want chdb:///path/to/dir", u.String())
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("store: chdb URL options: %w", err)
	}
	db := q.Get("database")
	for k := range q {
		if k != "database" {
			return nil, fmt.Errorf("store: chdb URL: unknown option %q (only database=)", k)
		}
	}
	if _, err := quoteDB(orDefault(db)); err != nil {
		return nil, err
	}
	s, err := chdb.Open(filepath.Clean(dir))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	t, err := newTables(&chdbBackend{s: s}, db)
	if err != nil {
		s.Close()
		return nil, err
	}
	return t, nil
}

func orDefault(db string) string {
	if db == "" {
		return DefaultDatabase
	}
	return db
}

// chdbParams renders parameter values in ClickHouse's text form; the chdb
// package applies the escaping of the parameter transport itself.
func chdbParams(params []param) (map[string]string, error) {
	if len(params) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(params))
	for _, p := range params {
		switch v := p.value.(type) {
		case string:
			m[p.name] = v
		case int64:
			m[p.name] = strconv.FormatInt(v, 10)
		case int32:
			m[p.name] = strconv.FormatInt(int64(v), 10)
		case uint8:
			m[p.name] = strconv.FormatUint(uint64(v), 10)
		case []string:
			var b strings.Builder
			b.WriteByte('[')
			for i, s := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(quoteString(s))
			}
			b.WriteByte(']')
			m[p.name] = b.String()
		default:
			return nil, fmt.Errorf("store: parameter %s: unsupported type %T", p.name, p.value)
		}
	}
	return m, nil
}

// quoteString writes s as a quoted ClickHouse string (elements inside an
// Array parameter are parsed as quoted literals).
var stringQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)

func quoteString(s string) string { return "'" + stringQuoter.Replace(s) + "'" }

func (c *chdbBackend) exec(ctx context.Context, sql string, params []param) error {
	m, err := chdbParams(params)
	if err != nil {
		return err
	}
	return c.s.Exec(ctx, sql, m)
}

func (c *chdbBackend) query(ctx context.Context, sql string, params []param, dest []any, each func() error) error {
	m, err := chdbParams(params)
	if err != nil {
		return err
	}
	out, err := c.s.Query(ctx, sql, m, "RowBinary")
	if err != nil {
		return err
	}
	r := rowReader{buf: out}
	for r.more() {
		if err := r.scan(dest); err != nil {
			return err
		}
		if err := each(); err != nil {
			return err
		}
	}
	return nil
}

// insertChunks sends all rows as one block: chDB parses the insert in
// process, so there is no client-side block to bound.
func (c *chdbBackend) insertChunks(ctx context.Context, table string, cols []string, rows chunks) error {
	return c.insert(ctx, table, cols, &rowSet{n: rows.n, cols: rows.fill(0, rows.n)})
}

// insert sends the rows inline, as TabSeparated text after the INSERT's
// FORMAT clause. chDB ends inline data at the first blank line ("\n\n") and
// would run what follows as SQL; TSV never has one: values are escaped (no
// raw newline inside) and every table has at least two columns, so no row
// is empty. insert still checks, so the data can never become SQL. The
// settings keep the rows one block, so one INSERT is one part: one reading
// block (max_insert_block_size) squashed whole (min_insert_block_size_rows,
// no byte threshold), no parallel parsing, one insert thread.
func (c *chdbBackend) insert(ctx context.Context, table string, cols []string, rows *rowSet) error {
	n := max(rows.n+1, 1048576)
	head := fmt.Sprintf("INSERT INTO %s (%s) SETTINGS max_insert_block_size = %d, min_insert_block_size_rows = %d,"+
		" min_insert_block_size_bytes = 0, max_insert_threads = 1, input_format_parallel_parsing = 0 FORMAT TabSeparated\n",
		table, colNames(cols), n, n)
	data, err := appendTSV([]byte(head), rows)
	if err != nil {
		return err
	}
	if bytes.Contains(data[len(head)-1:], []byte("\n\n")) {
		return fmt.Errorf("store: chdb insert into %s: encoded rows hold a blank line", table)
	}
	return c.s.Exec(ctx, string(data), nil)
}

func (c *chdbBackend) ping(ctx context.Context) error {
	return c.s.Exec(ctx, "SELECT 1", nil)
}

func (c *chdbBackend) close() error { return c.s.Close() }
