package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/manhattan-go/manhattan/config"
	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/logimport"
)

// parseResume reads --resume-from FILE:LINE.
func parseResume(s string) (logimport.Pos, error) {
	if s == "" {
		return logimport.Pos{}, nil
	}
	i := strings.LastIndexByte(s, ':')
	line, err := strconv.Atoi(s[i+1:])
	if i <= 0 || err != nil || line < 1 {
		return logimport.Pos{}, fmt.Errorf("--resume-from: %q is not FILE:LINE (as printed when an import stopped)", s)
	}
	return logimport.Pos{File: s[:i], Line: line}, nil
}

// maxSkipsShown bounds the skipped lines printed one by one.
const maxSkipsShown = 100

func (a *app) importCmd() *cobra.Command {
	var (
		format string
		dryRun bool
		batch  int
		resume string
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

Compressed hours, PATH.<hour-epoch>.gz, are read too (an hour present both
plain and compressed is refused).

Importing the same files twice produces their events twice and doubles their
counts: import each file exactly once, before (or instead of) pointing live
traffic at the topic. Use --dry-run first to check what would be imported.
Only records Kafka acknowledged are reported as produced; when an import
stops (broker down, Ctrl-C) it prints the FILE:LINE of the first record not
acknowledged: run the same command with --resume-from FILE:LINE to go on
without producing anything twice.`,
		Example: `  manhattan import --format manhattan-log --dry-run /var/log/manhattan.log
  manhattan import --format manhattan-log --brokers localhost:9092 /var/log/manhattan.log
  manhattan import --format manhattan-log --resume-from /var/log/manhattan.log.1357002000:4711 /var/log/manhattan.log`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&format, "format", "", `input format; "manhattan-log" (the original TimeRotatingLog)`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "parse and count, produce nothing")
	cmd.Flags().IntVar(&batch, "batch", 1000, "records per produce request")
	cmd.Flags().StringVar(&resume, "resume-from", "", "FILE:LINE: start there (as printed when an import stopped), skipping what was produced")
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
		from, err := parseResume(resume)
		if err != nil {
			return err
		}
		var sink recordSink = discard{}
		if !dryRun {
			ks := newKafkaSink(cfg.Kafka.Brokers, cfg.Kafka.Topic, batch)
			defer ks.Close()
			sink = ks
		}
		return runImport(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), files, from, sink, dryRun)
	}
	return cmd
}

// recordSink is where imported events go. Produced counts only records the
// sink knows were stored (acknowledged by Kafka); Next is the line after the
// last of them (zero before any).
type recordSink interface {
	Add(ctx context.Context, ev event.Event, pos logimport.Pos) error
	Flush(ctx context.Context) error
	Produced() int
	Next() logimport.Pos
}

type discard struct{}

func (discard) Add(context.Context, event.Event, logimport.Pos) error { return nil }
func (discard) Flush(context.Context) error                           { return nil }
func (discard) Produced() int                                         { return 0 }
func (discard) Next() logimport.Pos                                   { return logimport.Pos{} }

// stopError is a failed produce: records from Resume on were not all
// acknowledged. AckedAfter counts records after Resume that were (a partly
// written batch): a resumed import produces those again.
type stopError struct {
	Resume     logimport.Pos
	AckedAfter int
	Err        error
}

func (e *stopError) Error() string {
	msg := fmt.Sprintf("not acknowledged from %s on: %v", e.Resume, e.Err)
	if e.AckedAfter > 0 {
		msg += fmt.Sprintf(" (%d later record(s) of that batch were acknowledged and will be produced again on resume)", e.AckedAfter)
	}
	return msg
}

func (e *stopError) Unwrap() error { return e.Err }

func runImport(ctx context.Context, out, errOut io.Writer, files []string, from logimport.Pos, sink recordSink, dryRun bool) error {
	fmt.Fprintf(out, "importing %d file(s), %s … %s\n", len(files), files[0], files[len(files)-1])
	if from.File != "" {
		fmt.Fprintf(out, "resuming at %s\n", from)
	}
	start := time.Now()
	lastReport := start
	shown := 0
	st, err := logimport.Read(ctx, files, from, func(ev event.Event, pos logimport.Pos) error {
		if err := sink.Add(ctx, ev, pos); err != nil {
			return err
		}
		if time.Since(lastReport) >= 2*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(errOut, "  … %d records produced, at %s\n", sink.Produced(), pos)
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
	var se *stopError
	if err == nil {
		err = sink.Flush(ctx)
	} else if !dryRun && !errors.As(err, &se) {
		// Stopped by Ctrl-C or a read error: what was buffered still goes
		// out, so the resume point is right after the last record sent.
		if ferr := sink.Flush(ctx); ferr != nil {
			err = ferr
		} else {
			resume := sink.Next()
			if resume.File == "" {
				resume = from
			}
			if resume.File == "" {
				resume = logimport.Pos{File: files[0], Line: 1}
			}
			err = &stopError{Resume: resume, Err: err}
		}
	}
	byType := fmt.Sprintf("page %d, pixel %d, goal %d, split %d",
		st.ByType[event.TypePage], st.ByType[event.TypePixel], st.ByType[event.TypeGoal], st.ByType[event.TypeSplit])
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case dryRun:
		fmt.Fprintf(out, "%d file(s), %d line(s): %d record(s) parsed (dry run, nothing produced) (%s), %d skipped, in %s\n",
			st.Files, st.Lines, st.Records, byType, st.Skipped, took)
	case err == nil:
		fmt.Fprintf(out, "%d file(s), %d line(s): %d record(s) produced (%s), %d skipped, in %s\n",
			st.Files, st.Lines, sink.Produced(), byType, st.Skipped, took)
	default:
		fmt.Fprintf(out, "%d record(s) produced (acknowledged by Kafka) before the import stopped, in %s\n", sink.Produced(), took)
	}
	if err == nil {
		return nil
	}
	if errors.As(err, &se) {
		return fmt.Errorf("import stopped: %w\nnothing before %s is missing: fix the cause, then resume with --resume-from %s",
			se, se.Resume, se.Resume)
	}
	return fmt.Errorf("import stopped: %w", err)
}

// flushTimeout bounds the wait for a batch already sent. The wait is not cut
// short by Ctrl-C: knowing whether the batch landed is what makes the
// import resumable without duplicates.
const flushTimeout = 2 * time.Minute

// kafkaSink produces events in synchronous batches: a batch is acknowledged
// by every in-sync replica before the next is read, so a failure stops the
// import at a known place.
type kafkaSink struct {
	w        *kafka.Writer
	batch    []kafka.Message
	pos      []logimport.Pos
	size     int
	produced int
	next     logimport.Pos
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

func (k *kafkaSink) Add(ctx context.Context, ev event.Event, pos logimport.Pos) error {
	// The Kafka record's own timestamp stays "now": old CreateTimes would
	// fall outside the topic's retention and be deleted at once. The event
	// keeps its original time in its "ts" field.
	k.batch = append(k.batch, kafka.Message{Key: []byte(ev.VID), Value: ev.AppendJSON(nil)})
	k.pos = append(k.pos, pos)
	if len(k.batch) >= k.size {
		return k.Flush(ctx)
	}
	return nil
}

func (k *kafkaSink) Flush(ctx context.Context) error {
	if len(k.batch) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	err := k.w.WriteMessages(wctx, k.batch...)
	if err == nil {
		k.produced += len(k.batch)
		last := k.pos[len(k.pos)-1]
		k.next = logimport.Pos{File: last.File, Line: last.Line + 1}
		k.batch, k.pos = k.batch[:0], k.pos[:0]
		return nil
	}
	// WriteErrors is per message; any other error means none was written.
	se := &stopError{Resume: k.pos[0], Err: fmt.Errorf("produce to %s: %w", k.w.Topic, err)}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(k.batch) {
		first := -1
		for i, e := range werrs {
			switch {
			case e != nil && first < 0:
				first = i
				se.Resume = k.pos[i]
				se.Err = fmt.Errorf("produce to %s: %w", k.w.Topic, e)
			case e == nil && first < 0:
				k.produced++
			case e == nil:
				k.produced++
				se.AckedAfter++
			}
		}
	}
	return se
}

func (k *kafkaSink) Produced() int { return k.produced }

func (k *kafkaSink) Next() logimport.Pos { return k.next }

func (k *kafkaSink) Close() error { return k.w.Close() }
