package producer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func openTestSpool(t *testing.T, dir string, maxBytes, segBytes int64) (*diskSpool, *int) {
	t.Helper()
	corrupt := new(int)
	s, err := openDiskSpool(dir, maxBytes, segBytes, func(n int) { *corrupt += n })
	if err != nil {
		t.Fatal(err)
	}
	return s, corrupt
}

func drainAll(t *testing.T, s spool, batch int) []string {
	t.Helper()
	var out []string
	for !s.empty() {
		recs, err := s.peek(batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			out = append(out, string(r.key)+"="+string(r.value))
		}
		if err := s.commit(len(recs)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDiskSpoolOrderAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSpool(t, dir, 1<<20, 200) // tiny segments: many files
	for i := range 100 {
		if err := s.append([]byte(fmt.Sprint("k", i%7)), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Read part, then "crash" (close) and reopen: resumes after the cursor.
	for done := 0; done < 30; {
		recs, _ := s.peek(30 - done)
		s.commit(len(recs))
		done += len(recs)
	}
	s.peek(10) // peeked but never committed: must come again
	s.close()
	s2, _ := openTestSpool(t, dir, 1<<20, 200)
	got := drainAll(t, s2, 7)
	if len(got) != 70 || got[0] != "k2=v30" || got[69] != "k1=v99" {
		t.Fatalf("after restart got %d records, first %q last %q", len(got), got[0], got[len(got)-1])
	}
	if !s2.empty() || s2.bytes() != 0 {
		t.Fatalf("not empty: %d bytes", s2.bytes())
	}
	s2.close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) > 1 {
		t.Fatalf("read segments not removed: %v", files)
	}
}

func TestDiskSpoolBound(t *testing.T) {
	s, _ := openTestSpool(t, t.TempDir(), 100, 1<<20)
	n := 0
	for range 50 {
		if s.append([]byte("key"), []byte("value-value")) == nil {
			n++
		}
	}
	if n == 0 || n >= 50 || s.bytes() > 100 {
		t.Fatalf("appended %d, %d bytes", n, s.bytes())
	}
}

func TestDiskSpoolCorruption(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSpool(t, dir, 1<<20, 1<<20)
	for i := range 20 {
		s.append([]byte("key"), []byte(fmt.Sprintf("value-%02d", i)))
	}
	s.close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != 1 {
		t.Fatal(files)
	}
	data, _ := os.ReadFile(files[0])
	recLen := len(data) / 20
	data[3*recLen+12] ^= 0xff         // payload of record 3: CRC mismatch
	data[7*recLen+1] = 0x7f           // length of record 7: absurd
	copy(data[11*recLen:], "garbage") // header and key of record 11
	data = data[:len(data)-5]         // record 19 truncated
	os.WriteFile(files[0], data, 0o644)
	// A second segment with only garbage, and an empty one.
	os.WriteFile(filepath.Join(dir, "00000000000000000005.seg"), []byte("not a spool at all"), 0o644)
	os.WriteFile(filepath.Join(dir, "00000000000000000006.seg"), nil, 0o644)

	s2, corrupt := openTestSpool(t, dir, 1<<20, 1<<20)
	s2.append([]byte("key"), []byte("after"))
	got := drainAll(t, s2, 4)
	want := []string{}
	for i := range 19 {
		if i != 3 && i != 7 && i != 11 {
			want = append(want, fmt.Sprintf("key=value-%02d", i))
		}
	}
	want = append(want, "key=after")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if *corrupt < 4*recLen {
		t.Fatalf("corrupt bytes reported %d", *corrupt)
	}
	if !s2.empty() {
		t.Fatalf("spool not empty: %d", s2.bytes())
	}
}

func TestMemSpool(t *testing.T) {
	s := &memSpool{maxBytes: 1000}
	key := []byte("k")
	for i := range 10 {
		val := []byte(fmt.Sprint(i))
		s.append(key, val)
		val[0] = 'x' // the spool must have copied
	}
	got := drainAll(t, s, 3)
	if len(got) != 10 || got[9] != "k=9" {
		t.Fatal(got)
	}
}
