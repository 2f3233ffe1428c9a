package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/reconcile"
)

// Run consumes opts.Topic as member of opts.Group until ctx is cancelled,
// then flushes every owned partition, commits and leaves the group within
// opts.ShutdownTimeout. It returns nil after a graceful shutdown and an
// error for bad options or a failure retrying cannot fix (such as a stored
// visitor state that does not decode). Kafka or store outages are waited
// out, never returned.
//
// Run's live heap (cached states, a flush's records) is large and steady:
// a process that mostly consumes does well with a higher GC target, e.g.
// GOGC=400 (what `manhattan consumer` sets unless GOGC is given).
func Run(ctx context.Context, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	// One engine serves every partition worker (it is safe for concurrent
	// use and shares its value and user-agent caches).
	engine, err := reconcile.New(o.Engine)
	if err != nil {
		return fmt.Errorf("consumer: engine: %w", err)
	}
	if _, err := reconcile.NewCache(o.CacheSize); err != nil {
		return fmt.Errorf("consumer: cache_size: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return fmt.Errorf("consumer: metrics: %w", err)
	}
	log := o.Logger.With("topic", o.Topic, "group", o.Group)

	// A group on a topic that does not exist yet would sit idle: create it.
	if err := ensureTopic(ctx, o.Brokers, o.Topic, ""); err != nil {
		log.Warn("cannot create the events topic", "err", err)
	}
	if err := ensureTopic(ctx, o.Brokers, o.DeadLetterTopic, o.Topic); err != nil {
		log.Warn("cannot create the dead-letter topic; relying on auto-creation", "topic", o.DeadLetterTopic, "err", err)
	}
	dlq := newDeadLetterWriter(o.Brokers, o.DeadLetterTopic)
	defer dlq.Close()

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                o.Group,
		Brokers:           o.Brokers,
		Topics:            []string{o.Topic},
		SessionTimeout:    o.SessionTimeout,
		HeartbeatInterval: o.HeartbeatInterval,
		// Members finish their partition flushes (bounded by
		// ShutdownTimeout) before rejoining.
		RebalanceTimeout: o.ShutdownTimeout + 10*time.Second,
		JoinGroupBackoff: time.Second,
		StartOffset:      kafka.FirstOffset,
		// A topic created (or grown) after the group formed starts a new
		// generation instead of going unread.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		Logger:                 kafkaLogger(log, slog.LevelDebug),
		ErrorLogger:            kafkaLogger(log, slog.LevelWarn), // e.g. the broker unreachable
	})
	if err != nil {
		return fmt.Errorf("consumer: group: %w", err)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := &progress{}
	var bg sync.WaitGroup
	bg.Go(func() { prog.logLoop(runCtx, log, o.ProgressInterval) })
	defer bg.Wait()

	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	log.Info("consumer started", "brokers", o.Brokers, "dead_letter_topic", o.DeadLetterTopic,
		"flush_events", o.FlushEvents, "flush_interval", o.FlushInterval)
	for {
		gen, err := cg.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			log.Info("group membership", "err", err)
			continue
		}
		assigned := gen.Assignments[o.Topic]
		ids := make([]int, len(assigned))
		for i, a := range assigned {
			ids[i] = a.ID
		}
		log.Info("generation", "id", gen.ID, "member", gen.MemberID, "partitions", ids)
		for _, a := range assigned {
			w, err := newWorker(&o, engine, gen, a.ID, dialer, dlq, m, prog, log)
			if err != nil {
				cancel(err)
				break
			}
			gen.Start(func(gctx context.Context) {
				// Stop on the end of the generation or of Run.
				wctx, wcancel := context.WithCancel(runCtx)
				defer wcancel()
				stop := context.AfterFunc(gctx, wcancel)
				defer stop()
				if err := w.run(wctx, a.Offset); err != nil {
					w.log.Error("partition worker failed", "err", err)
					cancel(err)
				}
			})
		}
	}

	// Closing the group ends the generation, waits for the workers' final
	// flushes (each bounded by ShutdownTimeout) and leaves the group.
	closed := make(chan struct{})
	go func() {
		_ = cg.Close()
		close(closed)
	}()
	select {
	case <-closed:
		log.Info("consumer stopped")
	case <-time.After(o.ShutdownTimeout + 5*time.Second):
		log.Warn("consumer stop timed out; unflushed records will be replayed by the next owner")
	}
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("consumer: %w", err)
	}
	return nil
}

func newWorker(o *Options, engine *reconcile.Engine, gen *kafka.Generation, partition int, dialer *kafka.Dialer,
	dlq *kafka.Writer, m *metrics, prog *progress, log *slog.Logger) (*worker, error) {
	cache, err := reconcile.NewCache(o.CacheSize)
	if err != nil {
		return nil, err
	}
	p := int32(partition)
	topic := o.Topic
	plog := log.With("partition", partition)
	return &worker{
		o:         o,
		partition: p,
		label:     partitionLabel(p),
		commit: func(offset int64) error {
			return gen.CommitOffsets(map[string]map[int]int64{topic: {partition: offset}})
		},
		engine: engine,
		cache:  cache,
		out:    reconcile.NewOutput(),
		fetch: &fetcher{
			dialer:    dialer,
			brokers:   o.Brokers,
			topic:     topic,
			partition: partition,
			maxBytes:  o.FetchMaxBytes,
			maxWait:   fetchMaxWait,
			log:       plog,
		},
		dlq:  dlq,
		m:    m,
		prog: prog,
		log:  plog,
	}, nil
}

// kafkaLogger routes kafka-go's printf logs to slog.
func kafkaLogger(log *slog.Logger, level slog.Level) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if log.Enabled(context.Background(), level) {
			log.Log(context.Background(), level, "kafka: "+fmt.Sprintf(format, args...))
		}
	})
}
