package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/event"
)

// WriterOptions configure a Writer. Config keys: kafka.brokers → Brokers,
// kafka.topic → Topic, producer.spool_dir → SpoolDir.
type WriterOptions struct {
	Brokers []string // required
	Topic   string   // default "manhattan.events"

	// QueueSize bounds the in-memory queue (events); default 32768. Send
	// drops and counts events when it is full.
	QueueSize int
	// BatchSize is the most events per Kafka write; default 1000.
	BatchSize int
	// Linger is how long a batch waits to fill up; default 20ms. Every
	// batch costs a produce request on both ends, so at web rates a longer
	// linger saves CPU; events reach Kafka that much later.
	Linger time.Duration
	// Compression of record batches; default Snappy.
	Compression kafka.Compression
	// WriteTimeout bounds one write to Kafka; default 10s. While Kafka
	// hangs, the queue must absorb WriteTimeout × event rate.
	WriteTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to drain the
	// spool while Kafka is down; defaults 200ms and 5s.
	RetryMin, RetryMax time.Duration
	// AllowAutoTopicCreation lets the broker create the topic on first use.
	AllowAutoTopicCreation bool

	// SpoolDir holds events while Kafka is unreachable (append-only
	// segments, drained in order, kept across restarts). Empty: an
	// in-memory spool, lost on exit.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; default 256 MiB. Past it events are
	// dropped and counted.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size at which a segment file is closed;
	// default 16 MiB.
	SpoolSegmentBytes int64

	// Registerer gets the manhattan_producer_* metrics; nil registers none
	// (pass prometheus.DefaultRegisterer to expose them on /metrics).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Writer is the Kafka Sink: it takes events without blocking, batches,
// compresses and writes them keyed by visitor id, partitioned with murmur2
// like the Java client, so every event of a visitor lands in one partition,
// in order. While Kafka is unreachable events go to the spool, which is
// drained in order before anything newer is written.
type Writer struct {
	kw       *kafka.Writer
	in       chan event.Event
	spool    spool
	m        *metrics
	log      *slog.Logger
	batchMax int
	linger   time.Duration
	timeout  time.Duration
	retryMin time.Duration
	retryMax time.Duration

	mu       sync.RWMutex // Send/Produce hold it shared; Close exclusively
	closed   bool
	stop     chan struct{}
	done     chan struct{}
	closeCtx context.Context
	closeErr error

	// run goroutine state
	up        bool
	backoff   time.Duration
	nextRetry time.Time
	arena     []byte
	offs      []msgOff
	msgs      []kafka.Message

	sent, spooled, dropped, corrupt, spoolBytes atomic.Int64
	lastDropLog                                 atomic.Int64
}

type msgOff struct{ k0, k1, v1 int }

// WriterStats is a snapshot of a Writer's counters (the same numbers as its
// Prometheus metrics).
type WriterStats struct {
	Sent, Spooled, Dropped, CorruptBytes, SpoolBytes int64
	QueueLength                                      int
}

// ErrClosed is returned by Produce after Close.
var ErrClosed = errors.New("producer: writer closed")

// NewWriter starts a Writer; Close it to flush and stop it.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("producer: WriterOptions.Brokers (kafka.brokers) is empty")
	}
	if opts.Topic == "" {
		opts.Topic = "manhattan.events"
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.QueueSize, 32768)
	def(&opts.BatchSize, 1000)
	defD(&opts.Linger, 20*time.Millisecond)
	defD(&opts.WriteTimeout, 10*time.Second)
	defD(&opts.RetryMin, 200*time.Millisecond)
	defD(&opts.RetryMax, 5*time.Second)
	if opts.SpoolMaxBytes <= 0 {
		opts.SpoolMaxBytes = 256 << 20
	}
	if opts.SpoolSegmentBytes <= 0 {
		opts.SpoolSegmentBytes = 16 << 20
	}
	if opts.Compression == 0 {
		opts.Compression = kafka.Snappy
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Writer{
		in:       make(chan event.Event, opts.QueueSize),
		log:      opts.Logger,
		batchMax: opts.BatchSize,
		linger:   opts.Linger,
		timeout:  opts.WriteTimeout,
		retryMin: opts.RetryMin,
		retryMax: opts.RetryMax,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		up:       true,
	}
	m, err := newMetrics(opts.Registerer, func() float64 { return float64(len(w.in)) })
	if err != nil {
		return nil, fmt.Errorf("producer: register metrics: %w", err)
	}
	w.m = m
	if opts.SpoolDir != "" {
		ds, err := openDiskSpool(opts.SpoolDir, opts.SpoolMaxBytes, opts.SpoolSegmentBytes, func(n int) {
			w.corrupt.Add(int64(n))
			w.m.corrupt.Add(float64(n))
			w.log.Warn("manhattan: skipped corrupt spool data", "dir", opts.SpoolDir, "bytes", n)
		})
		if err != nil {
			return nil, fmt.Errorf("producer: producer.spool_dir %q: %w", opts.SpoolDir, err)
		}
		w.spool = ds
		if !ds.empty() {
			w.log.Info("manhattan: spool holds events from an earlier run; draining", "dir", opts.SpoolDir, "bytes", ds.bytes())
		}
	} else {
		w.spool = &memSpool{maxBytes: opts.SpoolMaxBytes}
	}
	w.setSpoolBytes()
	w.kw = &kafka.Writer{
		Addr:                   kafka.TCP(opts.Brokers...),
		Topic:                  opts.Topic,
		Balancer:               kafka.Murmur2Balancer{},
		MaxAttempts:            3,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
		BatchSize:              opts.BatchSize,
		BatchBytes:             8 << 20,
		BatchTimeout:           time.Millisecond, // our own batching already waited
		RequiredAcks:           kafka.RequireAll,
		Compression:            opts.Compression,
		AllowAutoTopicCreation: opts.AllowAutoTopicCreation,
	}
	go w.run()
	return w, nil
}

