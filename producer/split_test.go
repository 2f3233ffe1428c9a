package producer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/manhattan-go/manhattan/event"
)

type splitVector struct {
	VID         string          `json:"vid"`
	Test        string          `json:"test"`
	Populations json.RawMessage `json:"populations"`
	Selected    string          `json:"selected"`
}

func TestSplitVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/split_vectors.json") // a copy of shared/testdata/split_vectors.json
	if err != nil {
		t.Fatal(err)
	}
	var vs []splitVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 200 {
		t.Fatalf("only %d vectors", len(vs))
	}
	shapes := map[string]int{}
	for _, v := range vs {
		var got string
		switch {
		case string(v.Populations) == "null":
			shapes["none"]++
			got = Assign(v.VID, v.Test)
		case v.Populations[0] == '[':
			shapes["list"]++
			var list []string
			if err := json.Unmarshal(v.Populations, &list); err != nil {
				t.Fatal(err)
			}
			got = Assign(v.VID, v.Test, list...)
		default:
			shapes["weighted"]++
			var m map[string]float64
			if err := json.Unmarshal(v.Populations, &m); err != nil {
				t.Fatal(err)
			}
			got, err = AssignWeighted(v.VID, v.Test, m)
			if err != nil {
				t.Fatalf("%s/%s: %v", v.VID, v.Test, err)
			}
		}
		if got != v.Selected {
			t.Errorf("vid %s test %q populations %s: got %q want %q", v.VID, v.Test, v.Populations, got, v.Selected)
		}
	}
	if shapes["none"] == 0 || shapes["list"] == 0 || shapes["weighted"] == 0 {
		t.Fatalf("vector shapes not all covered: %v", shapes)
	}
}

func TestSplitDistribution(t *testing.T) {
	const n = 100_000
	weights := map[string]float64{"a": 70, "b": 30}
	counts := map[string]int{}
	for i := range n {
		vid := fmt.Sprintf("%040x", uint64(i)*0x9e3779b97f4a7c15)
		p, err := AssignWeighted(vid, "dist test", weights)
		if err != nil {
			t.Fatal(err)
		}
		counts[p]++
	}
	for name, w := range weights {
		share := float64(counts[name]) / n
		if math.Abs(share-w/100) > 0.01 {
			t.Errorf("population %s: share %.4f, want %.2f±0.01 (counts %v)", name, share, w/100, counts)
		}
	}
}

func TestSplitIdempotentAndInvalid(t *testing.T) {
	vid := "0123456789abcdef0123456789abcdef01234567"
	if Assign(vid, "t", "x", "y", "z") != Assign(vid, "t", "x", "y", "z") {
		t.Fatal("not deterministic")
	}
	for _, m := range []map[string]float64{nil, {}, {"a": 0, "b": -1}} {
		if _, err := AssignWeighted(vid, "t", m); !errors.Is(err, ErrNoPopulations) {
			t.Errorf("%v: got %v, want ErrNoPopulations", m, err)
		}
	}
	if _, err := AssignWeighted(vid, "t", map[string]float64{"a": math.NaN(), "b": 1}); err == nil {
		t.Error("NaN weight accepted")
	}
	// Zero-weight populations are never chosen.
	for i := range 1000 {
		p, _ := AssignWeighted(fmt.Sprint(i), "t", map[string]float64{"a": 0, "b": 1})
		if p != "b" {
			t.Fatal("zero weight chosen")
		}
	}
}

// python2Vector is one line of testdata/python2_split_vectors.json, made by
// testdata/gen_python2_vectors.py with CPython 2.7.18.
type python2Vector struct {
	VID         string   `json:"vid"`
	Test        string   `json:"test"`
	Hash        int64    `json:"hash"` // Python 2's hash(vid + test)
	Populations []string `json:"populations"`
	Selected    string   `json:"selected"`
}

func loadPython2Vectors(t *testing.T) []python2Vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/python2_split_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []python2Vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 200 {
		t.Fatalf("only %d python2 vectors", len(vs))
	}
	return vs
}

