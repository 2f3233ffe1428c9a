package store

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/internal/testenv"
)

// stallProxy forwards to the ClickHouse server until the client has sent
// limit bytes, then stops reading from the client: a server that hangs
// mid-insert.
func stallProxy(t *testing.T, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err, "listen")
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, s) })
			wg.Go(func() {
				buf := make([]byte, 32<<10)
				for {
					if sent.Load() >= limit {
						<-stop // stop reading: the client's writes fill the socket buffers
						return
					}
					n, err := c.Read(buf)
					if n > 0 {
						sent.Add(int64(n))
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// TestEventsInsertToAStalledServerEnds: the events insert sends its chunks
// with clickhouse-go's batch.Flush, which honours no context; the
// connection's write bound must still end it when the server stops reading.
func TestEventsInsertToAStalledServerEnds(t *testing.T) {
	defer func(d time.Duration) { writeStall = d }(writeStall)
	writeStall = time.Second
	// The database is made and dropped directly; only the insert goes
	// through the proxy.
	_, direct := openStore(t, testenv.ClickHouseDBURL)
	u, err := url.Parse(direct)
	must(t, err, "store URL")
	u.Host = stallProxy(t, u.Host, 4<<20)
	s, err := Open(context.Background(), u.String())
	must(t, err, "open through the proxy")
	defer s.Close()
	b := &Batch{Partition: 0}
	long := strings.Repeat("x", 2000)
	for i := range 4 * eventsChunk {
		b.Records = append(b.Records, Record{Partition: 0, Offset: int64(i), Event: &event.Event{
			Type: event.TypePage, TS: 1, VID: "v", URL: long,
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.InsertEvents(ctx, b) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("insert of %d events to a stalled server succeeded", len(b.Records))
		}
		t.Logf("insert ended after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	case <-time.After(20 * time.Second):
		t.Fatal("insert to a stalled server still blocked after 20s")
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && time.Since(t0) > 10*time.Second {
		t.Errorf("insert took %v", time.Since(t0))
	}
}
