package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/event"
)

// fetched is one fetch response of a partition: its records' offsets in
// order, each one's decoded event (zero for a dead letter), the records
// that are dead letters, and the partition's high-water mark at that moment
// (for lag). The records themselves are not kept: a fetch holds megabytes.
type fetched struct {
	offsets       []int64
	evs           []event.Event
	bad           []badRecord // in offset order
	highWaterMark int64
}

// badRecord is a record that failed to decode or validate: the i-th of its
// fetch.
type badRecord struct {
	i   int
	msg kafka.Message
	err error
}

// add decodes and validates m and appends it. Decoding is a pure function
// of the record, so the fetcher does it ahead of the worker: decoding the
// next fetch overlaps with applying (or flushing) the previous one.
func (f *fetched) add(m kafka.Message) {
	// kafka-go reads each value into a fresh slice that nothing writes to
	// afterwards, so the event's strings can share its bytes.
	ev, err := event.DecodeString(unsafe.String(unsafe.SliceData(m.Value), len(m.Value)))
	switch {
	case err != nil:
	case string(m.Key) != ev.VID:
		// A visitor's records must share one partition, or two workers
		// would hold diverging copies of its state.
		err = fmt.Errorf("record key %q is not the visitor id %q", truncate(string(m.Key)), ev.VID)
	}
	if err != nil {
		f.bad = append(f.bad, badRecord{i: len(f.offsets), msg: m, err: err})
		ev = event.Event{}
	}
	f.offsets = append(f.offsets, m.Offset)
	f.evs = append(f.evs, ev)
}

// fetcher reads one partition straight from its leader with kafka.Conn, one
// fetch request per batch: batches map onto fetch responses, which is what
// the worker needs to load a batch's visitor states in one query. It redials
// and resumes at the next offset after connection or leadership errors.
type fetcher struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	partition int
	maxBytes  int
	maxWait   time.Duration
	log       *slog.Logger
}

const (
	fetchMaxWait    = 250 * time.Millisecond
	fetchBackoffMin = 100 * time.Millisecond
	fetchBackoffMax = 5 * time.Second
)

// run sends batches starting at offset (kafka.FirstOffset for the earliest)
// until ctx is done, and returns ctx's error.
func (f *fetcher) run(ctx context.Context, offset int64, out chan<- fetched) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleepCtx(ctx, backoff(attempt, fetchBackoffMin, fetchBackoffMax)) {
			return ctx.Err()
		}
		conn, err := f.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.Warn("kafka: cannot reach partition leader", "partition", f.partition, "attempt", attempt, "err", err)
			continue
		}
		next, err := f.read(ctx, conn, offset, out)
		_ = conn.Close()
		if next > offset || err == nil {
			attempt = 0
		}
		offset = next
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Every fetch error is retried: leadership moves, restarts and
		// retention surface as errors here and heal by redialing.
		if err != nil && !errors.Is(err, io.ErrNoProgress) {
			f.log.Warn("kafka: fetch failed, reconnecting", "partition", f.partition, "offset", offset, "err", err)
		}
	}
}

func (f *fetcher) dial(ctx context.Context) (*kafka.Conn, error) {
	var errs []error
	for _, b := range f.brokers {
		conn, err := f.dialer.DialLeader(ctx, "tcp", b, f.topic, f.partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// read fetches on one connection until an error; it returns the next offset.
func (f *fetcher) read(ctx context.Context, conn *kafka.Conn, offset int64, out chan<- fetched) (int64, error) {
	// Conn calls take deadlines, not contexts: close the connection to
	// interrupt a blocked call when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return offset, err
	}
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return offset, fmt.Errorf("read offsets: %w", err)
	}
	switch {
	case offset < 0:
		offset = first
	case offset < first:
		f.log.Warn("kafka: records below the start offset were deleted by retention", "partition", f.partition, "from", offset, "to", first)
		offset = first
	case offset > last:
		// Past the end (e.g. the topic was recreated): wait for data
		// rather than skip anything.
		f.log.Warn("kafka: start offset is past the end of the partition", "partition", f.partition, "offset", offset, "end", last)
	}
	if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return offset, fmt.Errorf("seek %d: %w", offset, err)
	}
	_ = conn.SetDeadline(time.Time{})

	sizeHint := 0
	for {
		if err := ctx.Err(); err != nil {
			return offset, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(f.maxWait + 10*time.Second))
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: f.maxWait})
		hwm := batch.HighWaterMark()
		// Sized like the previous fetch: fetches of a backlog are alike,
		// and growing the slices copies them again and again.
		fb := fetched{offsets: make([]int64, 0, sizeHint), evs: make([]event.Event, 0, sizeHint), highWaterMark: hwm}
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			fb.add(m)
		}
		err := batch.Close()
		if n := len(fb.offsets); n > 0 {
			offset = fb.offsets[n-1] + 1
			sizeHint = n
		}
		if len(fb.offsets) > 0 || hwm > 0 {
			select {
			case out <- fb:
			case <-ctx.Done():
				return offset, ctx.Err()
			}
		}
		if err != nil && !errors.Is(err, kafka.RequestTimedOut) {
			return offset, err
		}
	}
}

// backoff is a capped exponential delay: min·2^(attempt−1), at most max.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