// Send queues events without blocking; events that do not fit are dropped,
// counted (reason queue_full) and logged. It implements Sink.
func (w *Writer) Send(evs []event.Event) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		w.drop(DropClosed, len(evs), nil)
		return
	}
	for i := range evs {
		select {
		case w.in <- evs[i]:
		default:
			w.drop(DropQueueFull, 1, nil)
		}
	}
	w.mu.RUnlock()
}

// Produce queues events, waiting for room in the queue (for bulk producers
// such as `manhattan import`, which must not drop). Events keep their
// timestamps; per visitor they are written in the order given. Invalid
// events are skipped and reported in the returned error; the others are
// queued. Call Close to wait until they are written.
func (w *Writer) Produce(ctx context.Context, evs ...event.Event) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	var errs []error
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("event %d (vid %q): %w", i, evs[i].VID, err))
			continue
		}
		select {
		case w.in <- evs[i]:
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("producer: queueing events: %w", ctx.Err()))...)
		}
	}
	return errors.Join(errs...)
}

// Close stops accepting events and writes everything queued and spooled to
// Kafka before ctx ends. What is still unwritten then stays in the disk
// spool for the next run (or, with the in-memory spool, is dropped and
// counted); Close then reports it as an error.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return ErrClosed
	}
	w.closed = true
	w.closeCtx = ctx
	w.mu.Unlock()
	close(w.stop)
	<-w.done // run honours closeCtx in every Kafka call
	return w.closeErr
}

// Stats returns the current counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Sent: w.sent.Load(), Spooled: w.spooled.Load(), Dropped: w.dropped.Load(),
		CorruptBytes: w.corrupt.Load(), SpoolBytes: w.spoolBytes.Load(), QueueLength: len(w.in),
	}
}

