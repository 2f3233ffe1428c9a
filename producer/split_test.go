package producer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
)

type splitVector struct {
	VID         string          `json:"vid"`
	Test        string          `json:"test"`
	Populations json.RawMessage `json:"populations"`
	Selected    string          `json:"selected"`
}

func TestSplitVectors(t *testing.T) {
	raw, err := os.ReadFile("/work/shared/testdata/split_vectors.json")
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
