package producer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The spool keeps records while Kafka is unreachable, oldest first. Two
// implementations: on disk (SpoolDir set) and in memory (SpoolDir empty;
// lost on exit, but still bounded and ordered).

type spoolRecord struct {
	key, value []byte
}

var errSpoolFull = errors.New("spool full")

type spool interface {
	append(key, value []byte) error
	// peek returns up to max records from the head without removing them.
	peek(max int) ([]spoolRecord, error)
	// commit removes the n records returned by the last peek.
	commit(n int) error
	empty() bool
	bytes() int64
	close() error
}

// ---- memory ----

type memSpool struct {
	recs     []spoolRecord
	size     int64
	maxBytes int64
}

func (s *memSpool) append(key, value []byte) error {
	n := int64(len(key) + len(value) + 8)
	if s.size+n > s.maxBytes {
		return errSpoolFull
	}
	// Copy: callers reuse their buffers.
	buf := make([]byte, 0, len(key)+len(value))
	buf = append(append(buf, key...), value...)
	s.recs = append(s.recs, spoolRecord{buf[:len(key):len(key)], buf[len(key):]})
	s.size += n
	return nil
}

func (s *memSpool) peek(max int) ([]spoolRecord, error) {
	return s.recs[:min(max, len(s.recs))], nil
}

func (s *memSpool) commit(n int) error {
	for _, r := range s.recs[:n] {
		s.size -= int64(len(r.key) + len(r.value) + 8)
	}
	clear(s.recs[:n])
	s.recs = s.recs[n:]
	if len(s.recs) == 0 {
		s.recs = nil
	}
	return nil
}

func (s *memSpool) empty() bool  { return len(s.recs) == 0 }
func (s *memSpool) bytes() int64 { return s.size }
func (s *memSpool) close() error { return nil }

// ---- disk ----
//
// Append-only segment files NNNNNNNNNNNNNNNNNNNN.seg; each record is
// [u32 length][u32 CRC-32C of payload][payload], payload = [u16 key
// length][key][value]. The reader only reads closed segments (it rotates the
// active one when it catches up), loads one segment at a time, and records
// its position in the file "cursor" so a restart does not resend. Corrupt or
// truncated records are skipped one by one (resynchronising on the next
// record whose CRC checks out) and reported through onCorrupt.

const (
	segSuffix    = ".seg"
	cursorFile   = "cursor"
	recHeader    = 8
	maxRecordLen = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type diskSpool struct {
	dir       string
	maxBytes  int64
	segBytes  int64
	onCorrupt func(skippedBytes int)

	segs  []uint64 // closed segments not yet fully read, oldest first
	sizes map[uint64]int64

	w     *os.File
	wSeq  uint64
	wSize int64

	// reader state over segs[0]
	rData    []byte
	rSeq     uint64
	rOff     int
	reported int // corrupt bytes of this segment already reported up to here
	loaded   bool
	peeked   []int // end offsets of the peeked records

	total int64 // unread bytes across segments
}

func openDiskSpool(dir string, maxBytes, segBytes int64, onCorrupt func(int)) (*diskSpool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &diskSpool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, onCorrupt: onCorrupt, sizes: map[uint64]int64{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.segs = append(s.segs, seq)
		s.sizes[seq] = info.Size()
	}
	slices.Sort(s.segs)
	curSeq, curOff := s.readCursor()
	for len(s.segs) > 0 && s.segs[0] < curSeq {
		os.Remove(s.segPath(s.segs[0]))
		delete(s.sizes, s.segs[0])
		s.segs = s.segs[1:]
	}
	for _, seq := range s.segs {
		s.total += s.sizes[seq]
	}
	if len(s.segs) > 0 && s.segs[0] == curSeq && curOff > 0 && curOff <= s.sizes[curSeq] {
		s.rOff = int(curOff)
		s.total -= curOff
	}
	// New segments must sort after the cursor's, or a restart would
	// mistake them for read ones.
	s.wSeq = curSeq + 1
	if len(s.segs) > 0 {
		s.wSeq = max(s.wSeq, s.segs[len(s.segs)-1]+1)
	}
	return s, nil
}

func (s *diskSpool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
}

func (s *diskSpool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	seq, err1 := strconv.ParseUint(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return 0, 0
	}
	return seq, off
}

func (s *diskSpool) writeCursor() error {
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", s.rSeq, s.rOff)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, cursorFile))
}

func (s *diskSpool) append(key, value []byte) error {
	if len(key) > 0xffff || len(key)+len(value)+2 > maxRecordLen {
		return fmt.Errorf("spool: record of %d bytes too large", len(key)+len(value))
	}
	n := int64(recHeader + 2 + len(key) + len(value))
	if s.total+n > s.maxBytes {
		return errSpoolFull
	}
	if s.w == nil || s.wSize >= s.segBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	buf := make([]byte, n)
	binary.BigEndian.PutUint32(buf, uint32(n-recHeader))
	binary.BigEndian.PutUint16(buf[recHeader:], uint16(len(key)))
	copy(buf[recHeader+2:], key)
	copy(buf[recHeader+2+len(key):], value)
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[recHeader:], castagnoli))
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("spool: write %s: %w", s.w.Name(), err)
	}
	s.wSize += n
	s.total += n
	return nil
}