func TestPython2SplitVectors(t *testing.T) {
	vs := loadPython2Vectors(t)
	var lists, fifty, nonASCII, negative, differ int
	for _, v := range vs {
		if h := int64(python2Hash(v.VID, v.Test)); h != v.Hash {
			t.Errorf("hash(%q + %q) = %d, want %d", v.VID, v.Test, h, v.Hash)
		}
		got := SeedPython2.Assign(v.VID, v.Test, v.Populations...)
		if got != v.Selected {
			t.Errorf("vid %q test %q populations %q: got %q want %q", v.VID, v.Test, v.Populations, got, v.Selected)
		}
		if v.Populations == nil {
			fifty++
		} else {
			lists++
		}
		if v.Hash < 0 {
			negative++
		}
		for _, c := range []byte(v.Test) {
			if c >= 0x80 {
				nonASCII++
				break
			}
		}
		if Assign(v.VID, v.Test, v.Populations...) != v.Selected {
			differ++
		}
	}
	// The fixture must exercise what could go wrong: both shapes, UTF-8
	// names, negative hashes (the unsigned conversion), and seeds where the
	// two modes disagree (else the test could not tell them apart).
	if fifty < 50 || lists < 50 || nonASCII < 50 || negative < 50 || differ < 50 {
		t.Fatalf("fixture too narrow: 50/50 %d, lists %d, non-ASCII %d, negative hash %d, differing from design %d",
			fifty, lists, nonASCII, negative, differ)
	}
	t.Logf("%d vectors; %d pick differently under design seeding", len(vs), differ)
}

func TestSplitSeedingDefaultIsDesign(t *testing.T) {
	for _, s := range []SplitSeeding{"", SeedDesign} {
		vid := "0123456789abcdef0123456789abcdef01234567"
		if s.Assign(vid, "hero copy", "a", "b", "c") != Assign(vid, "hero copy", "a", "b", "c") {
			t.Errorf("seeding %q differs from Assign", s)
		}
		w := map[string]float64{"a": 1, "b": 2}
		p1, err1 := s.AssignWeighted(vid, "w", w)
		p2, err2 := AssignWeighted(vid, "w", w)
		if p1 != p2 || err1 != nil || err2 != nil {
			t.Errorf("seeding %q weighted: %q %v, want %q %v", s, p1, err1, p2, err2)
		}
	}
}

func TestParseSplitSeeding(t *testing.T) {
	for in, want := range map[string]SplitSeeding{"": SeedDesign, "design": SeedDesign, "python2": SeedPython2} {
		if got, err := ParseSplitSeeding(in); got != want || err != nil {
			t.Errorf("ParseSplitSeeding(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"Python2", "py2", "python3"} {
		if _, err := ParseSplitSeeding(in); err == nil {
			t.Errorf("ParseSplitSeeding(%q) accepted", in)
		}
	}
	if _, err := New(Options{Secret: "s", Sink: &recorder{}, SplitSeeding: "python"}); err == nil ||
		!strings.Contains(err.Error(), "producer.split_seeding") {
		t.Errorf("New with bad SplitSeeding: %v", err)
	}
}

// TestMiddlewarePython2Seeding checks that the option reaches Visitor.Split
// and the recorded event, for a visitor the two seedings place differently.
func TestMiddlewarePython2Seeding(t *testing.T) {
	var v python2Vector
	for _, c := range loadPython2Vectors(t) {
		if c.VID != "" && c.Populations != nil && Assign(c.VID, c.Test, c.Populations...) != c.Selected {
			v = c
			break
		}
	}
	if v.VID == "" {
		t.Fatal("no vector where the seedings differ")
	}
	m, rec := newTestMW(t, Options{SplitSeeding: SeedPython2})
	var got string
	var weightedErr error
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vis := FromRequest(r)
		got = vis.Split(v.Test, v.Populations...)
		_, weightedErr = vis.SplitWeighted("weighted", map[string]float64{"a": 1, "b": 1})
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", "manhattan="+m.signer.sign(v.VID))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got != v.Selected {
		t.Fatalf("Split = %q, want Python 2's %q", got, v.Selected)
	}
	if !errors.Is(weightedErr, ErrPython2Weighted) {
		t.Fatalf("weighted split under python2 seeding: err %v, want ErrPython2Weighted", weightedErr)
	}
	var splits []event.Event
	for _, e := range rec.take() {
		if e.Type == event.TypeSplit {
			splits = append(splits, e)
		}
	}
	if len(splits) != 1 || splits[0].Test != v.Test || splits[0].Selected != v.Selected {
		t.Fatalf("split events %+v, want one (%q, %q)", splits, v.Test, v.Selected)
	}
}

// BenchmarkAssign compares the seedings; design is the baseline (the default
// path, which must stay allocation-free).
func BenchmarkAssign(b *testing.B) {
	vid := "0123456789abcdef0123456789abcdef01234567"
	for _, s := range []SplitSeeding{SeedDesign, SeedPython2} {
		b.Run(string(s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Assign(vid, "superior dessert preference", "a", "b", "c")
			}
		})
	}
}
