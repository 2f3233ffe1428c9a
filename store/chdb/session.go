package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrClosed is returned by calls on a Session after its Close.
var ErrClosed = errors.New("chdb: session is closed")

// Error is a query error reported by the engine; Message is ClickHouse's
// own text (e.g. "Code: 62. DB::Exception: Syntax error: …").
type Error struct {
	Message string
}

func (e *Error) Error() string { return "chdb: " + e.Message }

// Session is one user's handle on the process-wide chDB connection. Handles
// to the same directory share that connection; each must be closed once.
type Session struct {
	c      *conn
	closed atomic.Bool
}

// conn is the process's single chDB connection.
type conn struct {
	api  *api
	dir  string
	refs int // guarded by openMu

	mu     sync.Mutex     // serializes calls into the engine (see package doc)
	handle unsafe.Pointer // chdb_connection* (C memory); nil once closed
}

var (
	openMu  sync.Mutex
	current *conn // the open connection, nil when none
)

// Open returns a session on the chDB database kept in dataDir, creating the
// directory if needed and loading libchdb on first use. Opening the
// directory that is already open shares its connection; opening another
// one while a session is open is an error (chDB keeps one storage path per
// process).
func Open(dataDir string) (*Session, error) {
	return open(dataDir, os.LookupEnv)
}

