package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// errLostPartition means the store's mark moved under this worker: another
// consumer owns the partition now, so this one must drop what it holds.
var errLostPartition = errors.New("partition mark moved: another consumer owns it")

const (
	storeBackoffMin = 100 * time.Millisecond
	storeBackoffMax = 10 * time.Second
	// storeCallTimeout bounds one store call, so a hung connection turns
	// into a retry instead of a stuck partition.
	storeCallTimeout = 2 * time.Minute
)

// worker owns one partition for one generation: it recovers from the
// store's marks, applies records in offset order and flushes.
type worker struct {
	o         *Options
	partition int32
	label     string // partition as a metric label
	commit    func(offset int64) error
	engine    *reconcile.Engine
	cache     *reconcile.Cache
	out       *reconcile.Output
	fetch     *fetcher
	dlq       *kafka.Writer
	m         *metrics
	prog      *progress
	log       *slog.Logger

	hwc     int64 // counters are stored below this: replay there with counted=false
	mark    int64 // the stored counters mark (hw_c), From of the next flush
	hws     int64 // the stored states mark (hw_s)
	pos     int64 // next offset to process (<0 until the first record)
	hwm     int64 // the partition's high-water mark at the last fetch
	lastTS  int64 // event time of the last processed record
	records []store.Record
	vids    []string // scratch: a fetch's visitor ids
	dead    []kafka.Message
	pending int       // records processed since the last flush
	flushed time.Time // when the last flush ended (zero: none yet)
	pend    *pendingFlush
}

// pendingFlush is a flush that has started: its batch is sealed and its
// steps run in order, each retried until it succeeds, so a store outage
// never re-runs a step that has landed.
type pendingFlush struct {
	b     *store.Batch
	dead  []kafka.Message
	step  int
	start time.Time
	// countersTried: an InsertCounters call was made, and may have landed
	// even if it reported an error (say, cancelled at a generation's end).
	countersTried bool
}

// run processes the partition until ctx ends (generation over or
// shutdown), then flushes what it holds. It returns an error only for
// failures that retrying cannot fix.
func (w *worker) run(ctx context.Context, assigned int64) error {
	w.m.partitions.Inc()
	defer w.m.partitions.Dec()
	defer w.prog.drop(w.partition)

	var marks store.Marks
	err := w.retry(ctx, "marks", func(ctx context.Context) (err error) {
		marks, err = w.o.Store.Marks(ctx, w.partition)
		return err
	})
	if err != nil {
		return nil // ended before recovery: nothing held, nothing to give up
	}
	start := assigned
	if marks.Found {
		start, w.hwc, w.mark, w.hws = marks.HWS, marks.HWC, marks.HWC, marks.HWS
	}
	w.pos = start
	w.log.Info("partition assigned", "start", start, "hw_c", marks.HWC, "hw_s", marks.HWS, "marks", marks.Found)

	fctx, stopFetch := context.WithCancel(ctx)
	// Two fetches ahead keep the worker busy through a flush; each holds
	// up to FetchMaxBytes of records plus their decoded events.
	batches := make(chan fetched, 2)
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.fetch.run(fctx, start, batches) })
	defer wg.Wait()
	defer stopFetch()

	// Fine-grained, so a due flush starts within ~5% of FlushInterval.
	tick := max(w.o.FlushInterval/20, 10*time.Millisecond)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return w.finish(ctx)
		case fb := <-batches:
			if err = w.process(ctx, fb); err == nil && w.due(time.Now()) {
				err = w.flush(ctx)
			}
		case now := <-ticker.C:
			if w.due(now) {
				err = w.flush(ctx)
			}
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return w.finish(ctx)
		case errors.Is(err, errLostPartition):
			w.log.Warn("giving up partition without flushing", "err", err)
			return nil
		default:
			return err
		}
	}
}

// due reports whether the partition should flush now.
func (w *worker) due(now time.Time) bool {
	if w.pend != nil {
		return true
	}
	if !w.unflushed() {
		return false
	}
	// Timed from the last flush, not from the oldest record: a record
	// never waits longer than FlushInterval (records arrive after a flush
	// ends), and one arriving after a quiet spell is flushed at once, while
	// a partition still flushes at most once per FlushInterval.
	return w.pending >= w.o.FlushEvents || now.Sub(w.flushed) >= w.o.FlushInterval
}

// unflushed reports whether there is something to flush: records processed
// past the states mark, and no longer replaying below the counters mark
// (a flush there would move hw_c backwards). A replay that ends exactly at
// hw_c still flushes, to bring hw_s up.
func (w *worker) unflushed() bool {
	return w.pending > 0 && w.pos > w.hws && w.pos >= w.hwc
}