// rotate closes the active segment (making it readable) and opens a new one.
func (s *diskSpool) rotate() error {
	if s.w != nil {
		if err := s.w.Close(); err != nil {
			return fmt.Errorf("spool: close segment: %w", err)
		}
		if s.wSize > 0 {
			s.segs = append(s.segs, s.wSeq)
			s.sizes[s.wSeq] = s.wSize
		} else {
			os.Remove(s.segPath(s.wSeq))
		}
		s.wSeq++
		s.w = nil
	}
	f, err := os.OpenFile(s.segPath(s.wSeq), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.w, s.wSize = f, 0
	return nil
}

func (s *diskSpool) empty() bool  { return s.total <= 0 }
func (s *diskSpool) bytes() int64 { return max(s.total, 0) }

func (s *diskSpool) peek(max int) ([]spoolRecord, error) {
	s.peeked = s.peeked[:0]
	for {
		if len(s.segs) == 0 {
			if s.wSize == 0 {
				return nil, nil
			}
			if err := s.rotate(); err != nil {
				return nil, err
			}
		}
		if !s.loaded {
			data, err := os.ReadFile(s.segPath(s.segs[0]))
			if err != nil {
				return nil, fmt.Errorf("spool: read segment: %w", err)
			}
			if s.rSeq != s.segs[0] {
				s.rSeq = s.segs[0]
				if s.rOff > len(data) {
					s.rOff = 0
				}
			}
			s.rData, s.loaded = data, true
		}
		var out []spoolRecord
		off := s.rOff
		for len(out) < max {
			rec, next, ok := s.parse(off)
			if !ok {
				break
			}
			out = append(out, rec)
			s.peeked = append(s.peeked, next)
			off = next
		}
		if len(out) > 0 {
			return out, nil
		}
		// Segment exhausted: drop it and go on with the next.
		s.total -= int64(len(s.rData) - s.rOff)
		os.Remove(s.segPath(s.segs[0]))
		delete(s.sizes, s.segs[0])
		s.segs = s.segs[1:]
		s.rData, s.loaded, s.rOff, s.reported = nil, false, 0, 0
		if len(s.segs) > 0 {
			s.rSeq = s.segs[0]
		}
		if len(s.segs) == 0 && s.wSize == 0 {
			s.total = 0
			return nil, s.writeCursor()
		}
	}
}

// parse reads the record at off, skipping corrupt bytes. ok is false at the
// end of the segment. Skipped bytes are reported once, however often the
// same region is peeked again.
func (s *diskSpool) parse(off int) (rec spoolRecord, next int, ok bool) {
	data := s.rData
	start := off
	report := func(end int) {
		if from := max(start, s.reported); end > from {
			s.onCorrupt(end - from)
			s.reported = end
		}
	}
	for off < len(data) {
		if r, n, good := recordAt(data, off); good {
			report(off)
			return r, n, true
		}
		// Corrupt here. If the length looks sane and a good record (or the
		// end) follows it, skip just this record; otherwise move one byte
		// and resynchronise.
		step := 1
		if len(data)-off >= recHeader {
			if l := int(binary.BigEndian.Uint32(data[off:])); l >= 2 && l <= maxRecordLen && off+recHeader+l <= len(data) {
				if _, _, good := recordAt(data, off+recHeader+l); good || off+recHeader+l == len(data) {
					step = recHeader + l
				}
			}
		}
		off += step
	}
	report(off)
	return spoolRecord{}, off, false
}

func recordAt(data []byte, off int) (spoolRecord, int, bool) {
	if len(data)-off < recHeader+2 {
		return spoolRecord{}, 0, false
	}
	l := int(binary.BigEndian.Uint32(data[off:]))
	if l < 2 || l > maxRecordLen || off+recHeader+l > len(data) {
		return spoolRecord{}, 0, false
	}
	payload := data[off+recHeader : off+recHeader+l]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(data[off+4:]) {
		return spoolRecord{}, 0, false
	}
	kl := int(binary.BigEndian.Uint16(payload))
	if 2+kl > l {
		return spoolRecord{}, 0, false
	}
	return spoolRecord{key: payload[2 : 2+kl], value: payload[2+kl:]}, off + recHeader + l, true
}

func (s *diskSpool) commit(n int) error {
	if n <= 0 {
		return nil
	}
	end := s.peeked[n-1]
	s.total -= int64(end - s.rOff)
	s.rOff = end
	s.peeked = s.peeked[:0]
	return s.writeCursor()
}

func (s *diskSpool) close() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	if s.wSize == 0 {
		os.Remove(s.segPath(s.wSeq))
	}
	s.w = nil
	return err
}
