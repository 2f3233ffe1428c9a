package producer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// responseWriter injects the pixel tag before "</body>" (any case) in an
// HTML response that is not Content-Encoded: before the last one of the
// first write that has one. Streamed bodies pass
// through as written, except for up to 6 bytes held back when a write ends
// in what may be the start of "</body>". A body with a declared
// Content-Length is buffered (up to maxBuffered) so the length can be fixed.
type responseWriter struct {
	http.ResponseWriter
	tag []byte

	status  int
	decided bool
	mode    uint8
	held    [6]byte
	nheld   int
	declCL  int64
	buf     *bytes.Buffer
	err     error
}

const (
	modePass uint8 = iota
	modeStream
	modeBuffer
	modeDone // injected: pass the rest through
)

const maxBuffered = 1 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (w *responseWriter) WriteHeader(code int) {
	if w.decided || w.status != 0 {
		if w.decided {
			w.ResponseWriter.WriteHeader(code) // let net/http log the superfluous call
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational, e.g. 103 Early Hints
		return
	}
	w.status = code
}

// decide picks the mode once the first body bytes (or the end) are known.
func (w *responseWriter) decide(first []byte) {
	w.decided = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.Header()
	w.mode = modePass
	if w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.status >= 200 &&
		(first1(h, "Content-Encoding") == "" || strings.EqualFold(first1(h, "Content-Encoding"), "identity")) {
		ct := first1(h, "Content-Type")
		if ct == "" && len(h["Content-Type"]) == 0 && len(first) > 0 {
			ct = http.DetectContentType(first)
			h.Set("Content-Type", ct) // what net/http would send anyway
		}
		if isHTML(ct) {
			w.mode = modeStream
			if cl := first1(h, "Content-Length"); cl != "" {
				n, err := strconv.ParseInt(cl, 10, 64)
				if err == nil && n >= 0 && n <= maxBuffered {
					w.mode = modeBuffer
					w.declCL = n
					w.buf = bufPool.Get().(*bytes.Buffer)
					w.buf.Reset()
					return // header goes out at finish, with the new length
				}
				w.mode = modePass
			}
		}
	}
	w.ResponseWriter.WriteHeader(w.status)
}

func isHTML(ct string) bool {
	return hasPrefixFold(ct, "text/html") || hasPrefixFold(ct, "application/xhtml+xml")
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.decide(p)
	}
	switch w.mode {
	case modeStream:
		w.stream(p)
		if w.err != nil {
			return 0, w.err
		}
		return len(p), nil
	case modeBuffer:
		if w.buf.Len()+len(p) > maxBuffered {
			w.spill()
			return w.ResponseWriter.Write(p)
		}
		return w.buf.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *responseWriter) write(p []byte) {
	if w.err == nil && len(p) > 0 {
		_, w.err = w.ResponseWriter.Write(p)
	}
}

const closeBody = "</body>"

func (w *responseWriter) stream(p []byte) {
	if w.nheld > 0 {
		k := w.nheld
		need := len(closeBody) - k
		m := min(need, len(p))
		if strings.EqualFold(string(p[:m]), closeBody[k:k+m]) {
			if m < need { // still only a prefix: hold on
				w.nheld += copy(w.held[k:], p)
				return
			}
			w.write(w.tag)
			w.write(w.held[:k])
			w.write(p)
			w.nheld = 0
			w.mode = modeDone
			return
		}
		w.write(w.held[:k])
		w.nheld = 0
	}
	if i := indexCloseBody(p); i >= 0 {
		// On a real connection each Write of a chunked body is a chunk: the
		// bulk goes out as written, the tag and the short tail after it as
		// one small write that waits in net/http's buffer for the end.
		w.write(p[:i])
		b := bufPool.Get().(*bytes.Buffer)
		b.Reset()
		b.Write(w.tag)
		b.Write(p[i:])
		w.write(b.Bytes())
		if b.Cap() <= maxBuffered {
			bufPool.Put(b)
		}
		w.mode = modeDone
		return
	}
	k := heldSuffix(p)
	w.write(p[:len(p)-k])
	w.nheld = copy(w.held[:], p[len(p)-k:])
}

// indexCloseBody finds "</body>" in any letter case; with several, the
// last one (the real closing tag comes last, a quoted one in a script
// earlier). It looks backwards through the tail first, where the tag nearly
// always is; bytes.Index for "</body>" would be slow on HTML, as every
// closing tag starts with "</", so the rest is searched for the rare pair
// "y>" / "Y>" and candidates are checked backwards.
func indexCloseBody(p []byte) int {
	const tail = 512
	for end := len(p); end > len(p)-tail && end >= len(closeBody); {
		j := bytes.LastIndexByte(p[max(0, len(p)-tail):end], '>')
		if j < 0 {
			break
		}
		j += max(0, len(p)-tail)
		if j+1 >= len(closeBody) && strings.EqualFold(string(p[j+1-len(closeBody):j+1]), closeBody) {
			return j + 1 - len(closeBody)
		}
		end = j
	}
	if len(p) <= tail {
		return -1
	}
	head := p[:len(p)-tail+len(closeBody)-1] // overlaps the tail by a partial tag
	last := -1
	for _, pat := range [...]string{"y>", "Y>"} {
		off := 0
		for {
			j := bytes.Index(head[off:], []byte(pat))
			if j < 0 {
				break
			}
			end := off + j + 2
			if end >= len(closeBody) && strings.EqualFold(string(head[end-len(closeBody):end]), closeBody) {
				last = max(last, end-len(closeBody))
			}
			off += j + 1
		}
	}
	return last
}

// heldSuffix returns the length of the longest suffix of p that is a proper
// prefix of "</body>".
func heldSuffix(p []byte) int {
	for k := min(len(closeBody)-1, len(p)); k > 0; k-- {
		if p[len(p)-k] == '<' && strings.EqualFold(string(p[len(p)-k:]), closeBody[:k]) {
			return k
		}
	}
	return 0
}

// spill gives up buffering: send the declared header and what we have.
func (w *responseWriter) spill() {
	w.ResponseWriter.WriteHeader(w.status)
	w.write(w.buf.Bytes())
	w.release()
	w.mode = modePass
}

func (w *responseWriter) release() {
	if w.buf != nil {
		bufPool.Put(w.buf)
		w.buf = nil
	}
}

// finish completes the response when the handler returns.
func (w *responseWriter) finish() {
	if !w.decided {
		if w.status == 0 {
			return // handler wrote nothing: net/http sends its default
		}
		w.decide(nil)
	}
	switch w.mode {
	case modeStream:
		w.write(w.held[:w.nheld])
		w.nheld = 0
	case modeBuffer:
		body := w.buf.Bytes()
		if int64(len(body)) == w.declCL {
			if i := indexCloseBody(body); i >= 0 {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)+len(w.tag)))
				w.ResponseWriter.WriteHeader(w.status)
				// Insert in place and write once.
				w.buf.Write(w.tag)
				body = w.buf.Bytes()
				copy(body[i+len(w.tag):], body[i:len(body)-len(w.tag)])
				copy(body[i:], w.tag)
				w.write(body)
				w.release()
				return
			}
		}
		// No </body>, or the handler broke its own Content-Length: send as is.
		w.spill()
	}
}

// Flush sends what is held back and flushes, for streaming handlers.
func (w *responseWriter) Flush() {
	if !w.decided {
		w.decide(nil)
	}
	switch w.mode {
	case modeStream:
		w.write(w.held[:w.nheld])
		w.nheld = 0
	case modeBuffer:
		w.spill()
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack passes through (websockets); injection no longer applies.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		w.decided, w.mode = true, modePass
		return hj.Hijack()
	}
	return nil, nil, errors.New("producer: underlying ResponseWriter does not support Hijack")
}

// first1 is Header.Get for a key already in canonical form (skips the
// canonicalisation Get does on every call).
func first1(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ReadFrom keeps sendfile for files served through the middleware
// (http.FileServer, io.Copy) whenever the body passes through unchanged.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.decided && (first1(w.Header(), "Content-Type") != "" || len(w.Header()["Content-Type"]) > 0) {
		w.decide(nil) // the type is known: no need to sniff
	}
	if w.decided && (w.mode == modePass || w.mode == modeDone) {
		if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
			return rf.ReadFrom(r)
		}
	}
	return io.Copy(writerOnly{w}, r)
}

// writerOnly hides ReadFrom so io.Copy does not call it again.
type writerOnly struct{ io.Writer }