// finish flushes before the partition is given up, within ShutdownTimeout.
// If the store stays unavailable nothing is lost: the marks were not moved,
// and the next owner replays from them.
func (w *worker) finish(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.o.ShutdownTimeout)
	defer cancel()
	if w.pend == nil && !w.unflushed() {
		w.log.Info("partition released", "offset", w.mark)
		return nil
	}
	err := w.flush(fctx)
	switch {
	case err == nil:
		w.log.Info("partition released", "offset", w.mark)
	case errors.Is(err, errLostPartition):
		w.log.Warn("partition released without flushing", "err", err)
	case fctx.Err() != nil:
		w.log.Warn("partition released with unflushed records; the next owner replays them from the store's marks",
			"stored", w.mark, "processed", w.pos, "err", err)
	default:
		return err
	}
	return nil
}

// process applies one fetched batch in offset order.
func (w *worker) process(ctx context.Context, fb fetched) error {
	if fb.highWaterMark > 0 {
		w.hwm = fb.highWaterMark
	}
	if len(fb.offsets) > 0 {
		evs, bad := fb.evs, fb.bad
		vids := w.vids[:0]
		for i := range evs {
			if evs[i].VID != "" { // dead letters are zero events
				vids = append(vids, evs[i].VID)
			}
		}
		err := w.load(ctx, w.cache.Missing(vids))
		clear(vids) // the ids pin their records' bytes
		w.vids = vids[:0]
		if err != nil {
			return err
		}
		for i, off := range fb.offsets {
			var dead *badRecord
			if len(bad) > 0 && bad[0].i == i {
				dead, bad = &bad[0], bad[1:]
			}
			if off < w.pos {
				continue
			}
			counted := off >= w.hwc
			if dead != nil {
				// Below hw_c the dead letter was sent before the mark moved.
				if counted {
					w.dead = append(w.dead, deadLetter(dead.msg, dead.err.Error()))
					w.m.deadLetters.Inc()
					w.log.Warn("dead letter", "offset", off, "reason", dead.err.Error())
				}
			} else {
				ev := &evs[i]
				st, ok := w.cache.Get(ev.VID)
				if !ok {
					// Evicted by this same batch's loads (batch larger than
					// the cache): load it alone.
					if err := w.load(ctx, []string{ev.VID}); err != nil {
						return err
					}
					if st, ok = w.cache.Get(ev.VID); !ok {
						return fmt.Errorf("visitor %q: state not cached after load", ev.VID)
					}
				}
				if w.engine.Apply(st, ev, counted, w.out) {
					w.cache.MarkDirty(ev.VID)
				}
				if counted {
					w.records = append(w.records, store.Record{Partition: w.partition, Offset: off, Event: ev})
				}
				w.lastTS = ev.TS
			}
			w.pos = off + 1
			w.pending++
			w.m.records.Inc()
			w.prog.records.Add(1)
			// A fetch may hold more than FlushEvents records (brokers
			// return whole record batches): flush in its middle.
			if w.pending >= w.o.FlushEvents && w.unflushed() {
				if err := w.flush(ctx); err != nil {
					return err
				}
			}
		}
	}
	lag := int64(0)
	if w.pos >= 0 && w.hwm > w.pos {
		lag = w.hwm - w.pos
	}
	w.m.lag.WithLabelValues(w.label).Set(float64(lag))
	w.m.secondsBehind.WithLabelValues(w.label).Set(behind(time.Now(), lag, w.lastTS))
	w.prog.set(w.partition, lag, w.lastTS)
	return nil
}

// load reads the stored states of vids (one query) into the cache; ids
// without a stored state start fresh.
func (w *worker) load(ctx context.Context, vids []string) error {
	if len(vids) == 0 {
		return nil
	}
	var loaded map[string][]byte
	err := w.retry(ctx, "load_states", func(ctx context.Context) (err error) {
		loaded, err = w.o.Store.LoadStates(ctx, vids)
		return err
	})
	if err != nil {
		return err
	}
	for _, vid := range vids {
		st := reconcile.NewState()
		if data, ok := loaded[vid]; ok {
			if err := st.UnmarshalBinary(data); err != nil {
				// Going on with a fresh state would count this visitor
				// again: stop instead.
				return fmt.Errorf("visitor %q: stored state: %w", vid, err)
			}
		}
		// The id is a substring of its record: a copy keeps the cache from
		// holding every record that brought a visitor in.
		w.cache.Add(strings.Clone(vid), st)
	}
	return nil
}

