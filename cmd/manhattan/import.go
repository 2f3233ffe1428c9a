package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/logimport"
)

// maxSkipsShown bounds the skipped lines printed one by one.
const maxSkipsShown = 100

func (a *app) importCmd() *cobra.Command {
	var (
		format string
		dryRun bool
		batch  int
	)
	cmd := &cobra.Command{
		Use:   "import --format manhattan-log PATH",
		Short: "Import the original Manhattan's TimeRotatingLog files into the events topic",
		Long: `Read the original system's TimeRotatingLog files PATH.<hour-epoch> (oldest
first; PATH itself when it is a single file) and produce every record to the
events topic, keyed by visitor id and keeping its original timestamp. The
consumer then counts them like live events.

Lines that do not parse are skipped and reported as FILE:LINE: reason; the
summary counts files, records per type and skipped lines.

Importing the same files twice produces their events twice and doubles their
counts: import each file exactly once, before (or instead of) pointing live
traffic at the topic. Use --dry-run first to check what would be imported.`,
		Example: `  manhattan import --format manhattan-log --dry-run /var/log/manhattan.log
  manhattan import --format manhattan-log --brokers localhost:9092 /var/log/manhattan.log`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&format, "format", "", `input format; "manhattan-log" (the original TimeRotatingLog)`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "parse and count, produce nothing")
	cmd.Flags().IntVar(&batch, "batch", 1000, "records per produce request")
	flags := keyFlags(cmd, fBrokers, fTopic)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if format != "manhattan-log" {
			return fmt.Errorf("--format: %q is not supported (want manhattan-log)", format)
		}
		if batch <= 0 {
			return fmt.Errorf("--batch: must be positive, got %d", batch)
		}
		var parts []config.Part // a dry run needs no Kafka
		if !dryRun {
			parts = []config.Part{config.PartKafka}
		}
		cfg, err := a.load(flags, nil, parts...)
		if err != nil {
			return err
		}
		files, err := logimport.Files(args[0])
		if err != nil {
			return err
		}
		var sink recordSink = discard{}
		if !dryRun {
			ks := newKafkaSink(cfg.Kafka.Brokers, cfg.Kafka.Topic, batch)
			defer ks.Close()
			sink = ks
		}
		return runImport(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), files, sink, dryRun)
	}
	return cmd
}

// recordSink is where imported events go.
type recordSink interface {
	Add(ctx context.Context, ev event.Event) error
	Flush(ctx context.Context) error
}

type discard struct{}

func (discard) Add(context.Context, event.Event) error { return nil }
func (discard) Flush(context.Context) error            { return nil }

func runImport(ctx context.Context, out, errOut io.Writer, files []string, sink recordSink, dryRun bool) error {
	fmt.Fprintf(out, "importing %d file(s), %s … %s\n", len(files), files[0], files[len(files)-1])
	start := time.Now()
	lastReport := start
	records := 0
	shown := 0
	st, err := logimport.Read(ctx, files, func(ev event.Event) error {
		if err := sink.Add(ctx, ev); err != nil {
			return err
		}
		records++
		if time.Since(lastReport) >= 2*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(errOut, "  … %d records\n", records)
		}
		return nil
	}, func(s logimport.Skip) {
		if shown < maxSkipsShown {
			fmt.Fprintf(errOut, "skip %s\n", s)
		} else if shown == maxSkipsShown {
			fmt.Fprintf(errOut, "(more skipped lines not shown)\n")
		}
		shown++
	})
	if err == nil {
		err = sink.Flush(ctx)
	}
	verb := "produced"
	if dryRun {
		verb = "parsed (dry run, nothing produced)"
	}
	fmt.Fprintf(out, "%d file(s), %d line(s): %d record(s) %s (page %d, pixel %d, goal %d, split %d), %d skipped, in %s\n",
		st.Files, st.Lines, st.Records, verb,
		st.ByType[event.TypePage], st.ByType[event.TypePixel], st.ByType[event.TypeGoal], st.ByType[event.TypeSplit],
		st.Skipped, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("import stopped: %w (records before the failing batch may have been produced; see the README on re-importing)", err)
	}
	return nil
}

// kafkaSink produces events in synchronous batches: a batch is acknowledged
// by every in-sync replica before the next is read, so a failure stops the
// import at a known place.
type kafkaSink struct {
	w     *kafka.Writer
	batch []kafka.Message
	size  int
}

func newKafkaSink(brokers []string, topic string, size int) *kafkaSink {
	return &kafkaSink{
		w: &kafka.Writer{
			Addr:  kafka.TCP(brokers...),
			Topic: topic,
			// murmur2 on the visitor id, as the producer middleware and the
			// Java client partition, so a visitor's events share a partition.
			Balancer:               &kafka.Murmur2Balancer{Consistent: true},
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              size,
			BatchTimeout:           10 * time.Millisecond,
			AllowAutoTopicCreation: true,
			MaxAttempts:            10,
		},
		size: size,
	}
}

func (k *kafkaSink) Add(ctx context.Context, ev event.Event) error {
	// The Kafka record's own timestamp stays "now": old CreateTimes would
	// fall outside the topic's retention and be deleted at once. The event
	// keeps its original time in its "ts" field.
	k.batch = append(k.batch, kafka.Message{Key: []byte(ev.VID), Value: ev.AppendJSON(nil)})
	if len(k.batch) >= k.size {
		return k.Flush(ctx)
	}
	return nil
}

func (k *kafkaSink) Flush(ctx context.Context) error {
	if len(k.batch) == 0 {
		return nil
	}
	if err := k.w.WriteMessages(ctx, k.batch...); err != nil {
		return fmt.Errorf("produce to %s: %w", k.w.Topic, err)
	}
	k.batch = k.batch[:0]
	return nil
}

func (k *kafkaSink) Close() error { return k.w.Close() }
