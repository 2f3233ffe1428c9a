// Package chdb runs ClickHouse in-process through libchdb (chDB ≥ 26.5),
// for the store's chdb:///path/to/dir URLs. It binds the C API lazily with
// purego: nothing is loaded until Open, so programs that never use chDB run
// without the library.
//
// The library is found at CHDB_LIB_PATH (used alone when set), else
// .cache/chdb/libchdb.so under the working directory (`make chdb` or
// scripts/fetch-chdb.sh put it there), else /usr/local/lib/libchdb.so.
//
// Facts measured against chDB 26.5.3 (see the tests):
//
//   - One data directory per process. The engine accepts several
//     connections to the directory it runs on, and refuses (chdb_connect
//     returns NULL) another directory until every connection is closed.
//     Open therefore shares one refcounted connection between the sessions
//     of a directory and reports a clear error for another directory; after
//     the last Close, any directory can be opened.
//   - Concurrency: one session may be used by many goroutines. The engine
//     runs one statement at a time per connection anyway (concurrent callers
//     were no faster than serial ones), so calls are serialized here with a
//     mutex, which also keeps Close from racing a query. A small query takes
//     about 1–2 ms on the development machine.
//   - Cancellation: ctx is checked before the call (and after waiting for
//     the mutex); a statement running inside the engine cannot be interrupted.
//   - Several statements separated by ';' run in one call.
//   - Parameters ({name:Type}) are bound by the engine
//     (chdb_query_with_params_n), never spliced into SQL; any string value
//     round-trips (quotes, backslashes, tabs, newlines, NUL, unicode, SQL).
//   - Bulk inserts: put the rows after the query text,
//     "INSERT INTO t (cols) FORMAT JSONEachRow\n" + one JSON object per line
//     (encoding/json's Encoder output). In this mode an empty line ends the
//     inline data and what follows is silently dropped, so never send binary
//     formats (RowBinary, Native) inline: pass them as a parameter instead,
//     "INSERT INTO t SELECT * FROM format(RowBinary, 'a Int64, s String', {data:String})".
//     100k event-like rows: ~110–310k rows/s for inline JSONEachRow
//     (~50–210k rows/s including encoding), ~75k rows/s for RowBinary via a
//     parameter, against ~1–1.3M rows/s for the engine generating the rows
//     itself (BenchmarkInsert100k).
//   - Signals: ClickHouse would install SIGSEGV/SIGBUS/… handlers that the Go
//     runtime needs; they are switched off at load
//     (chdb_set_signal_handlers_enabled(0)) and Go's handlers are restored
//     around every call that resets them.
package chdb
