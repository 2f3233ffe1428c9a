package chdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// defaultLibPaths are tried, in order, when CHDB_LIB_PATH is not set.
var defaultLibPaths = []string{
	filepath.Join(".cache", "chdb", "libchdb.so"), // where scripts/fetch-chdb.sh puts it
	"/usr/local/lib/libchdb.so",
}

// api holds the libchdb C functions we call. Handles point to C memory.
type api struct {
	path string

	connect   func(argc int32, argv unsafe.Pointer) unsafe.Pointer // chdb_connection *chdb_connect(int, char**)
	closeConn func(conn unsafe.Pointer)                            // void chdb_close_conn(chdb_connection*)
	queryN    func(conn unsafe.Pointer, query unsafe.Pointer, queryLen uintptr,
		format unsafe.Pointer, formatLen uintptr) unsafe.Pointer // chdb_result *chdb_query_n(...)
	queryWithParamsN func(conn unsafe.Pointer, query unsafe.Pointer, queryLen uintptr,
		format unsafe.Pointer, formatLen uintptr,
		names unsafe.Pointer, nameLens unsafe.Pointer,
		values unsafe.Pointer, valueLens unsafe.Pointer, count uintptr) unsafe.Pointer // chdb_query_with_params_n
	destroyResult  func(res unsafe.Pointer)         // chdb_destroy_query_result
	resultBuffer   func(res unsafe.Pointer) *byte   // char *chdb_result_buffer
	resultLength   func(res unsafe.Pointer) uintptr // size_t chdb_result_length
	resultError    func(res unsafe.Pointer) string  // const char *chdb_result_error (NULL → "")
	setSigHandlers func(enabled int32)              // chdb_set_signal_handlers_enabled
}

var (
	libMu  sync.Mutex
	libAPI *api // set once a library loaded; failures are not cached so a fixed env can retry
)

// loadLibrary dlopens libchdb once per process. lookupEnv is os.LookupEnv
// outside tests.
func loadLibrary(lookupEnv func(string) (string, bool)) (*api, error) {
	libMu.Lock()
	defer libMu.Unlock()
	if libAPI != nil {
		return libAPI, nil
	}
	candidates := defaultLibPaths
	if p, ok := lookupEnv("CHDB_LIB_PATH"); ok && p != "" {
		candidates = []string{p} // an explicit choice must not silently fall back
	}
	var errs []error
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		a, err := bind(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		libAPI = a
		return a, nil
	}
	return nil, fmt.Errorf("chdb: cannot load libchdb.so (tried %v): %w; install it with `make chdb` "+
		"(or scripts/fetch-chdb.sh, which puts it at .cache/chdb/libchdb.so), or set CHDB_LIB_PATH to its path",
		candidates, errors.Join(errs...))
}

// bind dlopens path and resolves every symbol we use, returning an error
// (never panicking) when one is missing.
func bind(path string) (*api, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("dlopen %s: %w", path, err)
	}
	a := &api{path: path}
	syms := []struct {
		fn   any
		name string
	}{
		{&a.connect, "chdb_connect"},
		{&a.closeConn, "chdb_close_conn"},
		{&a.queryN, "chdb_query_n"},
		{&a.queryWithParamsN, "chdb_query_with_params_n"},
		{&a.destroyResult, "chdb_destroy_query_result"},
		{&a.resultBuffer, "chdb_result_buffer"},
		{&a.resultLength, "chdb_result_length"},
		{&a.resultError, "chdb_result_error"},
		{&a.setSigHandlers, "chdb_set_signal_handlers_enabled"},
	}
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil {
			return nil, fmt.Errorf("%s: symbol %s missing (chDB ≥ 26.5 is required): %w", path, s.name, err)
		}
		purego.RegisterFunc(s.fn, addr)
	}
	// ClickHouse would install its own SIGSEGV/SIGBUS/… handlers on connect,
	// replacing the ones the Go runtime needs (nil-pointer panics, stack
	// growth, preemption). Opt out; the opt-out itself resets those signals to
	// SIG_DFL, so keep Go's handlers around it.
	withGoSignals(func() { a.setSigHandlers(0) })
	return a, nil
}
