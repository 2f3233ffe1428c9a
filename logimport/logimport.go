// Package logimport reads the original Manhattan's TimeRotatingLog files, the
// migration path into this pipeline: one file per hour named
// PATH.<hour-epoch> (or PATH.<hour-epoch>.gz when gzip-compressed, as the
// original's GZEventLog wrote), one record per line, tab-separated fields each escaped
// with Python's unicode_escape, in the order
//
//	version, type, timestamp, vid, site_id, <fields of the type>
//
// with page: ip, method, url, user_agent, referer; pixel: none; goal: name,
// value, value_type, value_format; split: test, selected.
package logimport

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
)

// LogVersion is the only record version the original system wrote.
const LogVersion = "1"

// MaxLineBytes bounds one line; a longer line is skipped as unparseable.
const MaxLineBytes = 1 << 20

// Files lists the log files of path, oldest first: path.<hour-epoch> and
// path.<hour-epoch>.gz (gzip), ordered by the epoch. An hour present both
// plain and compressed is an error: importing both would count it twice.
// When there are none and path itself is a file, it is the one file (a
// single log handed over on its own; gzip when its name ends in .gz).
func Files(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("logimport: list %s.*: %w", path, err)
	}
	type file struct {
		name  string
		epoch int64
	}
	var files []file
	seen := map[int64]string{}
	for _, m := range matches {
		suffix := strings.TrimSuffix(strings.TrimPrefix(m, path+"."), ".gz")
		epoch, err := strconv.ParseInt(suffix, 10, 64)
		if err != nil {
			continue // e.g. PATH.1.bak: not a log file
		}
		if st, err := os.Stat(m); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if other, dup := seen[epoch]; dup {
			return nil, fmt.Errorf("logimport: %s and %s hold the same hour: move one aside so it is not imported twice", other, m)
		}
		seen[epoch] = m
		files = append(files, file{m, epoch})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].epoch < files[j].epoch })
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.name
	}
	if len(out) == 0 {
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			return []string{path}, nil
		}
		return nil, fmt.Errorf("logimport: no log files %s.<hour-epoch>[.gz] (nor a file %s)", path, path)
	}
	return out, nil
}

// globEscape quotes glob metacharacters in a literal path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fieldsOf is the order of the type-specific fields after the base fields.
var fieldsOf = map[event.Type]int{
	event.TypePage:  5,
	event.TypePixel: 0,
	event.TypeGoal:  4,
	event.TypeSplit: 2,
}

// ParseLine parses one record line (without its newline) into a validated
// event. Like the original reader it strips surrounding whitespace first, so
// trailing empty fields may be missing; they are empty.
func ParseLine(line string) (event.Event, error) {
	var ev event.Event
	line = strings.Trim(line, " \t\n\r\v\f")
	if line == "" {
		return ev, errors.New("empty line")
	}
	raw := strings.Split(line, "\t")
	fields := make([]string, len(raw))
	for i, r := range raw {
		f, err := Unescape(r)
		if err != nil {
			return ev, fmt.Errorf("field %d: %w", i+1, err)
		}
		fields[i] = f
	}
	if fields[0] != LogVersion {
		return ev, fmt.Errorf("version %q, want %s", fields[0], LogVersion)
	}
	if len(fields) == 4 {
		// An empty site_id (site 0) that the whitespace strip took along.
		fields = append(fields, "")
	}
	if len(fields) < 5 {
		return ev, fmt.Errorf("%d fields, want at least 4 (version, type, timestamp, vid[, site_id])", len(fields))
	}
	typ, err := event.ParseType(fields[1])
	if err != nil {
		return ev, err
	}
	extra := fieldsOf[typ]
	if len(fields) > 5+extra {
		return ev, fmt.Errorf("%s record has %d fields, want at most %d", typ, len(fields), 5+extra)
	}
	get := func(i int) string { // i-th type-specific field, "" when stripped
		if 5+i < len(fields) {
			return fields[5+i]
		}
		return ""
	}
	ev.Type = typ
	if ev.TS, err = ParseTimestamp(fields[2]); err != nil {
		return ev, fmt.Errorf("timestamp: %w", err)
	}
	ev.VID = fields[3]
	if s := strings.TrimSpace(fields[4]); s != "" {
		if ev.SiteID, err = strconv.ParseInt(s, 10, 64); err != nil {
			return ev, fmt.Errorf("site_id %q is not an integer", fields[4])
		}
	}
	switch typ {
	case event.TypePage:
		ev.IP, ev.Method, ev.URL, ev.UserAgent, ev.Referer = get(0), get(1), get(2), get(3), get(4)
	case event.TypeGoal:
		ev.Name, ev.ValueType, ev.ValueFormat = get(0), get(2), get(3)
		if v := strings.TrimSpace(get(1)); v != "" {
			// Python wrote str(value): "12.5", "3", "1e-05". Keep it exact.
			d, err := decimal.NewFromString(v)
			if err != nil {
				return ev, fmt.Errorf("goal value %q is not a number", get(1))
			}
			ev.Value = d.String()
		}
	case event.TypeSplit:
		ev.Test, ev.Selected = get(0), get(1)
	}
	if err := ev.Validate(); err != nil {
		return ev, err
	}
	return ev, nil
}