func open(dataDir string, lookupEnv func(string) (string, bool)) (*Session, error) {
	if dataDir == "" {
		return nil, errors.New("chdb: empty data directory")
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("chdb: data directory %q: %w", dataDir, err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if current != nil {
		if current.dir != dir {
			return nil, fmt.Errorf("chdb: %s is open in this process; chDB serves one data directory per process, close every session on it before opening %s", current.dir, dir)
		}
		current.refs++
		return &Session{c: current}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chdb: create data directory: %w", err)
	}
	a, err := loadLibrary(lookupEnv)
	if err != nil {
		return nil, err
	}
	argv := []string{"clickhouse", "--path=" + dir}
	cArgs := make([][]byte, len(argv))
	ptrs := make([]unsafe.Pointer, len(argv)+1) // NULL-terminated like main's argv
	var pin runtime.Pinner
	defer pin.Unpin()
	for i, s := range argv {
		cArgs[i] = append([]byte(s), 0)
		pin.Pin(&cArgs[i][0])
		ptrs[i] = unsafe.Pointer(&cArgs[i][0])
	}
	var h unsafe.Pointer
	withGoSignals(func() { h = a.connect(int32(len(argv)), unsafe.Pointer(&ptrs[0])) })
	runtime.KeepAlive(ptrs)
	if h == nil {
		return nil, fmt.Errorf("chdb: cannot connect to %s (is it used by another process, or not a chDB data directory?)", dir)
	}
	current = &conn{api: a, dir: dir, refs: 1, handle: h}
	return &Session{c: current}, nil
}

// Close releases this handle; the connection closes with the last one.
// Closing twice is harmless.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	openMu.Lock()
	defer openMu.Unlock()
	c := s.c
	c.refs--
	if c.refs > 0 {
		return nil
	}
	c.mu.Lock() // wait for a running query
	defer c.mu.Unlock()
	withGoSignals(func() { c.api.closeConn(c.handle) })
	c.handle = nil
	if current == c {
		current = nil
	}
	return nil
}

// Dir is the absolute data directory of the session.
func (s *Session) Dir() string { return s.c.dir }

// Exec runs a statement, discarding any output.
func (s *Session) Exec(ctx context.Context, query string, params map[string]string) error {
	_, err := s.Query(ctx, query, params, "TabSeparated")
	return err
}

// Query runs query and returns its output in format (e.g. "JSONEachRow",
// "TSV", "RowBinary"; "" means TabSeparated). params bind {name:Type}
// placeholders server-side: a value is the plain text of a scalar
// (any string, escaped here as ClickHouse expects) or the ClickHouse literal
// of an Array/Map/Tuple (e.g. ['a','b']). Text after an INSERT's FORMAT clause is the data to
// insert. ctx is checked before the call only: a running engine call cannot
// be interrupted.
func (s *Session) Query(ctx context.Context, query string, params map[string]string, format string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if format == "" {
		format = "TabSeparated"
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handle == nil {
		return nil, ErrClosed
	}
	// The engine's own waiting for the lock may have outlived ctx.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	res := c.call(query, params, format)
	if res == nil {
		return nil, errors.New("chdb: the engine returned no result")
	}
	defer c.api.destroyResult(res)
	if msg := c.api.resultError(res); msg != "" {
		return nil, &Error{Message: msg}
	}
	n := int(c.api.resultLength(res))
	out := make([]byte, n)
	if n > 0 {
		buf := c.api.resultBuffer(res)
		copy(out, unsafe.Slice(buf, n))
	}
	return out, nil
}

// call runs one statement through chdb_query_n or, with params,
// chdb_query_with_params_n; both take explicit lengths so data may hold NUL.
// The caller holds c.mu.
func (c *conn) call(query string, params map[string]string, format string) unsafe.Pointer {
	var pin runtime.Pinner
	defer pin.Unpin()
	q := cBytes(&pin, query)
	f := cBytes(&pin, format)
	conn := *(*unsafe.Pointer)(c.handle) // chdb_query takes the chdb_connection the handle points to
	if len(params) == 0 {
		return c.api.queryN(conn, q, uintptr(len(query)), f, uintptr(len(format)))
	}
	names := make([]unsafe.Pointer, 0, len(params))
	nameLens := make([]uintptr, 0, len(params))
	values := make([]unsafe.Pointer, 0, len(params))
	valueLens := make([]uintptr, 0, len(params))
	types := paramTypes(query)
	for k, v := range params {
		v = escapeParam(types[k], v)
		names = append(names, cBytes(&pin, k))
		nameLens = append(nameLens, uintptr(len(k)))
		values = append(values, cBytes(&pin, v))
		valueLens = append(valueLens, uintptr(len(v)))
	}
	// The arrays hold Go pointers, so they are pinned too.
	pin.Pin(&names[0])
	pin.Pin(&nameLens[0])
	pin.Pin(&values[0])
	pin.Pin(&valueLens[0])
	return c.api.queryWithParamsN(conn, q, uintptr(len(query)), f, uintptr(len(format)),
		unsafe.Pointer(&names[0]), unsafe.Pointer(&nameLens[0]),
		unsafe.Pointer(&values[0]), unsafe.Pointer(&valueLens[0]), uintptr(len(params)))
}

// cBytes returns a pinned pointer to s's bytes plus a NUL (never nil, even
// for ""), valid until pin is released.
func cBytes(pin *runtime.Pinner, s string) unsafe.Pointer {
	b := make([]byte, len(s)+1)
	copy(b, s)
	pin.Pin(&b[0])
	return unsafe.Pointer(&b[0])
}

// placeholderRE finds {name:Type} query parameters.
var placeholderRE = regexp.MustCompile(`\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^}]*)\}`)

// paramTypes maps each placeholder name in query to its declared type.
func paramTypes(query string) map[string]string {
	types := map[string]string{}
	for _, m := range placeholderRE.FindAllStringSubmatch(query, -1) {
		types[m[1]] = strings.TrimSpace(m[2])
	}
	return types
}

// escapeParam prepares a value for a parameter of type typ. ClickHouse parses
// parameter values in its escaped (TSV) text form, where a backslash starts
// an escape and a raw tab or newline ends the value; scalars are escaped so
// any string arrives unchanged. Composite types (Array, Map, Tuple) are
// ClickHouse literals whose quoted elements carry their own escaping, so
// they are passed as given.
func escapeParam(typ, v string) string {
	for _, p := range []string{"Array(", "Map(", "Tuple(", "Nested("} {
		if strings.HasPrefix(typ, p) {
			return v
		}
	}
	if !strings.ContainsAny(v, "\\\t\n\r\x00") {
		return v
	}
	return paramEscaper.Replace(v)
}

var paramEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)
