package logimport

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/manhattan-go/manhattan/event"
)

// The fixture in testdata/ was written with Python's str.encode("unicode_escape")
// joined by tabs, exactly as the original TextLog.format does.
const fixture = "testdata/manhattan.log"

func TestFilesOldestFirst(t *testing.T) {
	files, err := Files(fixture)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fixture + ".999999999", fixture + ".1357002000", fixture + ".1357005600", fixture + ".1357009200.gz"}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("Files = %v, want %v (numeric order, .gz included)", files, want)
	}
}

func TestFilesSingleAndMissing(t *testing.T) {
	one := fixture + ".1357005600"
	files, err := Files(one)
	if err != nil || !reflect.DeepEqual(files, []string{one}) {
		t.Fatalf("Files(%s) = %v, %v; want the file itself", one, files, err)
	}
	if _, err := Files(filepath.Join(t.TempDir(), "nothing.log")); err == nil {
		t.Fatal("no error for a path without log files")
	}
}

func TestReadFixture(t *testing.T) {
	files, err := Files(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Event
	var skips []string
	var pos []string
	st, err := Read(context.Background(), files, Pos{}, func(ev event.Event, p Pos) error {
		got = append(got, ev)
		pos = append(pos, p.String())
		return nil
	}, func(s Skip) { skips = append(skips, s.String()) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Lines != 21 || st.Records != 12 || st.Skipped != 9 {
		t.Fatalf("stats = %+v, want 4 files, 21 lines, 12 records, 9 skipped", st)
	}
	if st.ByType[event.TypePage] != 2 || st.ByType[event.TypePixel] != 3 || st.ByType[event.TypeGoal] != 5 || st.ByType[event.TypeSplit] != 2 {
		t.Fatalf("by type = %v", st.ByType)
	}
	if pos[1] != fixture+".1357002000:1" || pos[11] != fixture+".1357009200.gz:3" {
		t.Errorf("positions = %q", pos)
	}

	f1 := fixture + ".1357002000:"
	wantSkips := []string{f1 + "5:", f1 + "9:", f1 + "10:", f1 + "11:", f1 + "12:", f1 + "14:", f1 + "15:", f1 + "16:",
		fixture + ".1357009200.gz:2:"}
	if len(skips) != len(wantSkips) {
		t.Fatalf("skips = %q", skips)
	}
	for i, w := range wantSkips {
		if !strings.HasPrefix(skips[i], w) {
			t.Errorf("skip %d = %q, want prefix %q", i, skips[i], w)
		}
	}

	want := []event.Event{
		{Type: event.TypePixel, TS: 999999999_000000, VID: "vid0"},
		{Type: event.TypePage, TS: 1357002000_123400, VID: "vid1", IP: "127.0.0.1", Method: "GET",
			URL: "http://example.com/café?q=a\tb", UserAgent: `Mozilla/5.0 (X11; Linux) \o/`},
		{Type: event.TypePixel, TS: 1357002000_500000, VID: "vid1"},
		{Type: event.TypeGoal, TS: 1357002001_000000, VID: "vid1", SiteID: 2, Name: "pie accomplished", Value: "12.5", ValueType: "S", ValueFormat: "C"},
		{Type: event.TypeGoal, TS: 1357002001_250000, VID: "vid1", SiteID: 2, Name: "line1\nline2 ☃ 🥧"},
		{Type: event.TypeSplit, TS: 1357002002_000100, VID: "vid1", Test: "superior dessert preference", Selected: "True"},
		{Type: event.TypeSplit, TS: 1357002003_000000, VID: "vid2", Test: "dessert emoji", Selected: "🍰"},
		{Type: event.TypeGoal, TS: 1357002006_000000, VID: "vid2", Name: "tiny", Value: "0.00001", ValueType: "A", ValueFormat: "N"},
		{Type: event.TypePage, TS: 1357005600_000000, VID: "vid3", SiteID: 1, IP: "10.0.0.3", Method: "GET", URL: "/pie",
			UserAgent: "curl/8.0", Referer: "http://ref.example/"},
		{Type: event.TypeGoal, TS: 1357005601_999999, VID: "vid3", SiteID: 1, Name: "pie accomplished"},
		// From the gzip-compressed hour.
		{Type: event.TypePixel, TS: 1357009200_500000, VID: "vid4"},
		{Type: event.TypeGoal, TS: 1357009201_000000, VID: "vid4", Name: "from gzip", Value: "3", ValueType: "S", ValueFormat: "N"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestReadStopsOnEmitError(t *testing.T) {
	boom := errors.New("broker down")
	n := 0
	st, err := Read(context.Background(), []string{fixture + ".1357002000"}, Pos{}, func(event.Event, Pos) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	}, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), ".1357002000:2:") {
		t.Fatalf("err = %v, want the emit error with file:line", err)
	}
	if st.Records != 1 {
		t.Fatalf("records = %d, want 1", st.Records)
	}
}

func TestReadLongLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.1")
	long := "1\tgoal\t1\tv\t0\t" + strings.Repeat("x", MaxLineBytes)
	if err := os.WriteFile(p, []byte(long+"\n1\tpixel\t2\tv\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var skips []Skip
	st, err := Read(context.Background(), []string{p}, Pos{}, func(event.Event, Pos) error { return nil }, func(s Skip) { skips = append(skips, s) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 1 || st.Skipped != 1 || len(skips) != 1 || skips[0].Line != 1 {
		t.Fatalf("stats %+v skips %v", st, skips)
	}
}

// TestReadResume: a resumed read starts at the given line of the given file
// and emits nothing before it.
func TestReadResume(t *testing.T) {
	files, err := Files(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var first Pos
	n := 0
	st, err := Read(context.Background(), files, Pos{File: fixture + ".1357002000", Line: 13}, func(_ event.Event, p Pos) error {
		if n == 0 {
			first = p
		}
		n++
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One record of .1357002000 from line 13, then 2 + 2 more.
	if first != (Pos{fixture + ".1357002000", 13}) || st.Records != 5 || st.Files != 3 {
		t.Fatalf("first %v, stats %+v; want to start at line 13 with 5 records in 3 files", first, st)
	}
	if _, err := Read(context.Background(), files, Pos{File: "elsewhere.log.1", Line: 1}, func(event.Event, Pos) error { return nil }, nil); err == nil || !strings.Contains(err.Error(), "elsewhere.log.1:1") {
		t.Fatalf("resume from a file not in the list: err = %v", err)
	}
}

// TestGzip: a compressed hour is read like a plain one; a corrupt one stops
// the read naming the file; an hour present both ways is refused.
func TestGzip(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "m.log")
	if err := os.WriteFile(base+".100.gz", []byte("not gzip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := Files(base)
	if err != nil || len(files) != 1 {
		t.Fatalf("Files = %v, %v", files, err)
	}
	_, err = Read(context.Background(), files, Pos{}, func(event.Event, Pos) error { return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "m.log.100.gz") || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("corrupt gzip: err = %v, want it to name the file and gzip", err)
	}
	if err := os.WriteFile(base+".100", []byte("1\tpixel\t100\tv\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Files(base); err == nil || !strings.Contains(err.Error(), "same hour") {
		t.Fatalf("plain and gzip copy of one hour: err = %v, want a refusal", err)
	}
	// A single .gz file handed over on its own.
	one := fixture + ".1357009200.gz"
	n := 0
	if _, err := Read(context.Background(), []string{one}, Pos{}, func(event.Event, Pos) error { n++; return nil }, nil); err != nil || n != 2 {
		t.Fatalf("single gzip file: %d records, %v; want 2", n, err)
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`plain`, "plain"},
		{`a\tb\nc\rd`, "a\tb\nc\rd"},
		{`back\\slash`, `back\slash`},
		{`caf\xe9`, "café"},
		{`\u2603`, "☃"},
		{`\U0001f967`, "🥧"},
		{`\ud83c\udf70`, "🍰"},
		{`\ud83c x`, "\uFFFD x"},
		{`\udf70`, "\uFFFD"},
		{`\101\0`, "A\x00"},
		{`\'\"\a\b\f\v`, "'\"\a\b\f\v"},
		{`\q`, `\q`},
		{"raw ☃", "raw ☃"},
		{"latin1 \xe9", "latin1 é"},
	} {
		got, err := Unescape(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`\x4g`, `\x4`, `\u12`, `\U00110000`, `end\`, `\N{SNOWMAN}`} {
		if got, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) = %q, want an error", bad, got)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a\tb\nc\\d", "café ☃ 🥧", "\x00\x7f", "quote's \"here\""} {
		esc := Escape(s)
		if strings.ContainsAny(esc, "\t\n") {
			t.Errorf("Escape(%q) = %q contains a raw tab or newline", s, esc)
		}
		got, err := Unescape(esc)
		if err != nil || got != s {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", s, got, err)
		}
	}
	if got := Escape("café ☃ 🥧\t\\"); got != `caf\xe9 \u2603 \U0001f967\t\\` {
		t.Errorf("Escape = %q, not Python's unicode_escape", got)
	}
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]int64{
		"1357002000":          1357002000_000000,
		"1357002000.1":        1357002000_100000,
		"1357002000.1234":     1357002000_123400,
		"1357002000.12345678": 1357002000_123456,
		"0.000001":            1,
	} {
		got, err := ParseTimestamp(in)
		if err != nil || got != want {
			t.Errorf("ParseTimestamp(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".5", "-1", "1e9", "12:00", "99999999999999999999"} {
		if _, err := ParseTimestamp(bad); err == nil {
			t.Errorf("ParseTimestamp(%q) accepted", bad)
		}
	}
}

// A site-0 record written with an empty site_id loses that field to the
// whitespace strip; it is still site 0, not a bad line (a skipped pixel
// would leave its visitor uncounted).
func TestParseLineEmptySiteStripped(t *testing.T) {
	vid := "3f9a1c0de5b7a2c4e6f80123456789abcdef0123"
	ev, err := ParseLine("1\tpixel\t1357002000.2\t" + vid + "\t")
	if err != nil {
		t.Fatalf("pixel with an empty site_id: %v", err)
	}
	if ev.Type != event.TypePixel || ev.VID != vid || ev.SiteID != 0 {
		t.Fatalf("got %+v, want a site-0 pixel of %s", ev, vid)
	}
	if _, err := ParseLine("1\tpixel\t1357002000.2"); err == nil {
		t.Fatal("a line without a vid parsed")
	}
}