func (w *Writer) drop(reason string, n int, err error) {
	if n <= 0 {
		return
	}
	w.dropped.Add(int64(n))
	w.m.dropped.WithLabelValues(reason).Add(float64(n))
	// Log at most every 5 s so a storm of drops cannot flood the log.
	now := time.Now().UnixNano()
	last := w.lastDropLog.Load()
	if now-last > int64(5*time.Second) && w.lastDropLog.CompareAndSwap(last, now) {
		w.log.Error("manhattan: dropping events", "reason", reason, "count", n, "dropped_total", w.dropped.Load(), "err", err)
	}
}

// ---- the run goroutine: the only user of kw, spool and the batch buffers.

func (w *Writer) run() {
	defer close(w.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		if !w.spool.empty() {
			retry.Reset(max(time.Until(w.nextRetry), time.Millisecond))
		}
		select {
		case ev := <-w.in:
			w.add(ev)
			// Let the batch fill for Linger, then take what is queued. The
			// goroutine sleeps meanwhile instead of waking for every event
			// (at web rates those wake-ups cost more than the rest of the
			// hand-off); with a full batch already queued it does not wait.
			if len(w.in) < w.batchMax-1 {
				linger.Reset(w.linger)
				select {
				case <-linger.C:
				case <-w.stop:
					linger.Stop()
				}
			}
			w.takeQueued()
			w.flushBatch(ctx)
		case <-retry.C:
		case <-w.stop:
			w.shutdown()
			return
		}
		retry.Stop()
		if !w.spool.empty() && !time.Now().Before(w.nextRetry) {
			w.drain(ctx)
		}
	}
}

// takeQueued moves queued events into the batch, up to its size.
func (w *Writer) takeQueued() {
	for len(w.offs) < w.batchMax {
		select {
		case ev := <-w.in:
			w.add(ev)
		default:
			return
		}
	}
}

// add encodes ev into the batch arena (key = vid, value = JSON).
func (w *Writer) add(ev event.Event) {
	if err := ev.Validate(); err != nil {
		w.drop(DropInvalid, 1, err)
		return
	}
	k0 := len(w.arena)
	w.arena = append(w.arena, ev.VID...)
	k1 := len(w.arena)
	w.arena = ev.AppendJSON(w.arena)
	w.offs = append(w.offs, msgOff{k0, k1, len(w.arena)})
}

func (w *Writer) batchMessages() []kafka.Message {
	w.msgs = w.msgs[:0]
	for _, o := range w.offs {
		w.msgs = append(w.msgs, kafka.Message{Key: w.arena[o.k0:o.k1:o.k1], Value: w.arena[o.k1:o.v1:o.v1]})
	}
	return w.msgs
}

func (w *Writer) resetBatch() {
	w.arena, w.offs = w.arena[:0], w.offs[:0]
	clear(w.msgs)
	if cap(w.arena) > 64<<20 { // do not keep a huge arena after a burst
		w.arena = nil
	}
}

// flushBatch writes the batch to Kafka, or to the spool when Kafka is down
// or older events wait there (order per visitor comes first).
func (w *Writer) flushBatch(ctx context.Context) {
	if len(w.offs) == 0 {
		return
	}
	msgs := w.batchMessages()
	defer w.resetBatch()
	if !w.up || !w.spool.empty() {
		w.toSpool(msgs)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, w.timeout)
	err := w.kw.WriteMessages(wctx, msgs...)
	cancel()
	if err == nil {
		w.sent.Add(int64(len(msgs)))
		w.m.sent.Add(float64(len(msgs)))
		return
	}
	var failed []kafka.Message
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(msgs) {
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, msgs[i])
			}
		}
		ok := len(msgs) - len(failed)
		w.sent.Add(int64(ok))
		w.m.sent.Add(float64(ok))
	} else {
		failed = msgs
	}
	w.markDown(err)
	w.toSpool(failed)
}

func (w *Writer) markDown(err error) {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) { // one line, not one error per message
		for _, e := range werrs {
			if e != nil {
				err = fmt.Errorf("%d of %d messages failed, first: %w", werrs.Count(), len(werrs), e)
				break
			}
		}
	}
	if w.up {
		w.log.Warn("manhattan: Kafka unreachable; spooling events", "err", err)
		w.backoff = w.retryMin
	} else {
		w.backoff = min(w.backoff*2, w.retryMax)
	}
	w.up = false
	w.m.kafkaUp.Set(0)
	w.nextRetry = time.Now().Add(w.backoff)
}