// flush writes everything since the last flush (or resumes a flush that
// started), then commits the new mark to the group.
func (w *worker) flush(ctx context.Context) error {
	if w.pend == nil {
		b := &store.Batch{
			Partition: w.partition,
			From:      w.mark,
			To:        w.pos,
			Records:   w.records,
			Counters:  w.out.Counters,
			Goals:     w.out.Goals,
			Tests:     w.out.Tests,
		}
		dirty := w.cache.Dirty()
		b.States = make([]store.State, 0, len(dirty))
		for _, d := range dirty {
			data, err := d.State.MarshalBinary()
			if err != nil {
				return fmt.Errorf("visitor %q: serialize state: %w", d.VID, err)
			}
			b.States = append(b.States, store.State{VID: d.VID, Version: w.pos, Data: data})
		}
		w.pend = &pendingFlush{b: b, dead: w.dead, start: time.Now()}
		w.dead = nil
	}
	p := w.pend
	if len(p.dead) > 0 {
		// Dead letters land before the mark moves past them.
		err := w.retry(ctx, "dead_letters", func(ctx context.Context) error {
			return w.dlq.WriteMessages(ctx, p.dead...)
		})
		if err != nil {
			return err
		}
		p.dead = nil
	}
	steps := []struct {
		op string
		fn func(context.Context, *store.Batch) error
	}{
		{"insert_events", w.o.Store.InsertEvents},
		{"insert_counters", nil}, // not idempotent: see insertCounters
		{"upsert_meta", w.o.Store.UpsertMeta},
		{"insert_states", w.o.Store.InsertStates},
	}
	b := p.b
	for p.step < len(steps) {
		s := steps[p.step]
		var err error
		switch {
		case s.op == "insert_events" && len(b.Records) == 0,
			s.op == "insert_counters" && b.From == b.To && len(b.Counters) == 0,
			s.op == "upsert_meta" && len(b.Goals) == 0 && len(b.Tests) == 0:
			// Nothing to write (e.g. the flush that ends a replay).
		case s.fn == nil:
			err = w.insertCounters(ctx, p)
		default:
			err = w.retry(ctx, s.op, func(ctx context.Context) error { return s.fn(ctx, b) })
		}
		if err != nil {
			return err
		}
		p.step++
	}

	w.cache.MarkFlushed()
	w.out.Reset()
	clear(w.records) // drop references to the events for the GC
	w.records = w.records[:0]
	w.mark, w.hws = b.To, b.To
	w.pending = 0
	w.pend = nil
	w.flushed = time.Now()
	w.m.flushSeconds.Observe(time.Since(p.start).Seconds())
	w.m.flushRecords.Observe(float64(b.To - b.From))
	if err := w.commit(b.To); err != nil {
		// The store is the truth; the group offset is for lag tools.
		w.log.Debug("commit offset", "offset", b.To, "err", err)
	}
	return nil
}

// insertCounters writes the batch's counter deltas and offset row, exactly
// once: before each attempt the stored mark must still be From (else another
// consumer took the partition), and after a failed attempt a mark equal to
// To means the insert did land.
func (w *worker) insertCounters(ctx context.Context, p *pendingFlush) error {
	b := p.b
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// After a failed insert, give an insert the server may still be
			// running time to land before the marks are read again.
			w.m.retries.WithLabelValues("insert_counters").Inc()
			if !sleepCtx(ctx, backoff(attempt, time.Second, storeBackoffMax)) {
				return ctx.Err()
			}
		}
		var marks store.Marks
		err := w.retry(ctx, "marks", func(ctx context.Context) (err error) {
			marks, err = w.o.Store.Marks(ctx, w.partition)
			return err
		})
		if err != nil {
			return err
		}
		switch {
		case p.countersTried && marks.Found && marks.HWC == b.To:
			return nil
		case marks.HWC != b.From || (!marks.Found && b.From != 0):
			return fmt.Errorf("%w: stored hw_c %d, expected %d", errLostPartition, marks.HWC, b.From)
		}
		// Never cancel this insert midway: a server may still commit an
		// insert whose client gave up, and the marks read before the retry
		// would not show it yet, so the retry would count the batch twice.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeCallTimeout)
		p.countersTried = true
		t0 := time.Now()
		err = w.o.Store.InsertCounters(cctx, b)
		cancel()
		if err == nil {
			w.m.storeSeconds.WithLabelValues("insert_counters").Observe(time.Since(t0).Seconds())
			return nil
		}
		w.logRetry("insert_counters", attempt, err)
	}
}

// retry runs fn until it succeeds or ctx ends, with capped exponential
// backoff: the store being unavailable is waited out, never fatal.
func (w *worker) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
		t0 := time.Now()
		err := fn(cctx)
		cancel()
		if err == nil {
			w.m.storeSeconds.WithLabelValues(op).Observe(time.Since(t0).Seconds())
			if attempt > 0 {
				w.log.Info("recovered", "op", op, "attempts", attempt+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.m.retries.WithLabelValues(op).Inc()
		w.logRetry(op, attempt, err)
		if !sleepCtx(ctx, backoff(attempt+1, storeBackoffMin, storeBackoffMax)) {
			return ctx.Err()
		}
	}
}

func (w *worker) logRetry(op string, attempt int, err error) {
	// First failures, then every tenth: an outage should not flood the log.
	if attempt < 3 || attempt%10 == 0 {
		w.log.Warn("retrying", "op", op, "attempt", attempt+1, "err", err)
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func partitionLabel(p int32) string { return strconv.Itoa(int(p)) }