// ParseTimestamp reads Unix seconds with an optional fraction ("%0.4f" in the
// original) into microseconds, exactly (no float rounding); digits beyond the
// sixth decimal are truncated.
func ParseTimestamp(s string) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not Unix seconds", s)
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec >= math.MaxInt64/1_000_000 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	if len(frac) > 6 {
		frac = frac[:6]
	}
	frac += strings.Repeat("0", 6-len(frac))
	us, _ := strconv.ParseInt(frac, 10, 64)
	return sec*1_000_000 + us, nil
}

// Stats counts what a Read saw.
type Stats struct {
	Files   int
	Lines   int // non-blank lines read
	Records int // lines parsed and handed to emit
	Skipped int // lines that did not parse
	ByType  map[event.Type]int
}

// Pos is a line of a log file.
type Pos struct {
	File string
	Line int // 1-based
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Skip describes a line that did not parse.
type Skip struct {
	File string
	Line int // 1-based
	Err  error
}

func (s Skip) String() string { return fmt.Sprintf("%s:%d: %v", s.File, s.Line, s.Err) }

// Read parses every file in order, handing each record and its line to emit
// and each unparseable line to skip (which may be nil). An error from emit
// stops the read and is returned; skipped lines never stop it.
//
// A non-zero from resumes an import: the files before from.File and its
// lines before from.Line are passed over unread (and uncounted).
func Read(ctx context.Context, files []string, from Pos, emit func(event.Event, Pos) error, skip func(Skip)) (Stats, error) {
	st := Stats{ByType: map[event.Type]int{}}
	if from.File != "" {
		i := slices.Index(files, from.File)
		if i < 0 {
			return st, fmt.Errorf("logimport: resume from %s: not one of the %d files to import", from, len(files))
		}
		files = files[i:]
	}
	for i, name := range files {
		first := 1
		if i == 0 && from.File != "" {
			first = from.Line
		}
		if err := readFile(ctx, name, first, &st, emit, skip); err != nil {
			return st, err
		}
		st.Files++
	}
	return st, nil
}

func readFile(ctx context.Context, name string, first int, st *Stats, emit func(event.Event, Pos) error, skip func(Skip)) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("logimport: %w", err)
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("logimport: %s: not readable as gzip: %w", name, err)
		}
		defer zr.Close()
		in = zr
	}
	r := bufio.NewReaderSize(in, 64<<10)
	for lineNo := 1; ; lineNo++ {
		if lineNo%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, tooLong, err := readLine(r)
		if err == io.EOF && line == "" && !tooLong {
			return nil
		}
		if err != nil && err != io.EOF {
			// A truncated or corrupt .gz fails here, after its good lines.
			return fmt.Errorf("logimport: read %s: %w", name, err)
		}
		if lineNo >= first && (strings.TrimSpace(line) != "" || tooLong) {
			st.Lines++
			var ev event.Event
			perr := errors.New("line longer than " + strconv.Itoa(MaxLineBytes) + " bytes")
			if !tooLong {
				ev, perr = ParseLine(line)
			}
			if perr != nil {
				st.Skipped++
				if skip != nil {
					skip(Skip{File: name, Line: lineNo, Err: perr})
				}
			} else {
				if err := emit(ev, Pos{File: name, Line: lineNo}); err != nil {
					return fmt.Errorf("logimport: %s:%d: %w", name, lineNo, err)
				}
				st.Records++
				st.ByType[ev.Type]++
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line without its newline; a line over
// MaxLineBytes is consumed and reported as tooLong.
func readLine(r *bufio.Reader) (line string, tooLong bool, err error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if len(b)+len(chunk) > MaxLineBytes {
			tooLong = true
		} else {
			b = append(b, chunk...)
		}
		if err != nil {
			return string(b), tooLong, err
		}
		if !isPrefix {
			return string(b), tooLong, nil
		}
	}
}