func (w *Writer) toSpool(msgs []kafka.Message) {
	for i, m := range msgs {
		err := w.spool.append(m.Key, m.Value)
		if errors.Is(err, errSpoolFull) {
			w.drop(DropSpoolFull, 1, err)
			continue
		}
		if err != nil {
			w.drop(DropSpoolError, len(msgs)-i, err)
			break
		}
		w.spooled.Add(1)
		w.m.spooled.Inc()
	}
	w.setSpoolBytes()
}

// drain writes the spool to Kafka in order. Between batches it moves newly
// queued events into the spool so that the queue does not overflow.
func (w *Writer) drain(ctx context.Context) {
	for !w.spool.empty() {
		w.queueToSpool()
		recs, err := w.spool.peek(w.batchMax)
		if err != nil {
			w.log.Error("manhattan: reading spool", "err", err)
			w.markDown(err)
			return
		}
		if len(recs) == 0 {
			break
		}
		msgs := make([]kafka.Message, len(recs))
		for i, r := range recs {
			msgs[i] = kafka.Message{Key: r.key, Value: r.value}
		}
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err = w.kw.WriteMessages(wctx, msgs...)
		cancel()
		if err != nil {
			w.markDown(err)
			return
		}
		if err := w.spool.commit(len(recs)); err != nil {
			w.log.Error("manhattan: recording spool position", "err", err)
		}
		w.sent.Add(int64(len(recs)))
		w.m.sent.Add(float64(len(recs)))
		w.setSpoolBytes()
	}
	if !w.up {
		w.log.Info("manhattan: Kafka reachable again; spool drained")
	}
	w.up = true
	w.m.kafkaUp.Set(1)
	w.setSpoolBytes()
}

func (w *Writer) queueToSpool() {
	for {
		select {
		case ev := <-w.in:
			w.add(ev)
			if len(w.offs) >= w.batchMax {
				w.toSpool(w.batchMessages())
				w.resetBatch()
			}
		default:
			if len(w.offs) > 0 {
				w.toSpool(w.batchMessages())
				w.resetBatch()
			}
			return
		}
	}
}

// shutdown writes out the queue and the spool within closeCtx.
func (w *Writer) shutdown() {
	ctx := w.closeCtx
	for {
		select {
		case ev := <-w.in:
			w.add(ev)
			if len(w.offs) >= w.batchMax {
				w.flushBatch(ctx)
			}
			continue
		default:
		}
		break
	}
	w.flushBatch(ctx)
	for !w.spool.empty() && ctx.Err() == nil {
		w.drain(ctx)
		if w.spool.empty() {
			break
		}
		t := time.NewTimer(max(time.Until(w.nextRetry), time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	var errs []error
	if left := w.spool.bytes(); left > 0 {
		if _, mem := w.spool.(*memSpool); mem {
			n := len(w.spool.(*memSpool).recs)
			w.drop(DropClosed, n, ctx.Err())
			errs = append(errs, fmt.Errorf("producer: %d events not written to Kafka before the deadline, dropped: %w", n, ctx.Err()))
		} else {
			errs = append(errs, fmt.Errorf("producer: %d bytes of events left in the spool for the next run: %w", left, ctx.Err()))
		}
	}
	if err := w.spool.close(); err != nil {
		errs = append(errs, fmt.Errorf("producer: closing spool: %w", err))
	}
	if err := w.kw.Close(); err != nil {
		errs = append(errs, fmt.Errorf("producer: closing Kafka writer: %w", err))
	}
	w.closeErr = errors.Join(errs...)
}

func (w *Writer) setSpoolBytes() {
	n := w.spool.bytes()
	w.spoolBytes.Store(n)
	w.m.spoolBytes.Set(float64(n))
}
