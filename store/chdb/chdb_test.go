package chdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/manhattan-go/manhattan/internal/testenv"
)

// hostile are strings that must survive every path unchanged.
var hostile = []string{
	"",
	"plain",
	"it's \"quoted\" `back`",
	`back\slash \\ \t \n \N \0 \' \x41`,
	"tab\there\nnewline\r\ncrlf",
	"nul\x00inside\x00",
	"blank\n\nline\n\n\n",
	"unicode: é ☃ 日本語 🚀 \u202e",
	"'); DROP TABLE t; --",
	"{name:String} {{x}} $1 ? %s",
	`\N`,
	strings.Repeat("long ", 2000),
}

// openTest opens dir with the library from the test environment and closes the
// session at the end of the test.
func openTest(t testing.TB, dir string) *Session {
	t.Helper()
	t.Setenv("CHDB_LIB_PATH", testenv.CHDBLibPath(t))
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustExec(t testing.TB, s *Session, q string) {
	t.Helper()
	if err := s.Exec(context.Background(), q, nil); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func readStrings(t *testing.T, s *Session, q string) map[int64]string {
	t.Helper()
	out, err := s.Query(context.Background(), q, nil, "JSONEachRow")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	got := map[int64]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r struct {
			ID int64  `json:"id"`
			S  string `json:"s"`
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		got[r.ID] = r.S
	}
	return got
}

func TestInsertAndReadBackHostileStrings(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	mustExec(t, s, "CREATE DATABASE IF NOT EXISTS h")
	mustExec(t, s, "CREATE TABLE h.t (id Int64, s String) ENGINE = MergeTree ORDER BY id")

	// JSONEachRow after the query text.
	var body bytes.Buffer
	body.WriteString("INSERT INTO h.t (id, s) FORMAT JSONEachRow\n")
	for i, v := range hostile {
		// ClickHouse reads JSON strings as bytes; json.Marshal would turn NUL
		// into \u0000, which it reads back as NUL too.
		line, _ := json.Marshal(map[string]any{"id": i, "s": v})
		body.Write(line)
		body.WriteByte('\n')
	}
	if err := s.Exec(ctx, body.String(), nil); err != nil {
		t.Fatalf("insert JSONEachRow: %v", err)
	}
	// RowBinary as a parameter: raw bytes, NUL and blank lines included
	// (inline after the query text a blank line would end the data).
	var rb bytes.Buffer
	for i, v := range hostile {
		rb.Write(binary.LittleEndian.AppendUint64(nil, uint64(1000+i)))
		rb.Write(binary.AppendUvarint(nil, uint64(len(v))))
		rb.WriteString(v)
	}
	if err := s.Exec(ctx, "INSERT INTO h.t SELECT * FROM format(RowBinary, 'id Int64, s String', {data:String})",
		map[string]string{"data": rb.String()}); err != nil {
		t.Fatalf("insert RowBinary: %v", err)
	}
	// One row per value through params.
	for i, v := range hostile {
		if err := s.Exec(ctx, "INSERT INTO h.t (id, s) SELECT {id:Int64}, {s:String}",
			map[string]string{"id": fmt.Sprint(2000 + i), "s": v}); err != nil {
			t.Fatalf("insert params %q: %v", v, err)
		}
	}

	got := readStrings(t, s, "SELECT id, s FROM h.t ORDER BY id")
	if len(got) != 3*len(hostile) {
		t.Fatalf("got %d rows, want %d", len(got), 3*len(hostile))
	}
	for i, v := range hostile {
		for _, base := range []int64{0, 1000, 2000} {
			if g := got[base+int64(i)]; g != v {
				t.Errorf("row %d: got %q, want %q", base+int64(i), g, v)
			}
		}
	}
	// RowBinary output returns the exact bytes too.
	out, err := s.Query(ctx, "SELECT s FROM h.t WHERE id = 1005", nil, "RowBinary")
	if err != nil {
		t.Fatal(err)
	}
	n, k := binary.Uvarint(out)
	if k <= 0 || string(out[k:k+int(n)]) != hostile[5] {
		t.Errorf("RowBinary read back %q, want %q", out, hostile[5])
	}
}

func TestParams(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	for _, v := range hostile {
		out, err := s.Query(ctx, "SELECT {v:String} AS s, 1 AS id, length({v:String}) AS n",
			map[string]string{"v": v}, "JSONEachRow")
		if err != nil {
			t.Fatalf("param %q: %v", v, err)
		}
		var r struct {
			S string `json:"s"`
			N int    `json:"n"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if r.S != v || r.N != len(v) {
			t.Errorf("param %q came back as %q (length %d)", v, r.S, r.N)
		}
	}
	// Typed scalars, an array literal, the same name twice, a filter that
	// must not be injectable.
	out, err := s.Query(ctx,
		"SELECT {n:Int64} + 1, {d:Date}, {a:Array(String)}, {n:Int64} * 2, count() FROM numbers(3) WHERE toString(number) = {f:String}",
		map[string]string{"n": "41", "d": "2026-12-03", "a": `['x','it\'s']`, "f": "1' OR '1'='1"}, "TSV")
	if err != nil {
		t.Fatal(err)
	}
	if want := "42\t2026-12-03\t['x','it\\'s']\t82\t0\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
	// A missing parameter is the engine's error, not a crash.
	if _, err := s.Query(ctx, "SELECT {missing:String}", map[string]string{"other": "x"}, "TSV"); err == nil {
		t.Error("missing parameter: no error")
	}
}

func TestErrorMessage(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	_, err := s.Query(ctx, "SELEC 1", nil, "TSV")
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "Syntax error") || !strings.Contains(ce.Message, "SYNTAX_ERROR") {
		t.Fatalf("bad SQL: got %v, want a *Error with the server's syntax error", err)
	}
	err = s.Exec(ctx, "SELECT * FROM no_such_db.no_such_table", nil)
	if err == nil || !strings.Contains(err.Error(), "no_such_db") {
		t.Fatalf("unknown table: got %v", err)
	}
	// The session still works after errors.
	out, err := s.Query(ctx, "SELECT 1", nil, "TSV")
	if err != nil || string(out) != "1\n" {
		t.Fatalf("after errors: %q %v", out, err)
	}
}

func TestConcurrentQueries(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustExec(t, s, "CREATE TABLE c (n UInt64) ENGINE = MergeTree ORDER BY n")
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range each {
				n := g*1000 + i
				if err := s.Exec(ctx, "INSERT INTO c (n) VALUES ({n:UInt64})", map[string]string{"n": fmt.Sprint(n)}); err != nil {
					errs <- err
					return
				}
				out, err := s.Query(ctx, "SELECT {n:UInt64} + 1", map[string]string{"n": fmt.Sprint(n)}, "TSV")
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("%d\n", n+1); string(out) != want {
					errs <- fmt.Errorf("goroutine %d: got %q, want %q", g, out, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out, err := s.Query(context.Background(), "SELECT count(), uniqExact(n) FROM c", nil, "TSV")
	if want := fmt.Sprintf("%d\t%d\n", goroutines*each, goroutines*each); err != nil || string(out) != want {
		t.Fatalf("count: %q %v, want %q", out, err, want)
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Setenv("CHDB_LIB_PATH", testenv.CHDBLibPath(t))
	dir := filepath.Join(t.TempDir(), "created", "on", "open")
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "CREATE DATABASE d; CREATE TABLE d.t (s String) ENGINE = MergeTree ORDER BY s", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "INSERT INTO d.t (s) SELECT {s:String}", map[string]string{"s": hostile[3]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query(ctx, "SELECT 1", nil, "TSV"); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	out, err := s2.Query(ctx, "SELECT s FROM d.t", nil, "RowBinary")
	if err != nil {
		t.Fatal(err)
	}
	n, k := binary.Uvarint(out)
	if k <= 0 || string(out[k:k+int(n)]) != hostile[3] {
		t.Fatalf("after reopen got %q, want %q", out, hostile[3])
	}
}

func TestOneDirectoryPerProcess(t *testing.T) {
	t.Setenv("CHDB_LIB_PATH", testenv.CHDBLibPath(t))
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a1, err := Open(dirA)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := Open(dirA + "/.") // same directory, other spelling
	if err != nil {
		t.Fatalf("second Open of the same dir: %v", err)
	}
	if _, err := Open(dirB); err == nil || !strings.Contains(err.Error(), "one data directory per process") {
		t.Fatalf("Open of another dir while open: %v", err)
	}
	if err := a1.Exec(ctx, "CREATE TABLE x (n Int8) ENGINE = Memory", nil); err != nil {
		t.Fatal(err)
	}
	_ = a1.Close()
	// a2 still holds the shared connection.
	if out, err := a2.Query(ctx, "EXISTS TABLE x", nil, "TSV"); err != nil || string(out) != "1\n" {
		t.Fatalf("shared session after the other's Close: %q %v", out, err)
	}
	_ = a2.Close()
	b, err := Open(dirB)
	if err != nil {
		t.Fatalf("Open of another dir after every Close: %v", err)
	}
	defer b.Close()
	if out, err := b.Query(ctx, "EXISTS TABLE x", nil, "TSV"); err != nil || string(out) != "0\n" {
		t.Fatalf("new dir sees the old one's table: %q %v", out, err)
	}
}

func TestContextCheckedBeforeCall(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Query(ctx, "SELECT 1", nil, "TSV"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}
}

// TestMissingLibrary runs itself in a child process where libchdb cannot be
// loaded (the parent has it loaded already, and a process keeps it).
func TestMissingLibrary(t *testing.T) {
	if os.Getenv("CHDB_TEST_MISSING_CHILD") == "1" {
		_, err := Open(t.TempDir())
		if err == nil {
			t.Fatal("Open succeeded without a library")
		}
		for _, want := range []string{"/nonexistent/libchdb.so", "make chdb", "fetch-chdb.sh", "CHDB_LIB_PATH"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		fmt.Println("CHILD-OK:", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingLibrary$", "-test.v")
	cmd.Env = append(os.Environ(), "CHDB_TEST_MISSING_CHILD=1", "CHDB_LIB_PATH=/nonexistent/libchdb.so")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("CHILD-OK:")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestGoSignalsSurvive checks that after the engine started, a nil
// dereference is still Go's recoverable panic (chDB's own SIGSEGV handler
// would hang or kill the process instead).
func TestGoSignalsSurvive(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, err := s.Query(context.Background(), "SELECT count() FROM numbers(1000000)", nil, "TSV"); err != nil {
		t.Fatal(err)
	}
	var p *int
	recovered := func() (r any) {
		defer func() { r = recover() }()
		return *p
	}()
	if err, ok := recovered.(error); !ok || !strings.Contains(err.Error(), "nil pointer dereference") {
		t.Fatalf("nil dereference: recovered %v", recovered)
	}
}
